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
