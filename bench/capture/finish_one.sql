\set k random(1, 400000)
begin;
update workflow_runs set status = 'succeeded', finished_at = now()
 where id = (select id from bench_run_ids where k = :k) and status = 'running';
commit;
