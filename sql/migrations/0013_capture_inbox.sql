-- 0013: the capture trigger appends to a narrow table and the compactor moves the rows on.
--
-- Measured (bench/capture/run.sh, docs/benchmarks.md): a captured run cost MeshHook's
-- transaction 70-110 µs of server time when the trigger inserted into execution_time_statistics
-- directly: five indexes, three checks and the statement trigger that appends the rollup delta,
-- all inside MeshHook's transaction. Here the trigger only appends one row to
-- execution_time_captured_runs: no index, no check, no trigger of its own, no key another
-- transaction can hold. The compactor (one short transaction per round, off MeshHook's path)
-- moves what is committed there into execution_time_statistics, where the rollup deltas are
-- appended in bulk, a few microseconds a run.
--
-- Nothing is late for a reader: the statistics endpoint reads the captured runs not moved yet
-- beside the rows (one statement, one snapshot; a move deletes and inserts in one transaction,
-- so a run is in exactly one of the two). Other readers of execution_time_statistics (SQL,
-- Grafana) see a captured run once the next round has moved it (compactor.interval_ms).

create table execution_time_captured_runs (
    run_id      uuid        not null,
    project_id  uuid        not null,
    workflow_id uuid        not null,
    status      text        not null,
    started_at  timestamptz not null,
    finished_at timestamptz not null
);

comment on table execution_time_captured_runs is
    'Runs the MeshHook capture trigger recorded and the compactor has not moved into '
    'execution_time_statistics yet (meshhook-stats).';

-- The trigger inserts as the owner (security definer); callers read their tenant's rows only.
alter table execution_time_captured_runs enable row level security;
alter table execution_time_captured_runs force row level security;
create policy meshhook_stats_caller_projects on execution_time_captured_runs for select to public
    using (project_id = any (array(select meshhook_stats_caller_project_ids())));
do $$
begin
    execute format('create policy meshhook_stats_owner on execution_time_captured_runs for all to %I '
                   'using (true) with check (true)', current_user);
end
$$;
grant select on execution_time_captured_runs to meshhook_stats_reader;

-- Integer milliseconds from two timestamps, microseconds rounded half up; a clock that went
-- backwards gives 0 (as the capture trigger always did).
create function meshhook_stats_elapsed_ms(started timestamptz, finished timestamptz) returns bigint
    language sql
    immutable
    parallel safe
    set search_path = pg_catalog, pg_temp
    return (greatest((extract(epoch from (finished - started)) * 1000000)::bigint, 0) + 500) / 1000;

-- Moves up to max_rows committed captured runs into execution_time_statistics, in the caller's
-- transaction. A run captured twice (finished, then moved to another terminal status) counts
-- its earliest finish, and a run already stored keeps its row, as before. A row Postgres
-- refuses (a duration over the table's limits, say) goes to execution_time_rejected_runs and
-- its neighbours move. Returns the runs moved (deleted from the captured table).
create function meshhook_stats_move_captured_runs(max_rows integer) returns integer
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
as $$
declare
    moved integer;
    r record;
    state text;
    message text;
begin
    begin
        with taken as (
            delete from execution_time_captured_runs
            where ctid = any (array(select ctid from execution_time_captured_runs
                                    limit max_rows for update skip locked))
            returning *
        ), stored as (
            insert into execution_time_statistics
                (run_id, project_id, workflow_id, status, started_at, finished_at,
                 execution_time_ms, source)
            select distinct on (run_id) run_id, project_id, workflow_id, status, started_at,
                   finished_at, meshhook_stats_elapsed_ms(started_at, finished_at), 'capture'
            from taken
            order by run_id, finished_at, status
            on conflict (run_id) do nothing
        )
        select count(*) into moved from taken;
        return moved;
    exception when others then
        null;  -- some run was refused: the statement undid itself; one run at a time below
    end;
    moved := 0;
    for r in select ctid as row_ctid, c.* from execution_time_captured_runs c
             order by run_id, finished_at, status limit max_rows for update skip locked loop
        begin
            insert into execution_time_statistics
                (run_id, project_id, workflow_id, status, started_at, finished_at,
                 execution_time_ms, source)
            values (r.run_id, r.project_id, r.workflow_id, r.status, r.started_at, r.finished_at,
                    meshhook_stats_elapsed_ms(r.started_at, r.finished_at), 'capture')
            on conflict (run_id) do nothing;
        exception when others then
            get stacked diagnostics state = returned_sqlstate, message = message_text;
            insert into execution_time_rejected_runs
                (run_id, project_id, source, sqlstate, reason, payload)
            values (r.run_id, r.project_id, 'capture', state, message,
                    to_jsonb(r) - 'row_ctid');
        end;
        delete from execution_time_captured_runs where ctid = r.row_ctid;
        moved := moved + 1;
    end loop;
    return moved;
end
$$;
comment on function meshhook_stats_move_captured_runs(integer) is
    'meshhook-stats: moves committed captured runs into execution_time_statistics';

-- The compactor's round: move what the capture trigger recorded, then fold the deltas (the
-- function of 0008/0010, renamed). Moving needs no lock of its own: two replicas moving at
-- once take disjoint rows (skip locked: neither waits for the other).
alter function meshhook_stats_compact(integer) rename to meshhook_stats_fold_deltas;
comment on function meshhook_stats_fold_deltas(integer) is
    'meshhook-stats: folds up to max_rows committed deltas into the compacted rollups';

create function meshhook_stats_compact(max_rows integer, out folded integer,
                                       out oldest_age_seconds float8)
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
as $$
begin
    perform meshhook_stats_move_captured_runs(max_rows);
    select f.folded, f.oldest_age_seconds into folded, oldest_age_seconds
    from meshhook_stats_fold_deltas(max_rows) as f;
end
$$;
comment on function meshhook_stats_compact(integer) is
    'meshhook-stats: one compactor round: moves captured runs, then folds up to max_rows deltas';

do $$
declare
    f text;
begin
    foreach f in array array['meshhook_stats_move_captured_runs(integer)',
                             'meshhook_stats_compact(integer)'] loop
        execute format('alter function %s set search_path = pg_catalog, %I, pg_temp',
                       f, current_schema());
    end loop;
end
$$;
