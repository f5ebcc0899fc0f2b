-- 0010: a captured run costs less, in MeshHook's transaction and in the compactor.
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
    execute format('alter function meshhook_stats_rollups_append() set search_path = pg_catalog, %I, pg_temp',
                   current_schema());
end
$$;


-- The compactor summed a key's delta sketches one merge at a time (meshhook_stats_sketch_sum
-- calls a SQL merge per delta, each unnesting the whole running sum), so a round cost the
-- deltas times the size of their key's sketch. Under capture traffic every finished run is one
-- delta of one bucket, and folding them took more CPU than MeshHook's own transactions on
-- 2 cores (3,000 one-run deltas of 20 workflows: 160-175 ms a round). Now a round unnests
-- the deltas' buckets once and sums them in one hash aggregate per (key, bucket), then merges
-- each touched rollup row once, as before (30-34 ms for the same round; the same 5,000-delta
-- round of 1,000 dense workflows costs about the same as before). Results are equal, bucket
-- for bucket; the deltas are still deleted in the round that folds them.
create or replace function meshhook_stats_compact(max_rows integer, out folded integer,
                                                  out oldest_age_seconds float8)
    language plpgsql
    security definer
as $$
begin
    if not pg_try_advisory_xact_lock(hashtextextended('meshhook-stats compactor', 0)) then
        folded := -1;
        return;
    end if;
    with taken as (
        delete from execution_time_rollup_deltas
        where id in (select id from execution_time_rollup_deltas order by id limit max_rows)
        returning *
    ), cells as (
        -- Every (hour key, sketch bucket) count of the taken deltas, summed in one aggregate.
        select t.project_id, t.workflow_id, t.status, t.bucket_start, u.i, sum(u.c) as c
        from taken t, unnest(t.sketch[:][1:1], t.sketch[:][2:2]) as u(i, c)
        group by 1, 2, 3, 4, 5
    ), hourly as (
        select t.project_id, t.workflow_id, t.status, t.bucket_start, t.n, t.s, t.lo, t.hi, t.z,
               coalesce(k.sketch, '{}') as sk
        from (
            select project_id, workflow_id, status, bucket_start, sum(run_count) as n,
                   sum(sum_ms) as s, min(min_ms) as lo, max(max_ms) as hi, sum(zero_count) as z
            from taken
            group by 1, 2, 3, 4
        ) as t
        left join (
            select project_id, workflow_id, status, bucket_start,
                   array_agg(array[i, c::int4] order by i) as sketch
            from cells
            group by 1, 2, 3, 4
        ) as k using (project_id, workflow_id, status, bucket_start)
    ), daily as (
        select t.project_id, t.workflow_id, t.status, t.bucket_start, t.n, t.s, t.lo, t.hi, t.z,
               coalesce(k.sketch, '{}') as sk
        from (
            select project_id, workflow_id, status, date_trunc('day', bucket_start, 'UTC') as bucket_start,
                   sum(n) as n, sum(s) as s, min(lo) as lo, max(hi) as hi, sum(z) as z
            from hourly
            group by 1, 2, 3, 4
        ) as t
        left join (
            select project_id, workflow_id, status, bucket_start,
                   array_agg(array[i, c::int4] order by i) as sketch
            from (
                select project_id, workflow_id, status,
                       date_trunc('day', bucket_start, 'UTC') as bucket_start, i, sum(c) as c
                from cells
                group by 1, 2, 3, 4, 5
            ) as day_cells
            group by 1, 2, 3, 4
        ) as k using (project_id, workflow_id, status, bucket_start)
    ), into_hourly as (
        insert into execution_time_rollups_compacted as r
            (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
             zero_count, sketch)
        select project_id, workflow_id, status, bucket_start, n, s, lo, hi, z, sk from hourly
        order by workflow_id, bucket_start, status, project_id
        on conflict (workflow_id, bucket_start, status, project_id) do update set
            run_count  = r.run_count + excluded.run_count,
            sum_ms     = r.sum_ms + excluded.sum_ms,
            min_ms     = least(r.min_ms, excluded.min_ms),
            max_ms     = greatest(r.max_ms, excluded.max_ms),
            zero_count = r.zero_count + excluded.zero_count,
            sketch     = meshhook_stats_sketch_merge(r.sketch, excluded.sketch)
    ), into_daily as (
        insert into execution_time_rollups_daily_compacted as r
            (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
             zero_count, sketch)
        select project_id, workflow_id, status, bucket_start, n, s, lo, hi, z, sk from daily
        order by workflow_id, bucket_start, status, project_id
        on conflict (workflow_id, bucket_start, status, project_id) do update set
            run_count  = r.run_count + excluded.run_count,
            sum_ms     = r.sum_ms + excluded.sum_ms,
            min_ms     = least(r.min_ms, excluded.min_ms),
            max_ms     = greatest(r.max_ms, excluded.max_ms),
            zero_count = r.zero_count + excluded.zero_count,
            sketch     = meshhook_stats_sketch_merge(r.sketch, excluded.sketch)
    )
    select count(*)::int, extract(epoch from clock_timestamp() - min(created_at))::float8
    into folded, oldest_age_seconds
    from taken;
end
$$;

do $$
begin
    execute format('alter function meshhook_stats_compact(integer) set search_path = pg_catalog, %I, pg_temp',
                   current_schema());
end
$$;
