-- Benchmark data for the statistics endpoint: :rows runs of 1,000 workflows of 100 tenants
-- (projects) over the 90 days before 2026-01-01, with skewed popularity (workflow k gets a
-- share that falls like 1/sqrt(k): the hottest about 3 %) and log-normal durations (each
-- workflow its own median, sigma 0.8). Status: 90 % succeeded, 6 % failed, 3 % timeout,
-- 1 % canceled. Deterministic ids: workflow k is 00000000-0000-0000-0000-<k, 12 digits>,
-- its tenant (k mod 100) 00000000-0000-0000-0001-<12 digits>.
--
--   psql "$URL" -v rows=10000000 -f bench/statistics/generate.sql
--
-- The rollup triggers are switched off while the rows go in, one day per statement, and
-- the rollups are then built in one pass (fill_rollups.sql) - what they would hold had the
-- triggers run, much faster.
\set ON_ERROR_STOP on
\if :{?rows}
\else
  \set rows 10000000
\endif
select setseed(0.1968);
alter table execution_time_statistics disable trigger execution_time_rollups_insert;
select format(
  $q$insert into execution_time_statistics
       (run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms, source)
     select gen_random_uuid(),
            ('00000000-0000-0000-0001-' || lpad((w %% 100)::text, 12, '0'))::uuid,
            ('00000000-0000-0000-0000-' || lpad(w::text, 12, '0'))::uuid,
            case when s < 0.90 then 'succeeded' when s < 0.96 then 'failed'
                 when s < 0.99 then 'timeout' else 'canceled' end,
            f - v * interval '1 millisecond', f, v, 'backfill'
     from (
       select w, s,
              timestamptz '2025-10-03T00:00:00Z' + %s * interval '1 day' + random() * interval '1 day' as f,
              least(86400000, round(exp(ln(150 + (w * 37) %% 4000)
                                        + 0.8 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))::bigint as v
       from (select floor(1000 * power(random(), 2))::int as w, random() as s
             from generate_series(1, %s)) as pick
     ) as runs$q$, day, (:rows / 90) + case when day < :rows % 90 then 1 else 0 end)
from generate_series(0, 89) as day
\gexec
alter table execution_time_statistics enable trigger execution_time_rollups_insert;
\ir fill_rollups.sql
vacuum (analyze) execution_time_statistics;
vacuum (analyze) execution_time_rollups_compacted;
vacuum (analyze) execution_time_rollups_daily_compacted;
vacuum (analyze) execution_time_rollups_hourly_all_compacted;
vacuum (analyze) execution_time_rollups_daily_all_compacted;
vacuum (analyze) execution_time_rollups_weekly_all_compacted;
select count(*) as runs, count(distinct workflow_id) as workflows from execution_time_statistics;
