#!/usr/bin/env bash
# The statistics benchmark through the real daemon: `meshhook-stats serve` with HS256 JWT auth
# on a database loaded by generate.sql, every request carrying a JWT of its workflow's tenant
# (project_ids claim, row level security on: the reader role, the claims in
# request.jwt.claims). Prints one line per run:
#   - wrk -t2 -c32 closed loop for each kind (wf24h wf7d wf90d tenant30d dayseries mixed, and
#     wf400d: 400 days of the hottest workflow), the default way and exact=true (the naive way:
#     percentile_cont over the rows);
#   - open loop: mixed at a fixed rate (open_loop.py), p50/p99/p99.9 from each request's due time;
#   - per kind, the CPU each request cost the daemon and Postgres (its postmaster's children),
#     in microseconds: unlike the rates, these barely move with the machine's load;
#   - the physical reference: one indexed primary-key select (a daily rollup row) by pgbench,
#     prepared, at 32 and at pool-size connections, straight to Postgres; and GET /healthz
#     through the daemon's HTTP server (no database) at 32 connections.
#
#   bench/statistics/daemon.sh BUILD_DIR DATABASE_URL [seconds] [--load ROWS]
#     --load ROWS   migrate, empty the table and load ROWS runs first (10000000: the figures of
#                   docs/benchmarks.md; about 9 minutes on 2 cores)
#   Environment: KINDS, MODES (default exact), RATE (300), POOL (8), THREADS (48), WARMUP (5 s).
set -euo pipefail
build=${1:?BUILD_DIR}
url=${2:?DATABASE_URL}
seconds=${3:-15}
load=""
if [ "${4:-}" = "--load" ]; then load=${5:?--load ROWS}; fi
kinds=${KINDS:-wf24h wf7d wf90d tenant30d dayseries mixed wf400d}
modes=${MODES:-default exact}
rate=${RATE:-300}
pool=${POOL:-8}
threads=${THREADS:-48}
warmup=${WARMUP:-5}
here=$(cd "$(dirname "$0")" && pwd)
daemon="$build/app/meshhook-stats"
work=$(mktemp -d "${TMPDIR:-/tmp}/meshhook-stats-bench.XXXXXX")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ -n "$load" ]; then
  MESHHOOK_STATS_DATABASE_URL="$url" "$daemon" migrate >/dev/null
  psql "$url" -qc "truncate execution_time_statistics"
  start=$(date +%s)
  psql "$url" -q -v rows="$load" -f "$here/generate.sql"
  echo "loaded $load runs in $(($(date +%s) - start)) s"
fi

secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
python3 "$here/jwt_tokens.py" "$secret" "$work/tokens"
port=$(free_port)
MESHHOOK_STATS_DATABASE_URL="$url" \
MESHHOOK_STATS_DATABASE_POOL_SIZE="$pool" \
MESHHOOK_STATS_AUTH_JWT_SECRET="$secret" \
MESHHOOK_STATS_AUTH_JWT_AUDIENCE=authenticated \
MESHHOOK_STATS_AUTH_PROJECT_IDS_CLAIM=project_ids \
MESHHOOK_STATS_API_LISTEN="127.0.0.1:$port" \
MESHHOOK_STATS_API_THREADS="$threads" \
MESHHOOK_STATS_METRICS_LISTEN="127.0.0.1:$(free_port)" \
MESHHOOK_STATS_SPOOL_DIR="$work/spool" \
MESHHOOK_STATS_STATISTICS_MAX_IN_FLIGHT_PER_CALLER=64 \
MESHHOOK_STATS_UI_ENABLED=false \
MESHHOOK_STATS_LOG_LEVEL=error \
  "$daemon" serve >"$work/daemon.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
# One request of each kind must answer 200, or the figures would measure errors.
token0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["00000000-0000-0000-0001-000000000000"])' "$work/tokens.json")
curl -fsS -o /dev/null -H "Authorization: Bearer $token0" \
  "http://127.0.0.1:$port/api/v1/statistics/execution-times?workflow_id=00000000-0000-0000-0000-000000000000"

# Warm up first (WARMUP seconds of mixed, not reported): a fresh daemon opens its pooled
# connections and each connection plans its statements a few times before Postgres keeps a
# generic plan; a daemon that has served for a minute has done so.
wrk -t2 -c32 -d"${warmup}s" -s "$here/statistics.lua" "http://127.0.0.1:$port" \
  -- mixed default "$work/tokens.lua" >/dev/null 2>&1

# CPU seconds so far (utime + stime) of the daemon, and of Postgres: the postmaster's children.
hz=$(getconf CLK_TCK)
postmaster=$(ps -o ppid= -p "$(psql "$url" -Atc "select pid from pg_stat_activity where backend_type = 'checkpointer'")" | tr -d ' ')
ticks() {  # ticks PID...: their utime + stime
  for pid in "$@"; do awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null; done | awk '{ s += $1 } END { print s + 0 }'
}
pg_ticks() { ticks $(ps -o pid= --ppid "$postmaster"); }
# Until no statement of the daemon still runs (up to 60 s): a slow kind's requests that were in
# flight when wrk stopped would otherwise run into the next kind's measurement.
drain() {
  for _ in $(seq 1 600); do
    [ "$(psql "$url" -Atc "select count(*) from pg_stat_activity where state = 'active'
          and backend_type = 'client backend' and pid <> pg_backend_pid()")" = 0 ] && return
    sleep 0.1
  done
}

ms() { awk -v k="$1" '$1 == k { v = $2; if (v ~ /ms$/) { sub(/ms/, "", v); print v }
       else if (v ~ /us$/) { sub(/us/, "", v); print v / 1000 } else { sub(/s/, "", v); print v * 1000 } }'; }
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
printf '%-10s %-7s %9s %9s %9s %9s %8s %11s %9s\n' kind mode p50_ms p99_ms p99.9_ms req_per_s errors \
  daemon_us_cpu pg_us_cpu
for kind in $kinds; do
  for mode in $modes; do
    drain
    d0=$(ticks "$server") p0=$(pg_ticks)
    out=$(wrk -t2 -c32 -d"${seconds}s" --latency -s "$here/statistics.lua" "http://127.0.0.1:$port" \
          -- "$kind" "$mode" "$work/tokens.lua" 2>&1)
    d1=$(ticks "$server") p1=$(pg_ticks)
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    errors=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    per() { awk -v t="$1" -v n="$requests" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }'; }
    printf '%-10s %-7s %9s %9s %9s %9s %8s %11s %9s\n' "$kind" "$mode" "$(ms 50% <<<"$out")" \
      "$(ms 99% <<<"$out")" "$(awk '$1 == "p99.9_ms" { print $2 }' <<<"$out")" "$rps" "${errors:-0}" \
      "$(per $((d1 - d0)))" "$(per $((p1 - p0)))"
  done
done
drain
echo "open loop, mixed: $(python3 "$here/open_loop.py" "http://127.0.0.1:$port" "$work/tokens.json" \
  --rate "$rate" --seconds "$seconds")"
if [ -n "${EXACT_OPEN_LOOP:-}" ]; then
  echo "open loop, mixed exact: $(python3 "$here/open_loop.py" "http://127.0.0.1:$port" \
    "$work/tokens.json" --rate "$rate" --seconds "$seconds" --exact)"
fi

# The physical reference.
cat >"$work/pk.sql" <<'EOF'
\set w random(0, 999)
\set d random(0, 88)
select run_count from execution_time_rollups_daily_compacted
 where workflow_id = ('00000000-0000-0000-0000-' || lpad(:w::text, 12, '0'))::uuid
   and bucket_start = timestamptz '2025-10-03T00:00:00Z' + :d * interval '1 day'
   and status = 'succeeded'
   and project_id = ('00000000-0000-0000-0001-' || lpad((:w % 100)::text, 12, '0'))::uuid;
EOF
for c in 32 "$pool"; do
  out=$(pgbench -n -M prepared -c "$c" -j2 -T "$seconds" -f "$work/pk.sql" "$url" 2>&1)
  echo "reference: pgbench one primary-key select, $c connections: $(awk '/^tps/ { print $3 }' <<<"$out") tps," \
       "latency average $(awk '/latency average/ { print $4 }' <<<"$out") ms"
done
out=$(wrk -t2 -c32 -d"${seconds}s" --latency "http://127.0.0.1:$port/healthz" 2>&1)
echo "reference: GET /healthz through the daemon, 32 connections: $(awk '/Requests\/sec/ { print $2 }' <<<"$out") req/s," \
     "p50 $(ms 50% <<<"$out") ms, p99 $(ms 99% <<<"$out") ms"
