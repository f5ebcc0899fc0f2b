-- The exact=false statements queue-times and step-times ran before migration 0014 (the sketch
-- built from the rows in the query, removed with it), for bench/statistics/queue_steps.sh's
-- data: psql -f bench/statistics/queue_steps_before.sql DATABASE_URL. Statement time as the
-- owner (no row level security), each three times (\g runs the statement again).
\timing on
\o /dev/null
\set wf '''00000000-0000-0000-0000-000000000000'''
-- queue-times, the tenant's 30 days, no grouping
select count(*), sum(v), min(v), max(v), count(*) filter (where v = 0),
       case when i is null then '{}' else '{{' || i || ',' || count(*) || '}}' end
from (select queue_wait_ms as v, meshhook_stats_sketch_index(queue_wait_ms) as i
      from queue_time_statistics
      where finished_at >= now() - interval '30 days' and finished_at < now()) as r
group by i;
\g
\g
-- step-times, one workflow's 30 days
select step_id, (array_agg(step_type order by finished_at desc, step_type desc))[1], count(*),
       sum(duration_ms), count(*) filter (where status = 'failed'), sum(attempts),
       min(duration_ms), max(duration_ms), count(*) filter (where duration_ms = 0),
       case when meshhook_stats_sketch_index(duration_ms) is null then '{}'
            else '{{' || meshhook_stats_sketch_index(duration_ms) || ',' || count(*) || '}}' end,
       (extract(epoch from max(finished_at)) * 1000000)::bigint
from step_time_statistics
where workflow_id = :wf and finished_at >= now() - interval '30 days' and finished_at < now()
group by step_id, meshhook_stats_sketch_index(duration_ms);
\g
\g
