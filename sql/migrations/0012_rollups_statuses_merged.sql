-- 0012: hourly, daily and weekly rollup levels with the statuses merged, for the statistics
-- endpoint.
--
-- The default request asks for every status and does not group by it, yet it read four rows
-- per workflow and hour or day, one per status, each with its own sketch: 90 days of one busy
-- workflow were about 350 daily rows and 37,000 sketch buckets shipped as text and merged in
-- C++, and the partial days at the edges of a range up to 4 x 46 hourly rows. With the statuses
-- merged that is a quarter of the rows and of the buckets, and whole UTC weeks make 400 days
-- about 57 rows. Requests that filter or group by status still read the per-status levels.
--
--   execution_time_rollups_hourly_all_compacted  per (project, workflow, UTC hour): the sum
--                                                over the statuses of
--                                                execution_time_rollups_compacted.
--   execution_time_rollups_daily_all_compacted   the same per UTC day, and
--   execution_time_rollups_weekly_all_compacted  per UTC week from Monday.
--
-- They follow 0008 and 0010 exactly: the write path still only appends deltas (the statement
-- trigger is unchanged); meshhook_stats_compact folds each delta into the hourly, daily and
-- both new levels in the same statement that deletes it, so a delta is pending or folded,
-- never both; reads add the pending deltas of the range's hours to what is compacted, in one
-- snapshot. Deletes and updates rebuild the touched hours and days from their (at most four)
-- per-status hours and days and the touched weeks from their (at most seven) days: the cost
-- stays the deleted rows plus the keys they touch. Views execution_time_rollups_hourly_all,
-- _daily_all and _weekly_all show
-- compacted plus pending for people and SQL data sources, as 0008's views do.
--
-- And the rows are read from the index alone again. 0001's indexes included execution_time_ms
-- so that a range of one workflow or tenant needed no heap access; since row level security
-- (0004) every row read also checks project_id, and the statistics read status, so each row
-- cost a heap fetch: one workflow's 1,900 runs of 30 days were 1,867 heap blocks, 76 ms of an
-- 81 ms statement on 10 M rows (with both columns included: an index-only scan, 0.6 ms). The
-- two indexes are rebuilt with what the reads use. Building them holds a SHARE lock on
-- execution_time_statistics, so inserts (the writer, and with the capture installed MeshHook's
-- transactions finishing runs) wait for it: about 30 s per 10 M rows on 2 cores; migrate at a
-- quiet moment.

create table execution_time_rollups_hourly_all_compacted (
    project_id   uuid        not null,
    workflow_id  uuid        not null,
    bucket_start timestamptz not null,  -- the UTC hour
    run_count    bigint      not null,
    sum_ms       numeric     not null,
    min_ms       bigint      not null,
    max_ms       bigint      not null,
    zero_count   bigint      not null,
    sketch       int4[]      not null,
    primary key (workflow_id, bucket_start, project_id)
);
create index execution_time_rollups_hourly_all_compacted_project_bucket
    on execution_time_rollups_hourly_all_compacted (project_id, bucket_start);

create table execution_time_rollups_daily_all_compacted (
    project_id   uuid        not null,
    workflow_id  uuid        not null,
    bucket_start timestamptz not null,  -- the UTC day
    run_count    bigint      not null,
    sum_ms       numeric     not null,
    min_ms       bigint      not null,
    max_ms       bigint      not null,
    zero_count   bigint      not null,
    sketch       int4[]      not null,
    primary key (workflow_id, bucket_start, project_id)
);
create index execution_time_rollups_daily_all_compacted_project_bucket
    on execution_time_rollups_daily_all_compacted (project_id, bucket_start);

create table execution_time_rollups_weekly_all_compacted (
    project_id   uuid        not null,
    workflow_id  uuid        not null,
    bucket_start timestamptz not null,  -- the UTC week, from Monday 00:00
    run_count    bigint      not null,
    sum_ms       numeric     not null,
    min_ms       bigint      not null,
    max_ms       bigint      not null,
    zero_count   bigint      not null,
    sketch       int4[]      not null,
    primary key (workflow_id, bucket_start, project_id)
);
create index execution_time_rollups_weekly_all_compacted_project_bucket
    on execution_time_rollups_weekly_all_compacted (project_id, bucket_start);

comment on table execution_time_rollups_hourly_all_compacted is
    'Hourly (UTC) rollups of every status together, folded by the compactor; add execution_time_rollup_deltas for the whole (meshhook-stats).';
comment on table execution_time_rollups_daily_all_compacted is
    'Daily (UTC) rollups of every status together, folded by the compactor; add execution_time_rollup_deltas for the whole (meshhook-stats).';
comment on table execution_time_rollups_weekly_all_compacted is
    'Weekly (UTC, from Monday) rollups of every status together, folded by the compactor; add execution_time_rollup_deltas for the whole (meshhook-stats).';

-- Row level security as for the other compacted rollups (0005, 0008).
do $$
declare
    t text;
begin
    foreach t in array array['execution_time_rollups_hourly_all_compacted',
                             'execution_time_rollups_daily_all_compacted',
                             'execution_time_rollups_weekly_all_compacted'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy meshhook_stats_caller_projects on %I for select to public '
                       'using (project_id = any (array(select meshhook_stats_caller_project_ids())))', t);
        execute format('create policy meshhook_stats_owner on %I for all to %I '
                       'using (true) with check (true)', t, current_user);
        execute format('grant select on %I to meshhook_stats_reader', t);
    end loop;
end
$$;

create index execution_time_statistics_workflow_finished_rows
    on execution_time_statistics (workflow_id, finished_at)
    include (project_id, status, execution_time_ms);
drop index execution_time_statistics_workflow_finished;
alter index execution_time_statistics_workflow_finished_rows
    rename to execution_time_statistics_workflow_finished;
create index execution_time_statistics_project_finished_rows
    on execution_time_statistics (project_id, finished_at)
    include (workflow_id, status, execution_time_ms);
drop index execution_time_statistics_project_finished;
alter index execution_time_statistics_project_finished_rows
    rename to execution_time_statistics_project_finished;

-- What is folded so far, under the compactor's lock so that no fold runs in between; in key
-- order, so that a workflow's range is a few adjacent pages, as in the per-status levels.
select pg_advisory_xact_lock(hashtextextended('meshhook-stats compactor', 0));
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

-- 0010's compactor, folding into the three new levels too. Their totals come from the round's
-- hourly totals and their sketches from the round's (key, bucket) cells, each summed in one
-- aggregate per level; each touched row is merged once.
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
    ), hourly_all as (
        select t.project_id, t.workflow_id, t.bucket_start, t.n, t.s, t.lo, t.hi, t.z,
               coalesce(k.sketch, '{}') as sk
        from (
            select project_id, workflow_id, bucket_start,
                   sum(n) as n, sum(s) as s, min(lo) as lo, max(hi) as hi, sum(z) as z
            from hourly
            group by 1, 2, 3
        ) as t
        left join (
            select project_id, workflow_id, bucket_start,
                   array_agg(array[i, c::int4] order by i) as sketch
            from (
                select project_id, workflow_id, bucket_start, i, sum(c) as c
                from cells
                group by 1, 2, 3, 4
            ) as hour_cells
            group by 1, 2, 3
        ) as k using (project_id, workflow_id, bucket_start)
    ), daily_all as (
        select t.project_id, t.workflow_id, t.bucket_start, t.n, t.s, t.lo, t.hi, t.z,
               coalesce(k.sketch, '{}') as sk
        from (
            select project_id, workflow_id, date_trunc('day', bucket_start, 'UTC') as bucket_start,
                   sum(n) as n, sum(s) as s, min(lo) as lo, max(hi) as hi, sum(z) as z
            from hourly
            group by 1, 2, 3
        ) as t
        left join (
            select project_id, workflow_id, bucket_start,
                   array_agg(array[i, c::int4] order by i) as sketch
            from (
                select project_id, workflow_id,
                       date_trunc('day', bucket_start, 'UTC') as bucket_start, i, sum(c) as c
                from cells
                group by 1, 2, 3, 4
            ) as day_cells
            group by 1, 2, 3
        ) as k using (project_id, workflow_id, bucket_start)
    ), weekly_all as (
        select t.project_id, t.workflow_id, t.bucket_start, t.n, t.s, t.lo, t.hi, t.z,
               coalesce(k.sketch, '{}') as sk
        from (
            select project_id, workflow_id, date_trunc('week', bucket_start, 'UTC') as bucket_start,
                   sum(n) as n, sum(s) as s, min(lo) as lo, max(hi) as hi, sum(z) as z
            from hourly
            group by 1, 2, 3
        ) as t
        left join (
            select project_id, workflow_id, bucket_start,
                   array_agg(array[i, c::int4] order by i) as sketch
            from (
                select project_id, workflow_id,
                       date_trunc('week', bucket_start, 'UTC') as bucket_start, i, sum(c) as c
                from cells
                group by 1, 2, 3, 4
            ) as week_cells
            group by 1, 2, 3
        ) as k using (project_id, workflow_id, bucket_start)
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
    ), into_hourly_all as (
        insert into execution_time_rollups_hourly_all_compacted as r
            (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
             zero_count, sketch)
        select project_id, workflow_id, bucket_start, n, s, lo, hi, z, sk from hourly_all
        order by workflow_id, bucket_start, project_id
        on conflict (workflow_id, bucket_start, project_id) do update set
            run_count  = r.run_count + excluded.run_count,
            sum_ms     = r.sum_ms + excluded.sum_ms,
            min_ms     = least(r.min_ms, excluded.min_ms),
            max_ms     = greatest(r.max_ms, excluded.max_ms),
            zero_count = r.zero_count + excluded.zero_count,
            sketch     = meshhook_stats_sketch_merge(r.sketch, excluded.sketch)
    ), into_daily_all as (
        insert into execution_time_rollups_daily_all_compacted as r
            (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
             zero_count, sketch)
        select project_id, workflow_id, bucket_start, n, s, lo, hi, z, sk from daily_all
        order by workflow_id, bucket_start, project_id
        on conflict (workflow_id, bucket_start, project_id) do update set
            run_count  = r.run_count + excluded.run_count,
            sum_ms     = r.sum_ms + excluded.sum_ms,
            min_ms     = least(r.min_ms, excluded.min_ms),
            max_ms     = greatest(r.max_ms, excluded.max_ms),
            zero_count = r.zero_count + excluded.zero_count,
            sketch     = meshhook_stats_sketch_merge(r.sketch, excluded.sketch)
    ), into_weekly_all as (
        insert into execution_time_rollups_weekly_all_compacted as r
            (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
             zero_count, sketch)
        select project_id, workflow_id, bucket_start, n, s, lo, hi, z, sk from weekly_all
        order by workflow_id, bucket_start, project_id
        on conflict (workflow_id, bucket_start, project_id) do update set
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

-- 0008's deletes and updates, keeping the new levels too: after the hours and days are
-- corrected, each touched hour and day is rebuilt from its per-status hours and days and each
-- touched week from its days.
create or replace function meshhook_stats_rollups_remove() returns trigger
    language plpgsql
    security definer
as $$
begin
    perform pg_advisory_xact_lock(hashtextextended('meshhook-stats compactor', 0));
    perform meshhook_stats_compact(2147483647);

    with gone as (
        select project_id, workflow_id, status, bucket_start, sum(n) as n, sum(s) as s,
               min(lo) as lo, max(hi) as hi,
               coalesce(sum(n) filter (where i is null), 0) as z,
               coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null),
                        '{}') as sk
        from (
            select project_id, workflow_id, status,
                   date_trunc('hour', finished_at, 'UTC') as bucket_start,
                   meshhook_stats_sketch_index(execution_time_ms) as i,
                   count(*) as n, sum(execution_time_ms) as s,
                   min(execution_time_ms) as lo, max(execution_time_ms) as hi
            from old_rows
            group by 1, 2, 3, 4, 5
        ) as b
        group by project_id, workflow_id, status, bucket_start
    )
    update execution_time_rollups_compacted r set
        run_count  = r.run_count - g.n,
        sum_ms     = r.sum_ms - g.s,
        zero_count = r.zero_count - g.z,
        sketch     = meshhook_stats_sketch_subtract(r.sketch, g.sk),
        min_ms     = case when g.lo > r.min_ms or r.run_count = g.n then r.min_ms else coalesce((
                         select min(e.execution_time_ms) from execution_time_statistics e
                         where e.workflow_id = r.workflow_id and e.project_id = r.project_id
                           and e.status = r.status and e.finished_at >= r.bucket_start
                           and e.finished_at < r.bucket_start + interval '1 hour'), r.min_ms) end,
        max_ms     = case when g.hi < r.max_ms or r.run_count = g.n then r.max_ms else coalesce((
                         select max(e.execution_time_ms) from execution_time_statistics e
                         where e.workflow_id = r.workflow_id and e.project_id = r.project_id
                           and e.status = r.status and e.finished_at >= r.bucket_start
                           and e.finished_at < r.bucket_start + interval '1 hour'), r.max_ms) end
    from gone g
    where r.workflow_id = g.workflow_id and r.bucket_start = g.bucket_start
      and r.status = g.status and r.project_id = g.project_id;

    delete from execution_time_rollups_compacted r
    using (select distinct project_id, workflow_id, status,
                  date_trunc('hour', finished_at, 'UTC') as bucket_start from old_rows) t
    where r.workflow_id = t.workflow_id and r.bucket_start = t.bucket_start
      and r.status = t.status and r.project_id = t.project_id and r.run_count <= 0;

    -- The touched days, from their hours (at most 24 rows a key).
    delete from execution_time_rollups_daily_compacted r
    using (select distinct project_id, workflow_id, status,
                  date_trunc('day', finished_at, 'UTC') as day from old_rows) t
    where r.workflow_id = t.workflow_id and r.bucket_start = t.day
      and r.status = t.status and r.project_id = t.project_id;
    insert into execution_time_rollups_daily_compacted
        (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select h.project_id, h.workflow_id, h.status, t.day, sum(h.run_count), sum(h.sum_ms),
           min(h.min_ms), max(h.max_ms), sum(h.zero_count), meshhook_stats_sketch_sum(h.sketch)
    from (select distinct project_id, workflow_id, status,
                 date_trunc('day', finished_at, 'UTC') as day from old_rows) t
    join execution_time_rollups_compacted h
      on h.workflow_id = t.workflow_id and h.project_id = t.project_id and h.status = t.status
     and h.bucket_start >= t.day and h.bucket_start < t.day + interval '1 day'
    group by h.project_id, h.workflow_id, h.status, t.day;

    -- The touched hours with the statuses merged, from the (corrected) hours of every status.
    delete from execution_time_rollups_hourly_all_compacted r
    using (select distinct project_id, workflow_id,
                  date_trunc('hour', finished_at, 'UTC') as hour from old_rows) t
    where r.workflow_id = t.workflow_id and r.bucket_start = t.hour
      and r.project_id = t.project_id;
    insert into execution_time_rollups_hourly_all_compacted
        (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select h.project_id, h.workflow_id, t.hour, sum(h.run_count), sum(h.sum_ms),
           min(h.min_ms), max(h.max_ms), sum(h.zero_count), meshhook_stats_sketch_sum(h.sketch)
    from (select distinct project_id, workflow_id,
                 date_trunc('hour', finished_at, 'UTC') as hour from old_rows) t
    join execution_time_rollups_compacted h
      on h.workflow_id = t.workflow_id and h.project_id = t.project_id and h.bucket_start = t.hour
    group by h.project_id, h.workflow_id, t.hour;

    -- The same days with the statuses merged, from the (rebuilt) days of every status.
    delete from execution_time_rollups_daily_all_compacted r
    using (select distinct project_id, workflow_id,
                  date_trunc('day', finished_at, 'UTC') as day from old_rows) t
    where r.workflow_id = t.workflow_id and r.bucket_start = t.day
      and r.project_id = t.project_id;
    insert into execution_time_rollups_daily_all_compacted
        (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select d.project_id, d.workflow_id, t.day, sum(d.run_count), sum(d.sum_ms),
           min(d.min_ms), max(d.max_ms), sum(d.zero_count), meshhook_stats_sketch_sum(d.sketch)
    from (select distinct project_id, workflow_id,
                 date_trunc('day', finished_at, 'UTC') as day from old_rows) t
    join execution_time_rollups_daily_compacted d
      on d.workflow_id = t.workflow_id and d.project_id = t.project_id and d.bucket_start = t.day
    group by d.project_id, d.workflow_id, t.day;

    -- And their weeks, from the (rebuilt) days of those weeks (at most 7 rows a key).
    delete from execution_time_rollups_weekly_all_compacted r
    using (select distinct project_id, workflow_id,
                  date_trunc('week', finished_at, 'UTC') as week from old_rows) t
    where r.workflow_id = t.workflow_id and r.bucket_start = t.week
      and r.project_id = t.project_id;
    insert into execution_time_rollups_weekly_all_compacted
        (project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select d.project_id, d.workflow_id, t.week, sum(d.run_count), sum(d.sum_ms),
           min(d.min_ms), max(d.max_ms), sum(d.zero_count), meshhook_stats_sketch_sum(d.sketch)
    from (select distinct project_id, workflow_id,
                 date_trunc('week', finished_at, 'UTC') as week from old_rows) t
    join execution_time_rollups_daily_all_compacted d
      on d.workflow_id = t.workflow_id and d.project_id = t.project_id
     and d.bucket_start >= t.week and d.bucket_start < t.week + interval '7 days'
    group by d.project_id, d.workflow_id, t.week;

    if tg_op = 'UPDATE' then
        -- Planned only when it runs: a delete trigger has no new_rows.
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
    end if;
    return null;
end
$$;

create or replace function meshhook_stats_rollups_truncate() returns trigger
    language plpgsql
    security definer
as $$
begin
    perform pg_advisory_xact_lock(hashtextextended('meshhook-stats compactor', 0));
    truncate execution_time_rollup_deltas, execution_time_rollups_compacted,
             execution_time_rollups_daily_compacted, execution_time_rollups_hourly_all_compacted,
             execution_time_rollups_daily_all_compacted, execution_time_rollups_weekly_all_compacted;
    return null;
end
$$;

-- create or replace resets a function's settings: pin the search path again.
do $$
declare
    f text;
begin
    foreach f in array array['meshhook_stats_compact(integer)', 'meshhook_stats_rollups_remove()',
                             'meshhook_stats_rollups_truncate()'] loop
        execute format('alter function %s set search_path = pg_catalog, %I, pg_temp',
                       f, current_schema());
    end loop;
end
$$;

-- The whole levels, compacted plus pending, for people and SQL data sources (as 0008's views;
-- security_invoker, so each table's row level security applies; writing to them is refused).
create view execution_time_rollups_hourly_all with (security_invoker = true) as
select project_id, workflow_id, bucket_start, sum(run_count)::bigint as run_count,
       sum(sum_ms) as sum_ms, min(min_ms) as min_ms, max(max_ms) as max_ms,
       sum(zero_count)::bigint as zero_count, meshhook_stats_sketch_sum(sketch) as sketch
from (
    select project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
           zero_count, sketch
    from execution_time_rollups_hourly_all_compacted
    union all
    select project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
           zero_count, sketch
    from execution_time_rollup_deltas
) as pieces
group by project_id, workflow_id, bucket_start;

create view execution_time_rollups_daily_all with (security_invoker = true) as
select project_id, workflow_id, bucket_start, sum(run_count)::bigint as run_count,
       sum(sum_ms) as sum_ms, min(min_ms) as min_ms, max(max_ms) as max_ms,
       sum(zero_count)::bigint as zero_count, meshhook_stats_sketch_sum(sketch) as sketch
from (
    select project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
           zero_count, sketch
    from execution_time_rollups_daily_all_compacted
    union all
    select project_id, workflow_id, date_trunc('day', bucket_start, 'UTC'), run_count,
           sum_ms, min_ms, max_ms, zero_count, sketch
    from execution_time_rollup_deltas
) as pieces
group by project_id, workflow_id, bucket_start;

create view execution_time_rollups_weekly_all with (security_invoker = true) as
select project_id, workflow_id, bucket_start, sum(run_count)::bigint as run_count,
       sum(sum_ms) as sum_ms, min(min_ms) as min_ms, max(max_ms) as max_ms,
       sum(zero_count)::bigint as zero_count, meshhook_stats_sketch_sum(sketch) as sketch
from (
    select project_id, workflow_id, bucket_start, run_count, sum_ms, min_ms, max_ms,
           zero_count, sketch
    from execution_time_rollups_weekly_all_compacted
    union all
    select project_id, workflow_id, date_trunc('week', bucket_start, 'UTC'), run_count,
           sum_ms, min_ms, max_ms, zero_count, sketch
    from execution_time_rollup_deltas
) as pieces
group by project_id, workflow_id, bucket_start;

comment on view execution_time_rollups_hourly_all is
    'Hourly (UTC) rollups of every status together: compacted plus pending (meshhook-stats).';
comment on view execution_time_rollups_daily_all is
    'Daily (UTC) rollups of every status together: compacted plus pending (meshhook-stats).';
comment on view execution_time_rollups_weekly_all is
    'Weekly (UTC, from Monday) rollups of every status together: compacted plus pending (meshhook-stats).';

grant select on execution_time_rollups_hourly_all, execution_time_rollups_daily_all,
    execution_time_rollups_weekly_all to meshhook_stats_reader;

create trigger execution_time_rollups_hourly_all_read_only
    instead of insert or update or delete on execution_time_rollups_hourly_all
    for each row execute function meshhook_stats_rollups_read_only();
create trigger execution_time_rollups_daily_all_read_only
    instead of insert or update or delete on execution_time_rollups_daily_all
    for each row execute function meshhook_stats_rollups_read_only();
create trigger execution_time_rollups_weekly_all_read_only
    instead of insert or update or delete on execution_time_rollups_weekly_all
    for each row execute function meshhook_stats_rollups_read_only();

-- Tenant roles (0009, 0011) read the new levels and their views too; roles granted already get
-- them now.
create or replace function meshhook_stats_tenant_tables() returns text[]
    language sql
    immutable
    set search_path = pg_catalog, pg_temp
as $$
    select array['execution_time_statistics', 'execution_time_rollups',
                 'execution_time_rollups_daily', 'execution_time_rollups_compacted',
                 'execution_time_rollups_daily_compacted', 'execution_time_rollup_deltas',
                 'execution_time_workflows', 'queue_time_statistics', 'step_time_statistics',
                 'execution_time_rollups_hourly_all', 'execution_time_rollups_daily_all',
                 'execution_time_rollups_weekly_all',
                 'execution_time_rollups_hourly_all_compacted',
                 'execution_time_rollups_daily_all_compacted',
                 'execution_time_rollups_weekly_all_compacted']
$$;

do $$
declare
    role_name name;
begin
    for role_name in select distinct r.rolname from meshhook_stats_tenant_roles m
                     join pg_roles r on r.oid = m.tenant_role
    loop
        execute format('grant select on execution_time_rollups_hourly_all, '
                       'execution_time_rollups_daily_all, '
                       'execution_time_rollups_weekly_all, '
                       'execution_time_rollups_hourly_all_compacted, '
                       'execution_time_rollups_daily_all_compacted, '
                       'execution_time_rollups_weekly_all_compacted to %I', role_name);
    end loop;
end
$$;
