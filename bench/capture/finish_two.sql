\set k1 random(1, 400000)
\set k2 random(1, 400000)
begin;
update workflow_runs set status = 'succeeded', finished_at = now()
 where id = (select id from bench_run_ids where k = :k1) and status = 'running';
update workflow_runs set status = 'succeeded', finished_at = now()
 where id = (select id from bench_run_ids where k = :k2) and status = 'running';
commit;
