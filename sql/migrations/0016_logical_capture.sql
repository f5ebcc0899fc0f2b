-- 0016: the store of the logical capture (capture.mode: logical, docs/meshhook.md).
--
-- There MeshHook's workflow_runs has no trigger at all: the daemon reads the finished runs from
-- a logical replication slot (sql/integrations/meshhook/capture_logical.sql) and stores each
-- batch with this function, in its own transaction, before it confirms the batch's last LSN to
-- the slot. A crash between the two re-delivers the batch; on conflict (run_id) do nothing
-- keeps each run once. A run already stored (by the trigger, ingest or backfill) keeps its row,
-- so both capture modes installed at once count a run once.
--
-- The values come as text, as the slot delivers them (pgoutput's text format, timestamps in
-- ISO with an offset), so that a value Postgres refuses is one run's dead letter
-- (execution_time_rejected_runs, source 'capture', with the SQLSTATE and reason) and not the
-- batch's error: the batch is stored in one statement, and only when it is refused, one run at
-- a time. Any other error (a table missing, no privilege) goes to the caller, which stores
-- nothing, confirms nothing and tries again.
--
-- Not security definer: the daemon owns the tables and calls it with its own rights.
create function meshhook_stats_store_captured_runs(
    run_ids text[], project_ids text[], workflow_ids text[], statuses text[],
    started text[], finished text[], out stored integer, out rejected integer)
    language plpgsql
    volatile
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
    set datestyle = 'ISO, YMD'
as $$
declare
    n integer;
    state text;
    message text;
begin
    -- The transaction id before the first row's id: the tailer's horizon (tailer.cpp) holds
    -- only when every transaction holding an id took its transaction id first.
    perform pg_current_xact_id();
    rejected := 0;
    begin
        insert into execution_time_statistics
            (run_id, project_id, workflow_id, status, started_at, finished_at,
             execution_time_ms, source)
        select u.r::uuid, u.p::uuid, u.w::uuid, u.s, u.a::timestamptz, u.f::timestamptz,
               meshhook_stats_elapsed_ms(u.a::timestamptz, u.f::timestamptz), 'capture'
        from unnest(run_ids, project_ids, workflow_ids, statuses, started, finished)
             with ordinality as u(r, p, w, s, a, f, k)
        order by u.k  -- the first delivery of a run wins, as the trigger's earliest finish does
        on conflict (run_id) do nothing;
        get diagnostics stored = row_count;
        return;
    exception when data_exception or integrity_constraint_violation then
        null;  -- some run was refused: the statement undid itself; one run at a time below
    end;
    stored := 0;
    for i in 1 .. coalesce(array_length(run_ids, 1), 0) loop
        begin
            insert into execution_time_statistics
                (run_id, project_id, workflow_id, status, started_at, finished_at,
                 execution_time_ms, source)
            values (run_ids[i]::uuid, project_ids[i]::uuid, workflow_ids[i]::uuid, statuses[i],
                    started[i]::timestamptz, finished[i]::timestamptz,
                    meshhook_stats_elapsed_ms(started[i]::timestamptz, finished[i]::timestamptz),
                    'capture')
            on conflict (run_id) do nothing;
            get diagnostics n = row_count;
            stored := stored + n;
        exception when data_exception or integrity_constraint_violation then
            get stacked diagnostics state = returned_sqlstate, message = message_text;
            insert into execution_time_rejected_runs
                (run_id, project_id, source, sqlstate, reason, payload)
            values (case when run_ids[i] ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                         then run_ids[i]::uuid end,
                    case when project_ids[i] ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                         then project_ids[i]::uuid end,
                    'capture', state, message,
                    jsonb_build_object('run_id', run_ids[i], 'project_id', project_ids[i],
                                       'workflow_id', workflow_ids[i], 'status', statuses[i],
                                       'started_at', started[i], 'finished_at', finished[i],
                                       'via', 'logical'));
            rejected := rejected + 1;
        end;
    end loop;
end
$$;

comment on function meshhook_stats_store_captured_runs(text[], text[], text[], text[], text[], text[]) is
    'meshhook-stats: stores a batch of runs the logical capture read from its slot, each once';

revoke all on function meshhook_stats_store_captured_runs(text[], text[], text[], text[], text[], text[])
    from public;

do $$
begin
    execute format('alter function meshhook_stats_store_captured_runs(text[], text[], text[], '
                   'text[], text[], text[]) set search_path = pg_catalog, %I, pg_temp',
                   current_schema());
end
$$;
