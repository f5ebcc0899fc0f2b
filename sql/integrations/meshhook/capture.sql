-- MeshHook capture: records every finished run of MeshHook's workflow_runs in
-- execution_time_statistics, in the same transaction that finishes the run.
--
-- Install into MeshHook's database after `meshhook-stats migrate` (which creates
-- execution_time_statistics):  psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f capture.sql
-- Safe to run again. Where workflow_runs does not exist it installs nothing and says so.

-- security definer: the row is written with the table owner's rights, so the trigger keeps
-- working when execution_time_statistics gets row level security and the worker role has no
-- grant on it. search_path is pinned (below) to the catalog, the schema this script runs in,
-- then pg_temp: last, so that a temporary table of the caller's (a MeshHook worker may create
-- them) never stands in for execution_time_statistics while this runs as the owner.
--
-- It never fails MeshHook's transaction: any error (our table missing, a constraint, an
-- overflow) is caught, and the run goes to execution_time_rejected_runs with the reason
-- (when even that fails, the run is only missing). It appends only: the insert takes no lock
-- another run's transaction holds (the rollups are folded later, off this path).
create or replace function meshhook_stats_capture_run() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
as $$
declare
    elapsed_us bigint;
    state text;
    message text;
begin
    -- Repeated updates of a finished run (or the same status written twice) add nothing:
    -- the row is keyed by run_id.
    if tg_op = 'UPDATE' and old.status = new.status
            and old.finished_at is not distinct from new.finished_at then
        return null;
    end if;
    if new.started_at is null then
        return null;
    end if;
    begin
        elapsed_us := (extract(epoch from (new.finished_at - new.started_at)) * 1000000)::bigint;
        insert into execution_time_statistics
            (run_id, project_id, workflow_id, status, started_at, finished_at,
             execution_time_ms, source)
        values
            (new.id, new.project_id, new.workflow_id, new.status, new.started_at, new.finished_at,
             -- Integer milliseconds, microseconds rounded half up; a clock that went backwards
             -- records 0 rather than failing MeshHook's transaction.
             (greatest(elapsed_us, 0) + 500) / 1000,
             'capture')
        on conflict (run_id) do nothing;
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
    -- The WHEN clause keeps non-terminal updates (running, paused, step progress) free of any
    -- function call.
    create trigger meshhook_stats_capture_run
        after insert or update of status, finished_at on workflow_runs
        for each row
        when (new.status in ('succeeded', 'failed', 'canceled') and new.finished_at is not null)
        execute function meshhook_stats_capture_run();
end
$$;
