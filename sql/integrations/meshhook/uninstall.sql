-- Removes the MeshHook capture (the trigger and its functions, the logical capture's slot and
-- publication); the rows already recorded stay.
do $$
begin
    if to_regclass('workflow_runs') is not null then
        drop trigger if exists meshhook_stats_capture_run on workflow_runs;
        drop trigger if exists meshhook_stats_capture_run_insert on workflow_runs;
    end if;
end
$$;
drop function if exists meshhook_stats_capture_run();
drop function if exists meshhook_stats_record_run_details(uuid[], text);
drop function if exists meshhook_stats_insert_run_details(uuid[], text);

-- The logical capture (capture_logical.sql): its slot, so that Postgres stops keeping WAL for
-- it, and its publication. A slot the daemon is reading cannot be dropped: stop the daemon (or
-- set capture.mode: trigger) first.
do $$
declare
    wanted text := coalesce(nullif(current_setting('meshhook_stats.slot', true), ''),
                               'meshhook_stats_capture');
begin
    if exists (select 1 from pg_replication_slots s
               where s.slot_name = wanted and s.database = current_database()) then
        perform pg_drop_replication_slot(wanted);
        raise notice 'meshhook-stats: dropped replication slot %', wanted;
    end if;
end
$$;
drop publication if exists meshhook_stats_capture;
