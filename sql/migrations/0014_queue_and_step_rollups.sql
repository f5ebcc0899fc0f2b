-- 0014: rollups of queue waits and step durations, kept as those of execution times are.
--
-- Until now every queue-times and step-times answer read the rows (0011): one tenant's 30 days
-- of a million queue rows took about a second, a million step rows of one workflow 2.5 s exact
-- and 4.4 s as a sketch built in the query. The three measures of those tables get the
-- aggregates of execution times (0008, 0012), in one pair of tables keyed by the measure:
--
--   queue_step_rollup_deltas      append-only. A statement-level trigger on
--                                 queue_time_statistics and step_time_statistics appends the
--                                 statement's grouped deltas per (measure, project, workflow,
--                                 step, status, UTC hour). Inserting takes no lock another
--                                 inserting transaction can hold.
--   queue_step_rollups_compacted  what the compactor has folded so far, at three levels: the
--                                 UTC hour, day and week (from Monday), so 400 days of one key
--                                 are about 57 weekly rows and a few edge days and hours.
--
-- measure is queue_wait or start_wait (one queue row gives one of each, step_id ''), or
-- step_duration (step_id the step). status is the run's outcome for queue waits, the step's for
-- steps: every filter and grouping the endpoints accept is answered from the rollups. Each
-- piece holds count, sum, min, max, zeros and the 1 % log-bucket sketch of the milliseconds
-- (meshhook_stats_sketch_index, the buckets of execution times), the attempts summed, and the
-- latest finished_at with that row's step type (step-times names a step by its latest type).
--
-- The compactor (meshhook_stats_compact, called by the daemon in short transactions of its
-- own, under the advisory lock of 0008) now folds these deltas too: the statement that deletes
-- a delta adds it to its hour, day and week, so a delta is pending or folded, never both.
-- Reads add the pending deltas of the range's hours to what is compacted, in one snapshot.
-- Deletes (retention) and updates are linear as in 0008: under the lock they fold what is
-- pending, subtract the deleted rows from their hours (min, max and the latest step type are
-- recomputed from that hour's rows only when a deleted row held them), and rebuild the touched
-- days from their hours and weeks from their days. The view queue_step_rollups shows compacted
-- plus pending for people and SQL data sources.
--
-- The queue and step tables are written by the daemon (writer, tailer, backfill) or by hand,
-- never inside MeshHook's transactions, so the triggers build their statement with EXECUTE
-- (one text for both tables) rather than keeping three copies of it.

create table queue_step_rollup_deltas (
    id                 bigint      generated always as identity primary key,
    measure            text        not null,
    project_id         uuid        not null,
    workflow_id        uuid        not null,
    step_id            text        not null,  -- '' for queue waits
    status             text        not null,
    bucket_start       timestamptz not null,  -- the UTC hour
    run_count          bigint      not null,
    sum_ms             numeric     not null,
    min_ms             bigint      not null,
    max_ms             bigint      not null,
    zero_count         bigint      not null,
    sketch             int4[]      not null,
    attempts           bigint      not null,  -- steps: summed; 0 for queue waits
    latest_finished_at timestamptz not null,
    latest_step_type   text        not null,  -- of the latest row (then the greatest type)
    created_at         timestamptz not null default now()
);
comment on table queue_step_rollup_deltas is
    'Rollup deltas of committed queue and step rows not yet folded by the compactor (meshhook-stats).';
create index queue_step_rollup_deltas_workflow_bucket
    on queue_step_rollup_deltas (workflow_id, measure, bucket_start);
create index queue_step_rollup_deltas_project_bucket
    on queue_step_rollup_deltas (project_id, measure, bucket_start);

create table queue_step_rollups_compacted (
    level              text        not null check (level in ('hour', 'day', 'week')),
    measure            text        not null
                       check (measure in ('queue_wait', 'start_wait', 'step_duration')),
    project_id         uuid        not null,
    workflow_id        uuid        not null,
    step_id            text        not null,
    status             text        not null,
    bucket_start       timestamptz not null,  -- the UTC hour, day or week (from Monday)
    run_count          bigint      not null,
    sum_ms             numeric     not null,
    min_ms             bigint      not null,
    max_ms             bigint      not null,
    zero_count         bigint      not null,
    sketch             int4[]      not null,
    attempts           bigint      not null,
    latest_finished_at timestamptz not null,
    latest_step_type   text        not null,
    primary key (workflow_id, measure, level, bucket_start, step_id, status, project_id)
);
comment on table queue_step_rollups_compacted is
    'Hourly, daily and weekly (UTC) rollups of queue waits and step durations folded by the compactor; add queue_step_rollup_deltas for the whole (meshhook-stats).';
create index queue_step_rollups_compacted_project_bucket
    on queue_step_rollups_compacted (project_id, measure, level, bucket_start);

do $$
declare
    t text;
begin
    foreach t in array array['queue_step_rollup_deltas', 'queue_step_rollups_compacted'] loop
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

-- One piece of the rollups, as the grouping below makes it (the deleted rows of a statement).
create type meshhook_stats_queue_step_piece as (
    measure            text,
    project_id         uuid,
    workflow_id        uuid,
    step_id            text,
    status             text,
    bucket_start       timestamptz,
    run_count          bigint,
    sum_ms             numeric,
    min_ms             bigint,
    max_ms             bigint,
    zero_count         bigint,
    sketch             int4[],
    attempts           bigint,
    latest_finished_at timestamptz,
    latest_step_type   text
);

-- The rows of a queue or step table (or of its transition table) as (measure, project_id,
-- workflow_id, step_id, status, finished_at, v, attempts, step_type): a queue row is one row of
-- each queue measure.
create function meshhook_stats_queue_step_rows_sql(source_table text, rows_name text) returns text
    language sql
    immutable
    set search_path = pg_catalog, pg_temp
    return case source_table
        when 'queue_time_statistics' then format(
            'select ''queue_wait''::text as measure, project_id, workflow_id, ''''::text as step_id,'
            ' status, finished_at, queue_wait_ms as v, 0::bigint as attempts, ''''::text as step_type'
            ' from %1$I union all'
            ' select ''start_wait'', project_id, workflow_id, '''', status, finished_at,'
            ' start_wait_ms, 0, '''' from %1$I', rows_name)
        when 'step_time_statistics' then format(
            'select ''step_duration''::text as measure, project_id, workflow_id, step_id, status,'
            ' finished_at, duration_ms as v, attempts::bigint as attempts, step_type from %I',
            rows_name)
    end;

-- Those rows grouped into pieces (the columns of meshhook_stats_queue_step_piece): per key and
-- sketch bucket first, then per key, as 0008's trigger does.
create function meshhook_stats_queue_step_pieces_sql(rows_sql text) returns text
    language sql
    immutable
    set search_path = pg_catalog, pg_temp
    return format(
        'select measure, project_id, workflow_id, step_id, status, bucket_start, sum(n)::bigint,'
        ' sum(s), min(lo), max(hi), coalesce(sum(n) filter (where i is null), 0)::bigint,'
        ' coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null), ''{}''),'
        ' sum(a)::bigint, max(latest),'
        ' (array_agg(latest_type order by latest desc, latest_type desc))[1]'
        ' from (select measure, project_id, workflow_id, step_id, status,'
        '   date_trunc(''hour'', finished_at, ''UTC'') as bucket_start,'
        '   meshhook_stats_sketch_index(v) as i, count(*) as n, sum(v) as s, min(v) as lo,'
        '   max(v) as hi, sum(attempts) as a, max(finished_at) as latest,'
        '   (array_agg(step_type order by finished_at desc, step_type desc))[1] as latest_type'
        '   from (%s) as r group by 1, 2, 3, 4, 5, 6, 7) as b'
        ' group by 1, 2, 3, 4, 5, 6', rows_sql);

create function meshhook_stats_queue_step_append_sql(source_table text, rows_name text) returns text
    language sql
    immutable
    set search_path = pg_catalog, pg_temp
    return 'insert into queue_step_rollup_deltas (measure, project_id, workflow_id, step_id,'
           ' status, bucket_start, run_count, sum_ms, min_ms, max_ms, zero_count, sketch,'
           ' attempts, latest_finished_at, latest_step_type) '
           || meshhook_stats_queue_step_pieces_sql(
                  meshhook_stats_queue_step_rows_sql(source_table, rows_name));

-- Security definer: a writer-role login inserts rows but has no grant on the deltas.
create function meshhook_stats_queue_step_rollups_append() returns trigger
    language plpgsql
    security definer
as $$
begin
    execute meshhook_stats_queue_step_append_sql(tg_table_name, 'new_rows');
    return null;
end
$$;

-- Folds up to max_rows committed deltas (oldest first) into their hour, day and week and deletes
-- them, in the caller's transaction, under the compactor's lock (-1 when another holds it). The
-- levels' totals and sketches come from one aggregate each over the deltas times the three
-- levels; each touched row is merged once.
create function meshhook_stats_fold_queue_step_deltas(max_rows integer, out folded integer,
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
        delete from queue_step_rollup_deltas
        where id in (select id from queue_step_rollup_deltas order by id limit max_rows)
        returning *
    ), leveled as (
        select l.level, t.measure, t.project_id, t.workflow_id, t.step_id, t.status,
               date_trunc(l.level, t.bucket_start, 'UTC') as b, t.run_count, t.sum_ms, t.min_ms,
               t.max_ms, t.zero_count, t.sketch, t.attempts, t.latest_finished_at,
               t.latest_step_type
        from taken t cross join (values ('hour'), ('day'), ('week')) as l(level)
    ), totals as (
        select level, measure, project_id, workflow_id, step_id, status, b,
               sum(run_count) as n, sum(sum_ms) as s, min(min_ms) as lo, max(max_ms) as hi,
               sum(zero_count) as z, sum(attempts) as a, max(latest_finished_at) as latest,
               (array_agg(latest_step_type order by latest_finished_at desc,
                          latest_step_type desc))[1] as latest_type
        from leveled
        group by 1, 2, 3, 4, 5, 6, 7
    ), sketches as (
        select level, measure, project_id, workflow_id, step_id, status, b,
               array_agg(array[i, c::int4] order by i) as sk
        from (
            select x.level, x.measure, x.project_id, x.workflow_id, x.step_id, x.status, x.b,
                   u.i, sum(u.c) as c
            from leveled x, unnest(x.sketch[:][1:1], x.sketch[:][2:2]) as u(i, c)
            group by 1, 2, 3, 4, 5, 6, 7, 8
        ) as cells
        group by 1, 2, 3, 4, 5, 6, 7
    ), merged as (
        insert into queue_step_rollups_compacted as r
            (level, measure, project_id, workflow_id, step_id, status, bucket_start, run_count,
             sum_ms, min_ms, max_ms, zero_count, sketch, attempts, latest_finished_at,
             latest_step_type)
        select t.level, t.measure, t.project_id, t.workflow_id, t.step_id, t.status, t.b, t.n,
               t.s, t.lo, t.hi, t.z, coalesce(k.sk, '{}'), t.a, t.latest, t.latest_type
        from totals t
        left join sketches k using (level, measure, project_id, workflow_id, step_id, status, b)
        order by t.workflow_id, t.measure, t.level, t.b, t.step_id, t.status, t.project_id
        on conflict (workflow_id, measure, level, bucket_start, step_id, status, project_id)
        do update set
            run_count          = r.run_count + excluded.run_count,
            sum_ms             = r.sum_ms + excluded.sum_ms,
            min_ms             = least(r.min_ms, excluded.min_ms),
            max_ms             = greatest(r.max_ms, excluded.max_ms),
            zero_count         = r.zero_count + excluded.zero_count,
            sketch             = meshhook_stats_sketch_merge(r.sketch, excluded.sketch),
            attempts           = r.attempts + excluded.attempts,
            latest_finished_at = greatest(r.latest_finished_at, excluded.latest_finished_at),
            latest_step_type   = case when (excluded.latest_finished_at, excluded.latest_step_type)
                                           > (r.latest_finished_at, r.latest_step_type)
                                      then excluded.latest_step_type
                                      else r.latest_step_type end
    )
    select count(*)::int, extract(epoch from clock_timestamp() - min(created_at))::float8
    into folded, oldest_age_seconds
    from taken;
end
$$;
comment on function meshhook_stats_fold_queue_step_deltas(integer) is
    'meshhook-stats: folds up to max_rows queue and step rollup deltas into the compacted levels';

-- 0013's round, folding the queue and step deltas after the run deltas, under the same lock.
create or replace function meshhook_stats_compact(max_rows integer, out folded integer,
                                                  out oldest_age_seconds float8)
    language plpgsql
    security definer
as $$
declare
    more integer;
    more_age float8;
begin
    perform meshhook_stats_move_captured_runs(max_rows);
    select f.folded, f.oldest_age_seconds into folded, oldest_age_seconds
    from meshhook_stats_fold_deltas(max_rows) as f;
    if folded >= 0 then
        select f.folded, f.oldest_age_seconds into more, more_age
        from meshhook_stats_fold_queue_step_deltas(max_rows) as f;
        folded := folded + more;
        oldest_age_seconds := greatest(oldest_age_seconds, more_age);
    end if;
end
$$;

-- What a key's rows hold in one UTC hour: the least or greatest value, and the step type of the
-- latest row (as the fold picks it). Only called when a deleted row held it.
create function meshhook_stats_queue_step_extreme(m text, project uuid, workflow uuid, step text,
                                                  st text, hour timestamptz, greatest_one boolean)
    returns bigint
    language sql
    stable
as $$
    select case when greatest_one then max(v) else min(v) end
    from (
        select case m when 'queue_wait' then queue_wait_ms else start_wait_ms end as v
        from queue_time_statistics
        where m in ('queue_wait', 'start_wait') and workflow_id = workflow
          and project_id = project and status = st
          and finished_at >= hour and finished_at < hour + interval '1 hour'
        union all
        select duration_ms from step_time_statistics
        where m = 'step_duration' and workflow_id = workflow and project_id = project
          and step_id = step and status = st
          and finished_at >= hour and finished_at < hour + interval '1 hour'
    ) as r
$$;

create function meshhook_stats_queue_step_latest(m text, project uuid, workflow uuid, step text,
                                                 st text, hour timestamptz,
                                                 out finished_at timestamptz, out step_type text)
    language sql
    stable
as $$
    select r.finished_at, r.step_type
    from (
        select q.finished_at, ''::text as step_type from queue_time_statistics q
        where m in ('queue_wait', 'start_wait') and q.workflow_id = workflow
          and q.project_id = project and q.status = st
          and q.finished_at >= hour and q.finished_at < hour + interval '1 hour'
        union all
        select s.finished_at, s.step_type from step_time_statistics s
        where m = 'step_duration' and s.workflow_id = workflow and s.project_id = project
          and s.step_id = step and s.status = st
          and s.finished_at >= hour and s.finished_at < hour + interval '1 hour'
    ) as r
    order by r.finished_at desc, r.step_type desc
    limit 1
$$;

-- Deletes and updates of queue or step rows: fold what is pending (so the compacted levels cover
-- every visible row), subtract the old rows from their hours, drop emptied hours, rebuild the
-- touched days from their hours and the touched weeks from their days; for an update, append
-- the new rows as deltas.
create function meshhook_stats_queue_step_rollups_remove() returns trigger
    language plpgsql
    security definer
as $$
declare
    gone meshhook_stats_queue_step_piece[];
    lower_level text;
    upper_level text;
    span interval;
begin
    perform pg_advisory_xact_lock(hashtextextended('meshhook-stats compactor', 0));
    perform meshhook_stats_fold_queue_step_deltas(2147483647);
    execute format('select coalesce(array_agg(row(p.*)::meshhook_stats_queue_step_piece), ''{}'')'
                   ' from (%s) as p',
                   meshhook_stats_queue_step_pieces_sql(
                       meshhook_stats_queue_step_rows_sql(tg_table_name, 'old_rows')))
    into gone;

    update queue_step_rollups_compacted r set
        run_count  = r.run_count - g.run_count,
        sum_ms     = r.sum_ms - g.sum_ms,
        zero_count = r.zero_count - g.zero_count,
        sketch     = meshhook_stats_sketch_subtract(r.sketch, g.sketch),
        attempts   = r.attempts - g.attempts,
        min_ms     = case when g.min_ms > r.min_ms or r.run_count = g.run_count then r.min_ms
                          else coalesce(meshhook_stats_queue_step_extreme(
                                   r.measure, r.project_id, r.workflow_id, r.step_id, r.status,
                                   r.bucket_start, false), r.min_ms) end,
        max_ms     = case when g.max_ms < r.max_ms or r.run_count = g.run_count then r.max_ms
                          else coalesce(meshhook_stats_queue_step_extreme(
                                   r.measure, r.project_id, r.workflow_id, r.step_id, r.status,
                                   r.bucket_start, true), r.max_ms) end,
        latest_finished_at =
            case when (g.latest_finished_at, g.latest_step_type)
                      < (r.latest_finished_at, r.latest_step_type)
                      or r.run_count = g.run_count then r.latest_finished_at
                 else coalesce((meshhook_stats_queue_step_latest(
                          r.measure, r.project_id, r.workflow_id, r.step_id, r.status,
                          r.bucket_start)).finished_at, r.latest_finished_at) end,
        latest_step_type =
            case when (g.latest_finished_at, g.latest_step_type)
                      < (r.latest_finished_at, r.latest_step_type)
                      or r.run_count = g.run_count then r.latest_step_type
                 else coalesce((meshhook_stats_queue_step_latest(
                          r.measure, r.project_id, r.workflow_id, r.step_id, r.status,
                          r.bucket_start)).step_type, r.latest_step_type) end
    from unnest(gone) as g
    where r.workflow_id = g.workflow_id and r.measure = g.measure and r.level = 'hour'
      and r.bucket_start = g.bucket_start and r.step_id = g.step_id and r.status = g.status
      and r.project_id = g.project_id;

    delete from queue_step_rollups_compacted r
    using unnest(gone) as g
    where r.workflow_id = g.workflow_id and r.measure = g.measure and r.level = 'hour'
      and r.bucket_start = g.bucket_start and r.step_id = g.step_id and r.status = g.status
      and r.project_id = g.project_id and r.run_count <= 0;

    -- The touched days from their hours (at most 24 rows a key), then the touched weeks from
    -- their days (at most 7).
    for lower_level, upper_level, span in
        select * from (values ('hour', 'day', interval '1 day'),
                              ('day', 'week', interval '7 days')) as l(lower_level, upper_level, span)
    loop
        delete from queue_step_rollups_compacted r
        using (select distinct measure, project_id, workflow_id, step_id, status,
                      date_trunc(upper_level, bucket_start, 'UTC') as b from unnest(gone)) as t
        where r.workflow_id = t.workflow_id and r.measure = t.measure and r.level = upper_level
          and r.bucket_start = t.b and r.step_id = t.step_id and r.status = t.status
          and r.project_id = t.project_id;
        insert into queue_step_rollups_compacted
            (level, measure, project_id, workflow_id, step_id, status, bucket_start, run_count,
             sum_ms, min_ms, max_ms, zero_count, sketch, attempts, latest_finished_at,
             latest_step_type)
        select upper_level, h.measure, h.project_id, h.workflow_id, h.step_id, h.status, t.b,
               sum(h.run_count), sum(h.sum_ms), min(h.min_ms), max(h.max_ms), sum(h.zero_count),
               meshhook_stats_sketch_sum(h.sketch), sum(h.attempts), max(h.latest_finished_at),
               (array_agg(h.latest_step_type order by h.latest_finished_at desc,
                          h.latest_step_type desc))[1]
        from (select distinct measure, project_id, workflow_id, step_id, status,
                     date_trunc(upper_level, bucket_start, 'UTC') as b from unnest(gone)) as t
        join queue_step_rollups_compacted h
          on h.workflow_id = t.workflow_id and h.measure = t.measure and h.level = lower_level
         and h.bucket_start >= t.b and h.bucket_start < t.b + span and h.step_id = t.step_id
         and h.status = t.status and h.project_id = t.project_id
        group by h.measure, h.project_id, h.workflow_id, h.step_id, h.status, t.b;
    end loop;

    if tg_op = 'UPDATE' then
        execute meshhook_stats_queue_step_append_sql(tg_table_name, 'new_rows');
    end if;
    return null;
end
$$;

create function meshhook_stats_queue_step_rollups_truncate() returns trigger
    language plpgsql
    security definer
as $$
begin
    perform pg_advisory_xact_lock(hashtextextended('meshhook-stats compactor', 0));
    delete from queue_step_rollup_deltas
    where (measure = 'step_duration') = (tg_table_name = 'step_time_statistics');
    delete from queue_step_rollups_compacted
    where (measure = 'step_duration') = (tg_table_name = 'step_time_statistics');
    return null;
end
$$;

do $$
declare
    f text;
begin
    foreach f in array array['meshhook_stats_queue_step_rollups_append()',
                             'meshhook_stats_fold_queue_step_deltas(integer)',
                             'meshhook_stats_compact(integer)',
                             'meshhook_stats_queue_step_extreme(text, uuid, uuid, text, text, timestamptz, boolean)',
                             'meshhook_stats_queue_step_latest(text, uuid, uuid, text, text, timestamptz)',
                             'meshhook_stats_queue_step_rollups_remove()',
                             'meshhook_stats_queue_step_rollups_truncate()'] loop
        execute format('alter function %s set search_path = pg_catalog, %I, pg_temp',
                       f, current_schema());
    end loop;
end
$$;

-- What is stored so far, folded under the compactor's lock before the triggers exist (the
-- migration's transaction holds the tables' rows as they are).
select pg_advisory_xact_lock(hashtextextended('meshhook-stats compactor', 0));
do $$
begin
    execute meshhook_stats_queue_step_append_sql('queue_time_statistics', 'queue_time_statistics');
    execute meshhook_stats_queue_step_append_sql('step_time_statistics', 'step_time_statistics');
    perform meshhook_stats_fold_queue_step_deltas(2147483647);
end
$$;

do $$
declare
    t text;
begin
    foreach t in array array['queue_time_statistics', 'step_time_statistics'] loop
        execute format('create trigger %s_rollups_insert after insert on %I'
                       ' referencing new table as new_rows'
                       ' for each statement execute function meshhook_stats_queue_step_rollups_append()',
                       replace(t, '_statistics', ''), t);
        execute format('create trigger %s_rollups_delete after delete on %I'
                       ' referencing old table as old_rows'
                       ' for each statement execute function meshhook_stats_queue_step_rollups_remove()',
                       replace(t, '_statistics', ''), t);
        execute format('create trigger %s_rollups_update after update on %I'
                       ' referencing old table as old_rows new table as new_rows'
                       ' for each statement execute function meshhook_stats_queue_step_rollups_remove()',
                       replace(t, '_statistics', ''), t);
        execute format('create trigger %s_rollups_truncate after truncate on %I'
                       ' for each statement execute function meshhook_stats_queue_step_rollups_truncate()',
                       replace(t, '_statistics', ''), t);
    end loop;
end
$$;

-- The whole rollups, compacted plus pending per key and level, for people and SQL data sources
-- (security_invoker: each table's row level security applies).
create view queue_step_rollups with (security_invoker = true) as
select level, measure, project_id, workflow_id, step_id, status, bucket_start,
       sum(run_count)::bigint as run_count, sum(sum_ms) as sum_ms, min(min_ms) as min_ms,
       max(max_ms) as max_ms, sum(zero_count)::bigint as zero_count,
       meshhook_stats_sketch_sum(sketch) as sketch, sum(attempts)::bigint as attempts,
       max(latest_finished_at) as latest_finished_at,
       (array_agg(latest_step_type order by latest_finished_at desc, latest_step_type desc))[1]
           as latest_step_type
from (
    select level, measure, project_id, workflow_id, step_id, status, bucket_start, run_count,
           sum_ms, min_ms, max_ms, zero_count, sketch, attempts, latest_finished_at,
           latest_step_type
    from queue_step_rollups_compacted
    union all
    select l.level, d.measure, d.project_id, d.workflow_id, d.step_id, d.status,
           date_trunc(l.level, d.bucket_start, 'UTC'), d.run_count, d.sum_ms, d.min_ms, d.max_ms,
           d.zero_count, d.sketch, d.attempts, d.latest_finished_at, d.latest_step_type
    from queue_step_rollup_deltas d cross join (values ('hour'), ('day'), ('week')) as l(level)
) as pieces
group by level, measure, project_id, workflow_id, step_id, status, bucket_start;
comment on view queue_step_rollups is
    'Hourly, daily and weekly (UTC) count, sum, min, max and 1 % sketch of queue waits and step durations: compacted plus pending (meshhook-stats).';
grant select on queue_step_rollups to meshhook_stats_reader;

-- Tenant roles (0009, 0011, 0012) read them too; roles granted already get them now.
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
                 'execution_time_rollups_weekly_all_compacted',
                 'queue_step_rollups', 'queue_step_rollups_compacted', 'queue_step_rollup_deltas']
$$;

do $$
declare
    role_name name;
begin
    for role_name in select distinct r.rolname from meshhook_stats_tenant_roles m
                     join pg_roles r on r.oid = m.tenant_role
    loop
        execute format('grant select on queue_step_rollups, queue_step_rollups_compacted, '
                       'queue_step_rollup_deltas to %I', role_name);
    end loop;
end
$$;
