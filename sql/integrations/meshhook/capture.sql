-- MeshHook capture: records every finished run of MeshHook's workflow_runs (through
-- execution_time_captured_runs, which the compactor moves into execution_time_statistics), in
-- the same transaction that finishes the run.
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
