#!/usr/bin/env bash
# queue-times and step-times through the real daemon on one tenant's million queue rows and
# one workflow's million step rows (30 days before now, generated below), each request the
# tenant's JWT under row level security. Prints the median and the fastest of REPEAT requests
# of each kind, the default way (exact: percentile_cont over the rows) and exact=false (the
# rollups of migration 0014), and how long loading and compacting took.
#
#   bench/statistics/queue_steps.sh BUILD_DIR DATABASE_URL [--load]
#     --load   migrate, empty the queue and step tables, load the rows and compact them
#   Environment: REPEAT (7).
set -euo pipefail
build=${1:?BUILD_DIR}
url=${2:?DATABASE_URL}
repeat=${REPEAT:-7}
here=$(cd "$(dirname "$0")" && pwd)
daemon="$build/app/meshhook-stats"
work=$(mktemp -d "${TMPDIR:-/tmp}/meshhook-stats-bench.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
project=00000000-0000-0000-0001-000000000000
workflow=00000000-0000-0000-0000-000000000000

if [ "${3:-}" = "--load" ]; then
  MESHHOOK_STATS_DATABASE_URL="$url" "$daemon" migrate >/dev/null
  psql "$url" -qc "truncate queue_time_statistics, step_time_statistics"
  start=$(date +%s)
  # 1,000,000 runs of 100 workflows (workflow k of the tenant gets a share ~ 1/(k+1)), in
  # batches of 20,000 in time order as the writer and backfill send them (batch b: the b-th
  # fiftieth of the 30 days); queue waits lognormal around 200 ms.
  psql "$url" -q -v ON_ERROR_STOP=1 <<SQL
select setseed(0.5);
do \$\$
begin
  for b in 0..49 loop
    insert into queue_time_statistics (run_id, project_id, workflow_id, status, finished_at,
        queued_at, started_at, jobs, queue_wait_ms, start_wait_ms)
    select gen_random_uuid(), '$project',
           ('00000000-0000-0000-0000-' || lpad(least(99, floor(exp(random() * ln(100)) - 1)::int)::text, 12, '0'))::uuid,
           case when random() < 0.9 then 'succeeded' else 'failed' end, f, f - interval '1 minute',
           f - interval '30 seconds', 1, w + (random() * 100)::bigint, w
    from (select now() - (b + random()) * interval '30 days' / 50 as f,
                 (exp(ln(200) + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())))::bigint as w
          from generate_series(1, 20000)) as g;
  end loop;
end
\$\$;
-- 1,000,000 steps of one workflow: 10 steps, lognormal durations of their own.
do \$\$
begin
  for b in 0..49 loop
    insert into step_time_statistics (run_id, step_id, step_type, project_id, workflow_id,
        status, attempts, started_at, finished_at, duration_ms)
    select gen_random_uuid(), 'step' || k, case when k % 2 = 0 then 'http' else 'code' end,
           '$project', '$workflow', case when random() < 0.05 then 'failed' else 'succeeded' end,
           1 + (random() < 0.1)::int, f - d * interval '1 millisecond', f, d
    from (select k, now() - (b + random()) * interval '30 days' / 50 as f,
                 (exp(ln(50 * (k + 1)) + 0.8 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())))::bigint as d
          from (select i % 10 as k from generate_series(1, 20000) as i) as s) as g;
  end loop;
end
\$\$;
SQL
  echo "loaded 1,000,000 queue rows and 1,000,000 step rows in $(($(date +%s) - start)) s"
  start=$(date +%s)
  while [ "$(psql "$url" -qtAc 'select folded from meshhook_stats_compact(20000)')" -gt 0 ]; do :; done
  echo "compacted in $(($(date +%s) - start)) s"
  psql "$url" -qc "vacuum analyze queue_time_statistics, step_time_statistics, queue_step_rollups_compacted, queue_step_rollup_deltas"
fi

secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
python3 "$here/jwt_tokens.py" "$secret" "$work/tokens" --tenants 1
token=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/tokens.json" "$project")
port=$(free_port)
MESHHOOK_STATS_DATABASE_URL="$url" \
MESHHOOK_STATS_AUTH_JWT_SECRET="$secret" \
MESHHOOK_STATS_AUTH_JWT_AUDIENCE=authenticated \
MESHHOOK_STATS_AUTH_PROJECT_IDS_CLAIM=project_ids \
MESHHOOK_STATS_API_LISTEN="127.0.0.1:$port" \
MESHHOOK_STATS_METRICS_LISTEN="127.0.0.1:$(free_port)" \
MESHHOOK_STATS_SPOOL_DIR="$work/spool" \
MESHHOOK_STATS_STATISTICS_REQUEST_TIMEOUT_MS=60000 \
MESHHOOK_STATS_UI_ENABLED=false \
MESHHOOK_STATS_LOG_LEVEL=error \
  "$daemon" serve >"$work/daemon.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

range="start_date=$(date -u -d '30 days ago' +%FT%TZ)&end_date=$(date -u +%FT%TZ)"
# kind, path and query
requests=(
  "queue_tenant30d queue-times $range"
  "queue_tenant30d_by_workflow queue-times $range&group_by=workflow"
  "queue_wf30d queue-times $range&workflow_id=$workflow"
  "start_tenant30d_by_day queue-times $range&group_by=day&measure=start_wait"
  "steps_wf30d step-times $range&workflow_id=$workflow"
)
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
printf '%-28s %-11s %10s %10s %8s\n' kind mode median_ms min_ms method
for r in "${requests[@]}"; do
  read -r kind path query <<<"$r"
  for mode in default exact=false; do
    q=$query
    [ "$mode" = default ] || q="$query&$mode"
    times=()
    for _ in $(seq 1 "$repeat"); do
      t=$(curl -fsS -o "$work/body" -w '%{time_total}' -H "Authorization: Bearer $token" \
          "http://127.0.0.1:$port/api/v1/statistics/$path?$q")
      times+=("$t")
    done
    method=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"]["method"])' "$work/body")
    printf '%-28s %-11s %10s %10s %8s\n' "$kind" "$mode" \
      "$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }')" \
      "$(printf '%s\n' "${times[@]}" | sort -n | awk 'NR == 1 { printf "%.1f", $1 * 1000 }')" "$method"
  done
done
