-- One MeshHook run from its job to its finish, as the orchestrator writes it: the job row,
-- three steps (start, HTTP attempt, end) and the finish, in one transaction.
\set k random(1, 400000)
begin;
insert into job_tracking (msg_id, run_id, queue_name, enqueued_at, started_at)
select :k, id, 'workflow_jobs', now() - interval '20 ms', now() from bench_run_ids where k = :k;
insert into workflow_events (run_id, type, payload)
select r.id, t.type, jsonb_build_object('node', jsonb_build_object('id', 's' || s, 'type', 'http'))
from bench_run_ids r, generate_series(1, 3) s,
     unnest(array['step_started', 'http_attempted', 'step_succeeded']) t(type)
where r.k = :k;
update workflow_runs set status = 'succeeded', finished_at = now()
 where id = (select id from bench_run_ids where k = :k) and status = 'running';
commit;
