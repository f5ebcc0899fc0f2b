-- 0011: where a run's time goes. Two more measures beside execution_time_statistics, with the
-- same keys (uuid run ids, project_id as the tenant), the same row level security and the
-- same retention:
--
--   queue_time_statistics   one row per finished run: how long its jobs waited in the queue
--                           (the sum of every job's started_at - enqueued_at) and how long the
--                           first job waited (the time to start).
--   step_time_statistics    one row per (run, step): the step's duration from its first start
--                           to its last end, its outcome and how many attempts it took.
--
-- Both are written by the batch writer (run events that carry queued_at or steps), and for
-- MeshHook by the daemon reading job_tracking and workflow_events after a run is captured
-- (never inside MeshHook's transactions), and by backfill. Rows are appended only; a run's rows
-- are final once written.

create table queue_time_statistics (
    id            bigint      generated always as identity primary key,
    run_id        uuid        not null unique,
    project_id    uuid        not null,  -- the tenant (MeshHook projects.id)
    workflow_id   uuid        not null,
    -- The run's outcome and end, so that ranges and status filters mean what they mean for
    -- execution times.
    status        text        not null
                  check (status in ('succeeded', 'failed', 'canceled', 'timeout')),
    finished_at   timestamptz not null,
    -- When the first job was enqueued and when it started.
    queued_at     timestamptz not null,
    started_at    timestamptz not null,
    jobs          integer     not null check (jobs >= 1),
    -- Sum over the run's jobs of started_at - enqueued_at, integer milliseconds.
    queue_wait_ms bigint      not null check (queue_wait_ms >= 0),
    -- The first job's started_at - enqueued_at: the time to start.
    start_wait_ms bigint      not null check (start_wait_ms >= 0),
    source        text        not null default 'ingest'
                  check (source in ('ingest', 'capture', 'backfill')),
    created_at    timestamptz not null default now()
);

comment on table queue_time_statistics is
    'One row per finished run: the time its jobs waited in the queue (meshhook-stats).';

create index queue_time_statistics_workflow_finished
    on queue_time_statistics (workflow_id, finished_at) include (queue_wait_ms, start_wait_ms);
create index queue_time_statistics_project_finished
    on queue_time_statistics (project_id, finished_at)
    include (workflow_id, queue_wait_ms, start_wait_ms);
create index queue_time_statistics_finished_brin
    on queue_time_statistics using brin (finished_at);

create table step_time_statistics (
    id          bigint      generated always as identity primary key,
    run_id      uuid        not null,
    -- The step's node id and type in the workflow definition (workflow_events payload.node).
    step_id     text        not null check (length(step_id) between 1 and 200),
    step_type   text        not null default '' check (length(step_type) <= 100),
    project_id  uuid        not null,
    workflow_id uuid        not null,
    -- The outcome of the last attempt. A step that never ended (its run was canceled while it
    -- ran) has no row.
    status      text        not null check (status in ('succeeded', 'failed')),
    attempts    integer     not null check (attempts >= 1),
    started_at  timestamptz not null,
    finished_at timestamptz not null,
    -- finished_at - started_at in integer milliseconds, microseconds rounded half up.
    duration_ms bigint      not null check (duration_ms >= 0),
    source      text        not null default 'ingest'
                check (source in ('ingest', 'capture', 'backfill')),
    created_at  timestamptz not null default now(),
    unique (run_id, step_id)
);

comment on table step_time_statistics is
    'One row per step of a finished run: its duration, outcome and attempts (meshhook-stats).';

create index step_time_statistics_workflow_finished
    on step_time_statistics (workflow_id, finished_at)
    include (step_id, step_type, status, attempts, duration_ms);
create index step_time_statistics_finished_brin
    on step_time_statistics using brin (finished_at);

-- Row level security exactly as for execution_time_statistics (0004): a caller sees the rows of
-- meshhook_stats_caller_project_ids(); the owner (writer, retention) sees all; producers with the
-- writer role may insert.
do $$
declare
    t text;
begin
    foreach t in array array['queue_time_statistics', 'step_time_statistics'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy meshhook_stats_caller_projects on %I for select to public '
                       'using (project_id = any (array(select meshhook_stats_caller_project_ids())))', t);
        execute format('create policy meshhook_stats_owner on %I for all to %I '
                       'using (true) with check (true)', t, current_user);
        execute format('create policy meshhook_stats_writer_insert on %I for insert '
                       'to meshhook_stats_writer with check (true)', t);
        execute format('grant select on %I to meshhook_stats_reader', t);
        execute format('grant insert on %I to meshhook_stats_writer', t);
    end loop;
end
$$;

-- Tenant roles (0007, 0009) read the new tables too.
create or replace function meshhook_stats_tenant_tables() returns text[]
    language sql
    immutable
    set search_path = pg_catalog, pg_temp
as $$
    select array['execution_time_statistics', 'execution_time_rollups',
                 'execution_time_rollups_daily', 'execution_time_rollups_compacted',
                 'execution_time_rollups_daily_compacted', 'execution_time_rollup_deltas',
                 'execution_time_workflows', 'queue_time_statistics', 'step_time_statistics']
$$;

do $$
declare
    role_name name;
begin
    for role_name in select distinct r.rolname from meshhook_stats_tenant_roles m
                     join pg_roles r on r.oid = m.tenant_role
    loop
        execute format('grant select on queue_time_statistics, step_time_statistics to %I',
                       role_name);
    end loop;
end
$$;
