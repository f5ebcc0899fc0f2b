-- One writer-like batch for fold.sh: 20,000 runs of 1,000 workflows of 100 tenants, each
-- workflow in all four statuses, finished over :span seconds from 2026-11-30 00:00 UTC (3600:
-- 4,000 hourly keys a batch; 86400: about one key a run). :seed shifts workflows, times and
-- durations between batches. The insert trigger groups them into rollup deltas.
insert into execution_time_statistics
    (run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms)
select gen_random_uuid(),
       ('00000000-0000-4000-8000-' || lpad((w % 100)::text, 12, '0'))::uuid,
       ('10000000-0000-4000-8000-' || lpad(w::text, 12, '0'))::uuid,
       (array['succeeded', 'failed', 'canceled', 'timeout'])[1 + (g / 1000) % 4],
       t - interval '1 second', t, 50 + (g * 7919 + :seed) % 60000
from (select g, (g * 7 + :seed) % 1000 as w,
             timestamptz '2026-11-30 00:00+00' + ((g * 37 + :seed) % :span) * interval '1 second' as t
      from generate_series(1, 20000) as g) as runs;
