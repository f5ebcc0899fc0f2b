-- MeshHook capture: records every finished run of MeshHook's workflow_runs (through
-- execution_time_captured_runs, which the compactor moves into execution_time_statistics), in
-- the same transaction that finishes the run.
--
-- Where MeshHook also has job_tracking and workflow_events, it installs the functions the
-- daemon calls, outside MeshHook's transactions, to derive a captured run's queue wait and
-- steps from them (meshhook_stats_record_run_details, at the end of this file). Nothing is
-- added to those two tables: workflow_events takes MeshHook's most frequent inserts.
--
-- Install into MeshHook's database after `meshhook-stats migrate` (which creates
-- execution_time_statistics):  psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f capture.sql
-- Safe to run again. Where workflow_runs does not exist it installs nothing and says so.

-- It appends one row to execution_time_captured_runs and nothing else: no index, no check, no
-- trigger of its own there, so MeshHook's transaction pays for a short heap insert and takes no
-- lock another run's transaction can hold. The compactor moves committed rows on into
-- execution_time_statistics in its own transactions (migration 0013); the statistics endpoint
-- reads the rows not moved yet beside the others, so a finished run counts at once.
--
-- Which changes are recorded is decided by the triggers' WHEN clauses (below), evaluated
-- without calling any function: a terminal status with finished_at and started_at set, and for
-- updates only when the status or finished_at changed.
--
-- security definer: the row is written with the table owner's rights, so the trigger keeps
-- working although MeshHook's worker role has no grant on our tables. search_path is pinned
-- (below) to the catalog, the schema this script runs in, then pg_temp: last, so that a
-- temporary table of the caller's (a MeshHook worker may create them) never stands in for ours
-- while this runs as the owner.
--
-- It never fails MeshHook's transaction: any error (our table missing, disk trouble) is caught,
-- and the run goes to execution_time_rejected_runs with the reason (when even that fails, the
-- run is only missing).
create or replace function meshhook_stats_capture_run() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
as $$
declare
    state text;
    message text;
begin
    insert into execution_time_captured_runs
        (run_id, project_id, workflow_id, status, started_at, finished_at)
    values (new.id, new.project_id, new.workflow_id, new.status, new.started_at, new.finished_at);
    return null;
exception when others then
    get stacked diagnostics state = returned_sqlstate, message = message_text;
    begin
        insert into execution_time_rejected_runs
            (run_id, project_id, source, sqlstate, reason, payload)
        values
            (new.id, new.project_id, 'capture', state, message,
             jsonb_build_object('run_id', new.id, 'project_id', new.project_id,
                                'workflow_id', new.workflow_id, 'status', new.status,
                                'started_at', new.started_at,
                                'finished_at', new.finished_at));
    exception when others then
        null;  -- nowhere to record it; MeshHook's transaction still commits
    end;
    return null;
end
$$;

comment on function meshhook_stats_capture_run() is
    'meshhook-stats: records finished workflow_runs in execution_time_statistics';

do $$
begin
    execute format('alter function meshhook_stats_capture_run() set search_path = pg_catalog, %I, pg_temp',
                   current_schema());
end
$$;

do $$
begin
    if to_regclass('workflow_runs') is null then
        raise notice 'meshhook-stats: table workflow_runs not found; capture trigger not installed';
        return;
    end if;
    drop trigger if exists meshhook_stats_capture_run on workflow_runs;
    drop trigger if exists meshhook_stats_capture_run_insert on workflow_runs;
    -- The WHEN clauses keep non-terminal updates (running, paused, step progress), repeated
    -- writes of a finished run and runs without a start free of any function call.
    create trigger meshhook_stats_capture_run
        after update of status, finished_at on workflow_runs
        for each row
        when (new.status in ('succeeded', 'failed', 'canceled') and new.finished_at is not null
              and new.started_at is not null
              and (old.status is distinct from new.status
                   or old.finished_at is distinct from new.finished_at))
        execute function meshhook_stats_capture_run();
    create trigger meshhook_stats_capture_run_insert
        after insert on workflow_runs
        for each row
        when (new.status in ('succeeded', 'failed', 'canceled') and new.finished_at is not null
              and new.started_at is not null)
        execute function meshhook_stats_capture_run();
end
$$;

-- Queue waits and steps of recorded runs, derived from job_tracking and workflow_events.
--
-- The daemon (tailer, backfill) calls meshhook_stats_record_run_details with the ids of runs
-- already in execution_time_statistics, once they have settled (their finish committed long
-- enough ago that the last step event and job row are in: docs/meshhook.md). It appends to
-- queue_time_statistics and step_time_statistics (on conflict do nothing, so calling it again
-- for the same runs adds nothing) and returns what it inserted: one row per queue row
-- (step_id null, duration_ms = the queue wait) and per step row, for the metrics.
--
-- What the rows mean (the same for ingest, capture and backfill):
--   queue   the run's jobs with started_at set: jobs = their count, queue_wait = the sum of
--           greatest(started_at - enqueued_at, 0); queued_at, started_at and start_wait are the
--           first job's (smallest enqueued_at). A run without a started job has no queue row.
--   steps   events step_started, http_attempted, step_succeeded and step_failed grouped by node
--           id (payload.node.id, or payload.node when it is a string or number). A step is recorded only
--           when its last event (by ts, then id) is step_succeeded or step_failed and it has a
--           step_started: status is that last event's, started_at the first step_started,
--           finished_at the last event's ts, attempts the step_failed count plus 1 if it
--           succeeded. A step that never ended is not invented; neither is a node id outside
--           1..200 characters (skipped) nor a step type (from step_started, '' when missing;
--           cut to 100 characters).
-- Milliseconds are microseconds rounded half up, like execution_time_ms.
--
-- Not security definer: the daemon calls it with its own rights (it owns the statistics
-- tables and reads MeshHook's), so it grants nobody anything. Execute is revoked from public.
do $install$
declare
    schema_name text := current_schema();
begin
    if to_regclass('job_tracking') is null or to_regclass('workflow_events') is null then
        drop function if exists meshhook_stats_record_run_details(uuid[], text);
        drop function if exists meshhook_stats_insert_run_details(uuid[], text);
        raise notice 'meshhook-stats: job_tracking or workflow_events not found; queue waits and '
                     'steps are not captured';
        return;
    end if;

    -- One statement for a batch of runs. SQL (not plpgsql) so the planner sees the whole
    -- thing; $1 and $2 rather than names, which the tables' columns would shadow.
    execute format($fn$
create or replace function meshhook_stats_insert_run_details(run_ids uuid[], source text)
    returns table (run_id uuid, step_id text, status text, duration_ms bigint)
    language sql
    volatile
    set search_path = pg_catalog, %I, pg_temp
as $body$
with runs as materialized (
    select s.run_id, s.project_id, s.workflow_id, s.status, s.finished_at
    from execution_time_statistics s
    where s.run_id = any ($1)
),
jobs as (
    select j.run_id,
           count(*)::integer as jobs,
           -- sum(bigint) is numeric: back to bigint, or the division below would not truncate.
           sum(greatest((extract(epoch from (j.started_at - j.enqueued_at)) * 1000000)::bigint,
                        0))::bigint as wait_us,
           (array_agg(j.enqueued_at order by j.enqueued_at, j.started_at, j.id))[1] as queued_at,
           (array_agg(j.started_at order by j.enqueued_at, j.started_at, j.id))[1] as started_at
    from runs r
    join job_tracking j on j.run_id = r.run_id
    where j.started_at is not null
    group by j.run_id
),
queue_rows as (
    insert into queue_time_statistics
        (run_id, project_id, workflow_id, status, finished_at, queued_at, started_at, jobs,
         queue_wait_ms, start_wait_ms, source)
    select r.run_id, r.project_id, r.workflow_id, r.status, r.finished_at, j.queued_at,
           j.started_at, j.jobs, (j.wait_us + 500) / 1000,
           (greatest((extract(epoch from (j.started_at - j.queued_at)) * 1000000)::bigint, 0)
            + 500) / 1000,
           $2
    from runs r
    join jobs j on j.run_id = r.run_id
    on conflict (run_id) do nothing
    returning queue_time_statistics.run_id, null::text, queue_time_statistics.status,
              queue_time_statistics.queue_wait_ms
),
events as (
    select e.run_id, e.id, e.ts, e.type,
           -- {"node": {"id": ..., "type": ...}} or {"node": "id"}; a node object without an id
           -- (or an array) names no step.
           case jsonb_typeof(e.payload -> 'node')
               when 'object' then e.payload -> 'node' ->> 'id'
               when 'string' then e.payload ->> 'node'
               when 'number' then e.payload ->> 'node'
           end as node_id,
           e.payload -> 'node' ->> 'type' as node_type
    from runs r
    join workflow_events e on e.run_id = r.run_id
    where e.type in ('step_started', 'http_attempted', 'step_succeeded', 'step_failed')
),
steps as (
    select ev.run_id, ev.node_id,
           min(ev.ts) filter (where ev.type = 'step_started') as started_at,
           (array_agg(ev.node_type order by ev.ts, ev.id)
                filter (where ev.type = 'step_started' and ev.node_type is not null))[1]
               as node_type,
           count(*) filter (where ev.type = 'step_failed') as failures,
           (array_agg(ev.type order by ev.ts desc, ev.id desc))[1] as last_type,
           max(ev.ts) as last_ts
    from events ev
    where ev.node_id is not null
    group by ev.run_id, ev.node_id
),
step_rows as (
    insert into step_time_statistics
        (run_id, step_id, step_type, project_id, workflow_id, status, attempts, started_at,
         finished_at, duration_ms, source)
    select r.run_id, s.node_id, left(coalesce(s.node_type, ''), 100), r.project_id,
           r.workflow_id,
           case s.last_type when 'step_succeeded' then 'succeeded' else 'failed' end,
           greatest(s.failures + (s.last_type = 'step_succeeded')::integer, 1),
           s.started_at, s.last_ts,
           (greatest((extract(epoch from (s.last_ts - s.started_at)) * 1000000)::bigint, 0)
            + 500) / 1000,
           $2
    from steps s
    join runs r on r.run_id = s.run_id
    where s.last_type in ('step_succeeded', 'step_failed')
      and s.started_at is not null
      and length(s.node_id) between 1 and 200
    on conflict (run_id, step_id) do nothing
    returning step_time_statistics.run_id, step_time_statistics.step_id,
              step_time_statistics.status, step_time_statistics.duration_ms
)
select * from queue_rows
union all
select * from step_rows
$body$
$fn$, schema_name);

    -- The entry point: the whole batch in one statement; when Postgres refuses a value of
    -- one run's rows (a data exception or a constraint, SQLSTATE class 22 or 23), one run at
    -- a time, and a run that still fails goes to execution_time_rejected_runs with the reason:
    -- the batch is never lost for one bad run. Any other error (a table missing, no privilege,
    -- a lock timeout) is the database's, not the run's: it goes to the caller, which records
    -- nothing and tries again later. The result is gathered before it is returned, so a
    -- statement rolled back returns nothing.
    execute format($fn$
create or replace function meshhook_stats_record_run_details(run_ids uuid[], source text)
    returns table (run_id uuid, step_id text, status text, duration_ms bigint)
    language plpgsql
    volatile
    set search_path = pg_catalog, %I, pg_temp
as $body$
declare
    done jsonb := '[]';
    one jsonb;
    failed_run uuid;
    state text;
    message text;
begin
    begin
        select coalesce(jsonb_agg(to_jsonb(d)), '[]') into done
        from meshhook_stats_insert_run_details(run_ids, source) d;
    exception when data_exception or integrity_constraint_violation then
        done := '[]';
        foreach failed_run in array run_ids loop
            begin
                select coalesce(jsonb_agg(to_jsonb(d)), '[]') into one
                from meshhook_stats_insert_run_details(array[failed_run], source) d;
                done := done || one;
            exception when data_exception or integrity_constraint_violation then
                get stacked diagnostics state = returned_sqlstate, message = message_text;
                insert into execution_time_rejected_runs
                    (run_id, project_id, source, sqlstate, reason, payload)
                select failed_run, s.project_id, meshhook_stats_record_run_details.source, state,
                       'queue wait and steps: ' || message,
                       jsonb_build_object('run_id', failed_run, 'details', true)
                from (select 1) one_row
                left join execution_time_statistics s on s.run_id = failed_run;
            end;
        end loop;
    end;
    return query
        select x.run_id, x.step_id, x.status, x.duration_ms
        from jsonb_to_recordset(done) as x(run_id uuid, step_id text, status text,
                                           duration_ms bigint);
end
$body$
$fn$, schema_name);

    revoke all on function meshhook_stats_insert_run_details(uuid[], text) from public;
    revoke all on function meshhook_stats_record_run_details(uuid[], text) from public;
    comment on function meshhook_stats_record_run_details(uuid[], text) is
        'meshhook-stats: records the queue wait and steps of recorded runs from job_tracking '
        'and workflow_events';
end
$install$;
