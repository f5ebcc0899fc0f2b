-- meshhook-stats: the whole schema in one file, equal to sql/migrations/ applied in order
-- (a test builds one database each way and compares pg_dump --schema-only of both).
-- For reading, and for creating a fresh database in one step:
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -1 -f sql/schema.sql
-- A database created this way is recorded as migrated, so `meshhook-stats migrate` on it is
-- a no-op. When you add a migration, append it here and add its row at the end.

create table meshhook_stats_migrations (
    version    integer     primary key,
    name       text        not null,
    applied_at timestamptz not null default now(),
    checksum   text        not null
);

-- ---------------------------------------------------------------------------
-- migrations/0001_execution_time_statistics.sql
-- ---------------------------------------------------------------------------
-- 0001: one row per finished workflow run, the table the PRD names.
-- Forward-only: never edit a migration once released; add the next number instead.

-- The schema needs no uuid generator: run ids come from the producer (or from MeshHook's
-- workflow_runs.id). gen_random_uuid() is core since PostgreSQL 13 should a later
-- migration need one, so no extension is loaded here.

create table execution_time_statistics (
    id                bigint generated always as identity primary key,
    run_id            uuid        not null unique,
    project_id        uuid        not null,  -- the tenant (MeshHook projects.id)
    workflow_id       uuid        not null,
    status            text        not null
                      check (status in ('succeeded', 'failed', 'canceled', 'timeout')),
    started_at        timestamptz not null,
    finished_at       timestamptz not null,
    -- finished_at - started_at in integer milliseconds, microseconds rounded half up.
    execution_time_ms bigint      not null check (execution_time_ms >= 0),
    -- Where the row came from: 'ingest' (HTTP, through the spool), 'capture' (the trigger on
    -- MeshHook's workflow_runs) or 'backfill'. The tailer observes only 'capture' rows, since
    -- ingested runs were already observed when they arrived.
    source            text        not null default 'ingest'
                      check (source in ('ingest', 'capture', 'backfill')),
    created_at        timestamptz not null default now()
);

comment on table execution_time_statistics is
    'One row per finished MeshHook workflow run (meshhook-stats).';
comment on column execution_time_statistics.execution_time_ms is
    'finished_at - started_at in milliseconds, microseconds rounded half up';

-- Per workflow over a date range (the statistics endpoint, the hot path): the range scan
-- reads only the index (execution_time_ms is included), so percentiles need no heap access.
create index execution_time_statistics_workflow_finished
    on execution_time_statistics (workflow_id, finished_at) include (execution_time_ms);

-- Per tenant over a date range, optionally broken down by workflow: index-only as well.
create index execution_time_statistics_project_finished
    on execution_time_statistics (project_id, finished_at) include (workflow_id, execution_time_ms);

-- Retention deletes by age in bounded batches. Rows arrive roughly in finished_at order, so
-- a BRIN index finds the old ones for a few kilobytes of index instead of a full scan.
create index execution_time_statistics_finished_brin
    on execution_time_statistics using brin (finished_at);

-- ---------------------------------------------------------------------------
-- migrations/0002_meshhook_stats_cursors.sql
-- ---------------------------------------------------------------------------
-- 0002: durable positions of the daemon's background readers.
--   'tailer'                      last execution_time_statistics.id observed by the tailer
--   'backfill:<since>/<until>'    last (finished_at, run id) imported from workflow_runs
create table meshhook_stats_cursors (
    name        text        primary key,
    last_id     bigint,
    last_time   timestamptz,
    last_uuid   uuid,
    updated_at  timestamptz not null default now()
);

comment on table meshhook_stats_cursors is
    'Positions of meshhook-stats background readers (tailer, backfill).';

insert into meshhook_stats_migrations (version, name, checksum) values
    (1, 'execution_time_statistics', '6634eb1e6646bbf0a2bd83c383bb1c83e72eef8f5bfa82f2a441cb12e11f2577'),
    (2, 'meshhook_stats_cursors', 'e5497900cb616725038d5b00d163ce1005796beccdf1dde51fc61422811b2369');
