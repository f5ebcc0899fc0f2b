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
