-- 0010: a captured run costs MeshHook's transaction less.
--
-- Measured with one MeshHook transaction per finished run (a procedure finishing 8,000 runs,
-- one update and commit each, 2 cores), the capture trigger cost about 200 µs of server time
-- a run on top of MeshHook's own 30-50 µs; the rollup delta appended by the statement-level
-- trigger was most of it, for two reasons:
--
--   meshhook_stats_sketch_index was declared strict. A strict SQL function whose body is
--   not itself strict (a CASE) cannot be inlined, so every row paid a call through the SQL
--   function executor, which re-reads and re-plans the body on each statement: about a
--   third of the delta's cost for one row, and the largest single cost per row of a COPY
--   batch. Without `strict` the planner inlines the expression. The result is unchanged:
--   null for null, as for 0 (`case when v > 0`).
--
--   The grouped insert (a hash aggregate, a sort, a second aggregate) sets up the same plan
--   for one row as for 20,000. A statement of one row (the capture trigger, a single insert
--   by hand or by backfill) now appends that row as its own delta directly.
--
-- Unchanged: the write path only appends (no row another transaction can lock), the capture
-- trigger's errors still go to the dead letters, and reads still add every pending delta.

create or replace function meshhook_stats_sketch_index(v bigint) returns int
    language sql immutable parallel safe
    return case when v > 0 then ceil(ln(v::float8) / ln(1.01::float8 / 0.99::float8))::int end;

create or replace function meshhook_stats_rollups_append() returns trigger
    language plpgsql
    security definer
as $$
declare
    rows_seen integer;
begin
    select count(*) into rows_seen from (select from new_rows limit 2) as first_two;
    if rows_seen = 1 then
        insert into execution_time_rollup_deltas
            (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
             zero_count, sketch)
        select project_id, workflow_id, status, date_trunc('hour', finished_at, 'UTC'), 1,
               execution_time_ms, execution_time_ms, execution_time_ms,
               (execution_time_ms = 0)::int,
               case when execution_time_ms > 0
                    then array[array[meshhook_stats_sketch_index(execution_time_ms), 1]]
                    else '{}' end
        from new_rows;
        return null;
    end if;
    insert into execution_time_rollup_deltas
        (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select project_id, workflow_id, status, bucket_start, sum(n), sum(s), min(lo), max(hi),
           coalesce(sum(n) filter (where i is null), 0),
           coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null), '{}')
    from (
        select project_id, workflow_id, status,
               date_trunc('hour', finished_at, 'UTC') as bucket_start,
               meshhook_stats_sketch_index(execution_time_ms) as i,
               count(*) as n, sum(execution_time_ms) as s,
               min(execution_time_ms) as lo, max(execution_time_ms) as hi
        from new_rows
        group by 1, 2, 3, 4, 5
    ) as b
    group by project_id, workflow_id, status, bucket_start;
    return null;
end
$$;

-- create or replace resets the function's settings: pin the search path again.
do $$
begin
    execute format('alter function meshhook_stats_rollups_append() set search_path = %I, pg_catalog, pg_temp',
                   current_schema());
end
$$;

