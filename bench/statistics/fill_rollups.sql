-- Rebuilds the compacted rollups (execution_time_rollups_compacted, _daily_compacted from the
-- rows in one pass; _hourly_all_compacted from the hours, _daily_all_compacted and
-- _weekly_all_compacted from the days): what the
-- insert trigger and the compactor would have built row by row. For bulk loads with the
-- trigger disabled (bench/statistics/generate.sql), or to repair rollups after manual edits.
begin;
truncate execution_time_rollup_deltas, execution_time_rollups_compacted,
         execution_time_rollups_daily_compacted, execution_time_rollups_hourly_all_compacted,
         execution_time_rollups_daily_all_compacted, execution_time_rollups_weekly_all_compacted;
insert into execution_time_rollups_compacted
    (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
     zero_count, sketch)
select project_id, workflow_id, status, bucket_start, sum(n), sum(s), min(lo), max(hi),
       coalesce(sum(n) filter (where i is null), 0),
       coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null), '{}')
from (
    select project_id, workflow_id, status, date_trunc('hour', finished_at, 'UTC') as bucket_start,
           meshhook_stats_sketch_index(execution_time_ms) as i, count(*) as n,
           sum(execution_time_ms) as s, min(execution_time_ms) as lo, max(execution_time_ms) as hi
    from execution_time_statistics
    group by 1, 2, 3, 4, 5
) as b
group by workflow_id, bucket_start, status, project_id;
insert into execution_time_rollups_daily_compacted
    (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
     zero_count, sketch)
select project_id, workflow_id, status, bucket_start, sum(n), sum(s), min(lo), max(hi),
       coalesce(sum(n) filter (where i is null), 0),
       coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null), '{}')
from (
    select project_id, workflow_id, status, date_trunc('day', finished_at, 'UTC') as bucket_start,
           meshhook_stats_sketch_index(execution_time_ms) as i, count(*) as n,
           sum(execution_time_ms) as s, min(execution_time_ms) as lo, max(execution_time_ms) as hi
    from execution_time_statistics
    group by 1, 2, 3, 4, 5
) as b
group by workflow_id, bucket_start, status, project_id;
insert into execution_time_rollups_hourly_all_compacted
    (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms, zero_count, sketch)
select project_id, workflow_id, bucket_start, sum(run_count), sum(sum_ms), min(min_ms),
       max(max_ms), sum(zero_count), meshhook_stats_sketch_sum(sketch)
from execution_time_rollups_compacted
group by project_id, workflow_id, bucket_start
order by workflow_id, bucket_start, project_id;
insert into execution_time_rollups_daily_all_compacted
    (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms, zero_count, sketch)
select project_id, workflow_id, bucket_start, sum(run_count), sum(sum_ms), min(min_ms),
       max(max_ms), sum(zero_count), meshhook_stats_sketch_sum(sketch)
from execution_time_rollups_daily_compacted
group by project_id, workflow_id, bucket_start
order by workflow_id, bucket_start, project_id;
insert into execution_time_rollups_weekly_all_compacted
    (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms, zero_count, sketch)
select project_id, workflow_id, date_trunc('week', bucket_start, 'UTC'), sum(run_count),
       sum(sum_ms), min(min_ms), max(max_ms), sum(zero_count), meshhook_stats_sketch_sum(sketch)
from execution_time_rollups_daily_all_compacted
group by 1, 2, 3
order by 2, 3, 1;
commit;
