-- 0008: aggregates off the write path; a dead-letter table for runs Postgres refuses.
--
-- Until now every insert into execution_time_statistics upserted its hourly and daily rollup
-- rows inside the inserting transaction. With the capture trigger that transaction is
-- MeshHook's own: runs of one workflow-hour serialized on the two rollup rows, and two
-- transactions finishing runs of two workflows in opposite orders deadlocked.
--
-- Now:
--   execution_time_rollup_deltas           append-only. A statement-level trigger on the rows
--                                          appends the statement's grouped deltas (count, sum,
--                                          min, max, zeros, sketch per (project, workflow,
--                                          status, UTC hour)). Inserting takes no lock another
--                                          inserting transaction can hold.
--   execution_time_rollups_compacted       hourly, and
--   execution_time_rollups_daily_compacted daily: what the compactor has folded so far.
--   meshhook_stats_compact(max_rows)       folds up to max_rows committed deltas into both and
--                                          deletes them in the same transaction, so a delta is
--                                          counted either as a delta or in the rollups, never
--                                          both and never neither, at every commit. The daemon
--                                          calls it in short transactions of its own.
--   execution_time_rollups, _daily         views: compacted plus not yet compacted, per key.
--                                          The statistics endpoint reads the same union, so a
--                                          committed run counts at once and exactly once.
--
-- Deletes (retention) and updates are the daemon's or an operator's own transactions, never
-- MeshHook's: under the compactor's lock they fold what is pending, subtract the deleted rows
-- from the touched hours (count, sum, zeros and sketch subtract; min and max are recomputed
-- from the rows of that hour only when a deleted value was the extreme), and rebuild the
-- touched days from their 24 hourly rows. The cost is the deleted rows plus the keys they touch.
--
-- Sums are numeric: a bigint sum_ms overflowed with a few million implausible durations and
-- then failed every later insert of that key.

drop trigger execution_time_rollups_insert on execution_time_statistics;
drop trigger execution_time_rollups_delete on execution_time_statistics;
drop trigger execution_time_rollups_update on execution_time_statistics;
drop trigger execution_time_rollups_truncate on execution_time_statistics;
drop function meshhook_stats_rollups_add();
drop function meshhook_stats_rollups_recompute();
drop function meshhook_stats_rollups_truncate();

alter table execution_time_rollups rename to execution_time_rollups_compacted;
alter table execution_time_rollups_daily rename to execution_time_rollups_daily_compacted;
alter index execution_time_rollups_pkey rename to execution_time_rollups_compacted_pkey;
alter index execution_time_rollups_daily_pkey rename to execution_time_rollups_daily_compacted_pkey;
alter index execution_time_rollups_project_bucket
    rename to execution_time_rollups_compacted_project_bucket;
alter index execution_time_rollups_daily_project_bucket
    rename to execution_time_rollups_daily_compacted_project_bucket;
alter table execution_time_rollups_compacted alter column sum_ms type numeric;
alter table execution_time_rollups_daily_compacted alter column sum_ms type numeric;

comment on table execution_time_rollups_compacted is
    'Hourly (UTC) rollups folded by the compactor; add execution_time_rollup_deltas for the whole (meshhook-stats).';
comment on table execution_time_rollups_daily_compacted is
    'Daily (UTC) rollups folded by the compactor; add execution_time_rollup_deltas for the whole (meshhook-stats).';

create table execution_time_rollup_deltas (
    id           bigint      generated always as identity primary key,
    project_id   uuid        not null,
    workflow_id  uuid        not null,
    status       text        not null,
    bucket_start timestamptz not null,  -- the UTC hour
    run_count    bigint      not null,
    sum_ms       numeric     not null,
    min_ms       bigint      not null,
    max_ms       bigint      not null,
    zero_count   bigint      not null,
    sketch       int4[]      not null,
    created_at   timestamptz not null default now()
);

comment on table execution_time_rollup_deltas is
    'Rollup deltas of committed inserts not yet folded by the compactor (meshhook-stats).';

-- The statistics endpoint reads the pending deltas of one workflow (or tenant) and range.
create index execution_time_rollup_deltas_workflow_bucket
    on execution_time_rollup_deltas (workflow_id, bucket_start);
create index execution_time_rollup_deltas_project_bucket
    on execution_time_rollup_deltas (project_id, bucket_start);

-- Runs Postgres refused, kept with the reason so they can be seen and put back: from the
-- batch writer (a row the table refuses, isolated from its batch) and from the capture
-- trigger (any error inside MeshHook's transaction, which commits regardless).
create table execution_time_rejected_runs (
    id          bigint      generated always as identity primary key,
    run_id      uuid,
    project_id  uuid,
    source      text        not null check (source in ('ingest', 'capture', 'backfill')),
    sqlstate    text        not null,
    reason      text        not null,
    payload     jsonb       not null,
    rejected_at timestamptz not null default now()
);

comment on table execution_time_rejected_runs is
    'Runs Postgres refused, with the SQLSTATE and message (meshhook-stats dead letters).';

create index execution_time_rejected_runs_project on execution_time_rejected_runs (project_id);

do $$
declare
    t text;
begin
    foreach t in array array['execution_time_rollup_deltas', 'execution_time_rejected_runs'] loop
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

-- The sum of a set of sketches, and a sketch minus another (buckets that reach 0 vanish).
create aggregate meshhook_stats_sketch_sum(int4[]) (
    sfunc = meshhook_stats_sketch_merge,
    stype = int4[],
    initcond = '{}'
);

create function meshhook_stats_sketch_subtract(a int4[], b int4[]) returns int4[]
    language sql immutable parallel safe
    return (
        select coalesce(array_agg(array[i, c] order by i), '{}')
        from (
            select p.i, sum(p.c)::int4 as c
            from (
                select a[k][1] as i, a[k][2] as c from generate_subscripts(a, 1) as k
                union all
                select b[k][1], -b[k][2] from generate_subscripts(b, 1) as k
            ) as p
            group by p.i
            having sum(p.c) <> 0
        ) as left_over
    );

-- What the statement-level triggers append: the rows of a transition table grouped by key.
-- Security definer: a writer-role login inserts rows but has no grant on the deltas.
create function meshhook_stats_rollups_append() returns trigger
    language plpgsql
    security definer
as $$
begin
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

-- Folds up to max_rows committed deltas (oldest first) into the compacted rollups and deletes
-- them, all in the caller's transaction. Only one folder at a time (a transaction-level
-- advisory lock, also taken by deletes and updates of rows); returns -1 when another holds it,
-- else the number of deltas folded, with the age of the oldest one folded.
create function meshhook_stats_compact(max_rows integer, out folded integer, out oldest_age_seconds float8)
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
    ), hourly as (
        select project_id, workflow_id, status, bucket_start, sum(run_count) as n,
               sum(sum_ms) as s, min(min_ms) as lo, max(max_ms) as hi, sum(zero_count) as z,
               meshhook_stats_sketch_sum(sketch) as sk
        from taken
        group by project_id, workflow_id, status, bucket_start
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
        select project_id, workflow_id, status, date_trunc('day', bucket_start, 'UTC'),
               sum(n), sum(s), min(lo), max(hi), sum(z), meshhook_stats_sketch_sum(sk)
        from hourly
        group by 1, 2, 3, 4
        order by 2, 4, 3, 1
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

comment on function meshhook_stats_compact(integer) is
    'meshhook-stats: folds up to max_rows rollup deltas into the compacted rollups (-1: another compactor is active)';

-- Deletes and updates of rows: fold what is pending (so the compacted rollups cover every
-- visible row), subtract the old rows from their hours, recompute an hour's min or max from
-- its rows only when a deleted value was that extreme, drop emptied hours, rebuild the touched
-- days from their hours; for an update, append the new rows as deltas.
create function meshhook_stats_rollups_remove() returns trigger
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

create function meshhook_stats_rollups_truncate() returns trigger
    language plpgsql
    security definer
as $$
begin
    perform pg_advisory_xact_lock(hashtextextended('meshhook-stats compactor', 0));
    truncate execution_time_rollup_deltas, execution_time_rollups_compacted,
             execution_time_rollups_daily_compacted;
    return null;
end
$$;

-- Every function above pinned to this schema, then the catalog, the temporary schema last.
do $$
declare
    f text;
begin
    foreach f in array array['meshhook_stats_rollups_append()', 'meshhook_stats_compact(integer)',
                             'meshhook_stats_rollups_remove()', 'meshhook_stats_rollups_truncate()'] loop
        execute format('alter function %s set search_path = pg_catalog, %I, pg_temp',
                       f, current_schema());
    end loop;
end
$$;

create trigger execution_time_rollups_insert
    after insert on execution_time_statistics
    referencing new table as new_rows
    for each statement execute function meshhook_stats_rollups_append();

create trigger execution_time_rollups_delete
    after delete on execution_time_statistics
    referencing old table as old_rows
    for each statement execute function meshhook_stats_rollups_remove();

create trigger execution_time_rollups_update
    after update on execution_time_statistics
    referencing old table as old_rows new table as new_rows
    for each statement execute function meshhook_stats_rollups_remove();

create trigger execution_time_rollups_truncate
    after truncate on execution_time_statistics
    for each statement execute function meshhook_stats_rollups_truncate();

-- The whole rollups, for people and SQL data sources: compacted plus pending, per key. They run
-- as the caller (security_invoker), so each table's row level security applies.
create view execution_time_rollups with (security_invoker = true) as
select project_id, workflow_id, status, bucket_start, sum(run_count)::bigint as run_count,
       sum(sum_ms) as sum_ms, min(min_ms) as min_ms, max(max_ms) as max_ms,
       sum(zero_count)::bigint as zero_count, meshhook_stats_sketch_sum(sketch) as sketch
from (
    select project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
           zero_count, sketch
    from execution_time_rollups_compacted
    union all
    select project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
           zero_count, sketch
    from execution_time_rollup_deltas
) as pieces
group by project_id, workflow_id, status, bucket_start;

create view execution_time_rollups_daily with (security_invoker = true) as
select project_id, workflow_id, status, bucket_start, sum(run_count)::bigint as run_count,
       sum(sum_ms) as sum_ms, min(min_ms) as min_ms, max(max_ms) as max_ms,
       sum(zero_count)::bigint as zero_count, meshhook_stats_sketch_sum(sketch) as sketch
from (
    select project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
           zero_count, sketch
    from execution_time_rollups_daily_compacted
    union all
    select project_id, workflow_id, status, date_trunc('day', bucket_start, 'UTC'), run_count,
           sum_ms, min_ms, max_ms, zero_count, sketch
    from execution_time_rollup_deltas
) as pieces
group by project_id, workflow_id, status, bucket_start;

comment on view execution_time_rollups is
    'Hourly (UTC) count, sum, min, max and 1 % log-bucket sketch of execution_time_ms: compacted plus pending (meshhook-stats).';
comment on view execution_time_rollups_daily is
    'Daily (UTC) count, sum, min, max and 1 % log-bucket sketch of execution_time_ms: compacted plus pending (meshhook-stats).';

grant select on execution_time_rollups, execution_time_rollups_daily to meshhook_stats_reader;

-- The views are derived: writing to them is refused with a reason (and, for a role without
-- the privilege, refused for that first).
create function meshhook_stats_rollups_read_only() returns trigger
    language plpgsql
as $$
begin
    raise exception 'meshhook-stats: % is derived from execution_time_statistics; change the rows instead',
        tg_table_name using errcode = 'feature_not_supported';
end
$$;
do $$
begin
    execute format('alter function meshhook_stats_rollups_read_only() set search_path = pg_catalog, %I, pg_temp',
                   current_schema());
end
$$;
create trigger execution_time_rollups_read_only
    instead of insert or update or delete on execution_time_rollups
    for each row execute function meshhook_stats_rollups_read_only();
create trigger execution_time_rollups_daily_read_only
    instead of insert or update or delete on execution_time_rollups_daily
    for each row execute function meshhook_stats_rollups_read_only();
