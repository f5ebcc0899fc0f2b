-- 0017: the daemon's batch writer appends the rollup deltas of its batches itself.
--
-- The statement-level trigger meshhook_stats_rollups_append grouped every batch of 20,000
-- runs into execution_time_rollup_deltas on the server: about 6 µs a row, the largest cost
-- of a batch after the rows themselves. The writer holds the batch, so on its plain path
-- (every run of the batch inserted by one COPY or INSERT, or none) it now computes the same
-- deltas (same key, count, sum, min, max, zeros, sketch buckets by the same float8
-- arithmetic) and appends them in the same transaction, after setting
-- meshhook_stats.deltas_written = on for that transaction only (set_config(..., true)); the
-- trigger then returns at once.
--
-- The trigger still does the work for every other insert: the writer's replay path (insert
-- ... on conflict do nothing, where only the server knows which rows went in), the
-- compactor's move of captured runs, the logical capture's store, backfill, inserts by hand.
--
-- Who may skip it: the setting is honoured only for a session whose login is a member of the
-- role owning this function (the owner of the tables, i.e. the daemon's login, or a
-- superuser), who may append deltas directly anyway. A meshhook_stats_writer login can set
-- any placeholder setting but has no grant on the deltas: for it the trigger ignores the
-- setting, so rows it inserts always get their deltas. Tenant roles cannot insert rows at all.
create or replace function meshhook_stats_rollups_append() returns trigger
    language plpgsql
    security definer
as $$
declare
    rows_seen integer;
begin
    -- current_user is this function's owner here (security definer).
    if current_setting('meshhook_stats.deltas_written', true) = 'on'
       and pg_has_role(session_user, current_user, 'member') then
        return null;
    end if;
    select count(*) into rows_seen from (select from new_rows limit 2) as first_two;
    if rows_seen = 1 then
        insert into execution_time_rollup_deltas
            (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
             zero_count, sketch)
        select project_id, workflow_id, status, date_trunc('hour', finished_at, 'UTC'), 1,
               execution_time_ms, execution_time_ms, execution_time_ms,
               (execution_time_ms = 0)::int,
               case when execution_time_ms > 0
                    then array[array[meshhook_stats_sketch_index(execution_time_ms), 1]]
                    else '{}' end
        from new_rows;
        return null;
    end if;
    insert into execution_time_rollup_deltas
        (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
         zero_count, sketch)
    select project_id, workflow_id, status, bucket_start, sum(n), sum(s), min(lo), max(hi),
           coalesce(sum(n) filter (where i is null), 0),
           coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null), '{}')
    from (
        select project_id, workflow_id, status,
               date_trunc('hour', finished_at, 'UTC') as bucket_start,
               meshhook_stats_sketch_index(execution_time_ms) as i,
               count(*) as n, sum(execution_time_ms) as s,
               min(execution_time_ms) as lo, max(execution_time_ms) as hi
        from new_rows
        group by 1, 2, 3, 4, 5
    ) as b
    group by project_id, workflow_id, status, bucket_start;
    return null;
end
$$;

-- create or replace resets the function's settings: pin the search path again.
do $$
begin
    execute format('alter function meshhook_stats_rollups_append() set search_path = pg_catalog, %I, pg_temp',
                   current_schema());
end
$$;
