-- 0003: stored aggregates of execution_time_statistics for the statistics endpoint.
--
-- execution_time_rollups        one row per (project, workflow, status, UTC hour)
-- execution_time_rollups_daily  one row per (project, workflow, status, UTC day)
--
-- Each row holds the exact count, sum, min and max of execution_time_ms and a mergeable
-- log-bucket sketch of the values: a value v > 0 falls in bucket
--     i = ceil(ln(v) / ln(gamma)),  gamma = (1 + a) / (1 - a),  a = 0.01,
-- that is (gamma^(i-1), gamma^i]; answering a bucket with 2 gamma^i / (gamma + 1) is within
-- 1 % of every value in it. Zero has no logarithm and is counted in zero_count. The sketch
-- is an int4[][] of {index, count} pairs in increasing index order.
--
-- Why triggers (statement-level, with a transition table) rather than the writer: the rows
-- arrive by two paths, the daemon's batch writer (INSERT ... SELECT ... ON CONFLICT DO NOTHING)
-- and the capture trigger on MeshHook's workflow_runs (one row per finished run, inside
-- MeshHook's transaction). A trigger keeps both, and anything a person inserts by hand, in
-- the same transaction as the rows, so the rollups are never stale and never double-count:
-- the transition table holds only the rows actually inserted, not the conflicting replays.
-- Deletes (retention) and updates recompute the touched hours and days from the rows that
-- remain, so rows and rollups agree exactly at every commit.
--
-- project_id is on every row: it is the tenant, and row level security policies key on it.

create table execution_time_rollups (
    project_id    uuid        not null,
    workflow_id   uuid        not null,
    status        text        not null,
    bucket_start  timestamptz not null,  -- the UTC hour
    run_count     bigint      not null,
    sum_ms        bigint      not null,
    min_ms        bigint      not null,
    max_ms        bigint      not null,
    zero_count    bigint      not null default 0,
    sketch        int4[]      not null default '{}',
    primary key (workflow_id, bucket_start, status, project_id)
);

create table execution_time_rollups_daily (
    project_id    uuid        not null,
    workflow_id   uuid        not null,
    status        text        not null,
    bucket_start  timestamptz not null,  -- the UTC day
    run_count     bigint      not null,
    sum_ms        bigint      not null,
    min_ms        bigint      not null,
    max_ms        bigint      not null,
    zero_count    bigint      not null default 0,
    sketch        int4[]      not null default '{}',
    primary key (workflow_id, bucket_start, status, project_id)
);

-- One tenant over a date range (no workflow filter).
create index execution_time_rollups_project_bucket
    on execution_time_rollups (project_id, bucket_start);
create index execution_time_rollups_daily_project_bucket
    on execution_time_rollups_daily (project_id, bucket_start);

comment on table execution_time_rollups is
    'Hourly (UTC) count, sum, min, max and 1 % log-bucket sketch of execution_time_ms (meshhook-stats).';
comment on table execution_time_rollups_daily is
    'Daily (UTC) count, sum, min, max and 1 % log-bucket sketch of execution_time_ms (meshhook-stats).';
comment on column execution_time_rollups.sketch is
    '{{index, count}, ...}: values in (gamma^(index-1), gamma^index], gamma = 1.01/0.99; zeros in zero_count';

-- The sketch bucket of a value in milliseconds; null for 0 (counted in zero_count).
create function meshhook_stats_sketch_index(v bigint) returns int
    language sql immutable strict parallel safe
    return case when v > 0 then ceil(ln(v::float8) / ln(1.01::float8 / 0.99::float8))::int end;

-- The sum of two sketches.
create function meshhook_stats_sketch_merge(a int4[], b int4[]) returns int4[]
    language sql immutable parallel safe
    return (
        select coalesce(array_agg(array[i, c] order by i), '{}')
        from (
            select p.i, sum(p.c)::int4 as c
            from (
                select a[k][1] as i, a[k][2] as c from generate_subscripts(a, 1) as k
                union all
                select b[k][1], b[k][2] from generate_subscripts(b, 1) as k
            ) as p
            group by p.i
        ) as merged
    );

-- Adds the rows of a transition table to both rollup tables. Rows are sorted by key so that
-- two writers touching the same hours lock them in the same order (no deadlock).
create function meshhook_stats_rollups_add() returns trigger
    language plpgsql
    security definer
    set search_path from current
as $$
begin
    insert into execution_time_rollups as r
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
    group by workflow_id, bucket_start, status, project_id
    order by workflow_id, bucket_start, status, project_id
    on conflict (workflow_id, bucket_start, status, project_id) do update set
        run_count  = r.run_count + excluded.run_count,
        sum_ms     = r.sum_ms + excluded.sum_ms,
        min_ms     = least(r.min_ms, excluded.min_ms),
        max_ms     = greatest(r.max_ms, excluded.max_ms),
        zero_count = r.zero_count + excluded.zero_count,
        sketch     = meshhook_stats_sketch_merge(r.sketch, excluded.sketch);

    insert into execution_time_rollups_daily as r
        (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select project_id, workflow_id, status, bucket_start, sum(n), sum(s), min(lo), max(hi),
           coalesce(sum(n) filter (where i is null), 0),
           coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null), '{}')
    from (
        select project_id, workflow_id, status,
               date_trunc('day', finished_at, 'UTC') as bucket_start,
               meshhook_stats_sketch_index(execution_time_ms) as i,
               count(*) as n, sum(execution_time_ms) as s,
               min(execution_time_ms) as lo, max(execution_time_ms) as hi
        from new_rows
        group by 1, 2, 3, 4, 5
    ) as b
    group by workflow_id, bucket_start, status, project_id
    order by workflow_id, bucket_start, status, project_id
    on conflict (workflow_id, bucket_start, status, project_id) do update set
        run_count  = r.run_count + excluded.run_count,
        sum_ms     = r.sum_ms + excluded.sum_ms,
        min_ms     = least(r.min_ms, excluded.min_ms),
        max_ms     = greatest(r.max_ms, excluded.max_ms),
        zero_count = r.zero_count + excluded.zero_count,
        sketch     = meshhook_stats_sketch_merge(r.sketch, excluded.sketch);
    return null;
end
$$;

-- Recomputes, from the rows that remain, every hour and day that the rows of a transition
-- table belonged to. Min and max cannot be subtracted, so deletes recompute.
create function meshhook_stats_rollups_recompute() returns trigger
    language plpgsql
    security definer
    set search_path from current
as $$
begin
    create temporary table if not exists meshhook_stats_touched (
        project_id uuid, workflow_id uuid, status text, hour timestamptz, day timestamptz
    ) on commit drop;
    truncate meshhook_stats_touched;
    insert into meshhook_stats_touched
    select distinct project_id, workflow_id, status,
           date_trunc('hour', finished_at, 'UTC'), date_trunc('day', finished_at, 'UTC')
    from old_rows;
    if tg_op = 'UPDATE' then
        -- Planned only when it runs: a delete trigger has no new_rows.
        insert into meshhook_stats_touched
        select distinct project_id, workflow_id, status,
               date_trunc('hour', finished_at, 'UTC'), date_trunc('day', finished_at, 'UTC')
        from new_rows;
    end if;

    delete from execution_time_rollups r
    using (select distinct project_id, workflow_id, status, hour from meshhook_stats_touched) t
    where r.workflow_id = t.workflow_id and r.bucket_start = t.hour
      and r.status = t.status and r.project_id = t.project_id;
    insert into execution_time_rollups
        (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select project_id, workflow_id, status, bucket_start, sum(n), sum(s), min(lo), max(hi),
           coalesce(sum(n) filter (where i is null), 0),
           coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null), '{}')
    from (
        select e.project_id, e.workflow_id, e.status, t.hour as bucket_start,
               meshhook_stats_sketch_index(e.execution_time_ms) as i,
               count(*) as n, sum(e.execution_time_ms) as s,
               min(e.execution_time_ms) as lo, max(e.execution_time_ms) as hi
        from (select distinct project_id, workflow_id, status, hour from meshhook_stats_touched) t
        join execution_time_statistics e
          on e.workflow_id = t.workflow_id and e.project_id = t.project_id
         and e.status = t.status
         and e.finished_at >= t.hour and e.finished_at < t.hour + interval '1 hour'
        group by 1, 2, 3, 4, 5
    ) as b
    group by workflow_id, bucket_start, status, project_id
    order by workflow_id, bucket_start, status, project_id;

    delete from execution_time_rollups_daily r
    using (select distinct project_id, workflow_id, status, day from meshhook_stats_touched) t
    where r.workflow_id = t.workflow_id and r.bucket_start = t.day
      and r.status = t.status and r.project_id = t.project_id;
    insert into execution_time_rollups_daily
        (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select project_id, workflow_id, status, bucket_start, sum(n), sum(s), min(lo), max(hi),
           coalesce(sum(n) filter (where i is null), 0),
           coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null), '{}')
    from (
        select e.project_id, e.workflow_id, e.status, t.day as bucket_start,
               meshhook_stats_sketch_index(e.execution_time_ms) as i,
               count(*) as n, sum(e.execution_time_ms) as s,
               min(e.execution_time_ms) as lo, max(e.execution_time_ms) as hi
        from (select distinct project_id, workflow_id, status, day from meshhook_stats_touched) t
        join execution_time_statistics e
          on e.workflow_id = t.workflow_id and e.project_id = t.project_id
         and e.status = t.status
         and e.finished_at >= t.day and e.finished_at < t.day + interval '1 day'
        group by 1, 2, 3, 4, 5
    ) as b
    group by workflow_id, bucket_start, status, project_id
    order by workflow_id, bucket_start, status, project_id;
    return null;
end
$$;

create trigger execution_time_rollups_insert
    after insert on execution_time_statistics
    referencing new table as new_rows
    for each statement execute function meshhook_stats_rollups_add();

create trigger execution_time_rollups_delete
    after delete on execution_time_statistics
    referencing old table as old_rows
    for each statement execute function meshhook_stats_rollups_recompute();

-- Rows are written once and not updated, but should one be, both the hours it left and the
-- hours it moved to are recomputed.
create trigger execution_time_rollups_update
    after update on execution_time_statistics
    referencing old table as old_rows new table as new_rows
    for each statement execute function meshhook_stats_rollups_recompute();

create function meshhook_stats_rollups_truncate() returns trigger
    language plpgsql
    security definer
    set search_path from current
as $$
begin
    truncate execution_time_rollups, execution_time_rollups_daily;
    return null;
end
$$;

create trigger execution_time_rollups_truncate
    after truncate on execution_time_statistics
    for each statement execute function meshhook_stats_rollups_truncate();
