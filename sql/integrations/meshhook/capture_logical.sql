-- MeshHook logical capture: no trigger on MeshHook's tables. The daemon (capture.mode: logical)
-- reads the finished runs of workflow_runs from a logical replication slot, off MeshHook's
-- transactions, and stores them in execution_time_statistics (docs/meshhook.md).
--
-- Install into MeshHook's database after `meshhook-stats migrate`, as a role that may create a
-- publication for workflow_runs (its owner) and a replication slot (REPLICATION or superuser;
-- Supabase's postgres role):
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f capture_logical.sql
-- Safe to run again; it says what it created and what it kept. Needs wal_level = logical
-- (Supabase's default). The slot is named meshhook_stats_capture unless the session sets
-- meshhook_stats.slot (PGOPTIONS='-c meshhook_stats.slot=NAME'): the daemon's capture.slot
-- names the same. Slot names are the cluster's, so two databases of one server need two.
--
-- What it creates:
--   publication meshhook_stats_capture  workflow_runs only, inserts and updates, the six
--       columns read: the slot's plugin (pgoutput) sends nothing of MeshHook's other tables
--       (workflow_events takes its most frequent inserts) nor of ours, nor the other columns.
--   slot (pgoutput)  where decoding starts: runs finished before it was created are not in it
--       (`meshhook-stats backfill` covers those). While the daemon is not reading it, Postgres
--       keeps the WAL since the last confirmed batch: set max_slot_wal_keep_size, watch
--       meshhook_stats_capture_slot_lag_bytes, and run uninstall.sql when giving the mode up.
--
-- It creates the slot before anything else: Postgres refuses to create one in a transaction
-- that has written.
do $slot$
declare
    wanted text := coalesce(nullif(current_setting('meshhook_stats.slot', true), ''),
                               'meshhook_stats_capture');
    slot record;
begin
    if to_regclass('workflow_runs') is null then
        raise notice 'meshhook-stats: table workflow_runs not found; logical capture not installed';
        return;
    end if;
    if current_setting('wal_level') <> 'logical' then
        raise exception 'meshhook-stats: wal_level is %, the logical capture needs logical',
                        current_setting('wal_level')
            using hint = 'ALTER SYSTEM SET wal_level = logical, then restart Postgres; or '
                         'install the trigger capture (capture.sql) instead';
    end if;
    select s.plugin, s.database into slot from pg_replication_slots s
    where s.slot_name = wanted;
    if not found then
        perform pg_create_logical_replication_slot(wanted, 'pgoutput');
        raise notice 'meshhook-stats: created replication slot % (pgoutput); runs finished from '
                     'now on are captured once the daemon runs with capture.mode: logical',
                     wanted;
    elsif slot.plugin is distinct from 'pgoutput' or slot.database is distinct from current_database() then
        raise exception 'meshhook-stats: replication slot % exists with plugin % in database %',
                        wanted, slot.plugin, slot.database
            using hint = 'choose another name (meshhook_stats.slot) or drop that slot';
    else
        raise notice 'meshhook-stats: replication slot % kept (it resumes where the daemon '
                     'stopped)', wanted;
    end if;
end
$slot$;

do $publication$
declare
    -- Only the columns the capture reads (the key among them, as Postgres requires): the WAL
    -- sender converts and sends nothing of MeshHook's wider columns (inputs, outputs, errors).
    columns text := '(id, project_id, workflow_id, status, started_at, finished_at)';
begin
    if to_regclass('workflow_runs') is null then
        return;
    end if;
    if exists (select 1 from pg_publication where pubname = 'meshhook_stats_capture') then
        -- Made to publish exactly what the daemon reads, whatever was changed by hand.
        execute format('alter publication meshhook_stats_capture set table %s %s',
                       'workflow_runs'::regclass, columns);
        alter publication meshhook_stats_capture set (publish = 'insert, update');
        raise notice 'meshhook-stats: publication meshhook_stats_capture kept (workflow_runs %, '
                     'inserts and updates)', columns;
    else
        execute format('create publication meshhook_stats_capture for table %s %s '
                       'with (publish = ''insert, update'')', 'workflow_runs'::regclass, columns);
        raise notice 'meshhook-stats: created publication meshhook_stats_capture (workflow_runs %, '
                     'inserts and updates)', columns;
    end if;
end
$publication$;
