#!/usr/bin/env bash
# HTTP ingest throughput: wrk posting batches to a meshhook-stats on loopback.
#   bench/ingest_http.sh [BUILD_DIR] [DURATION]
# Without a database (parse + validate + observe) and, when PG is given as
# MESHHOOK_BENCH_DATABASE_URL, durable end to end (spool fsync + COPY into Postgres).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
duration=${2:-15s}
bin="$build/app/meshhook-stats"
work=$(mktemp -d)
token=bench-token
hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
port=${MESHHOOK_BENCH_PORT:-19870}
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start() {
  env MESHHOOK_STATS_API_LISTEN=127.0.0.1:$port MESHHOOK_STATS_METRICS_LISTEN=127.0.0.1:$((port + 1)) \
      MESHHOOK_STATS_INGEST_TOKEN_SHA256=$hash MESHHOOK_STATS_SPOOL_DIR="$work/spool" \
      MESHHOOK_STATS_LOG_LEVEL=warn MESHHOOK_STATS_API_THREADS=8 "$@" "$bin" serve >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  cat "$work/log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }

echo "== metrics only (no database): batches of 1 and of 100 runs, 32 connections"
start
BENCH_BATCH=1 wrk -t2 -c32 -d"$duration" -s "$root/bench/ingest.lua" "http://127.0.0.1:$port" -- "$token" 1 | tail -1
BENCH_BATCH=100 wrk -t2 -c32 -d"$duration" -s "$root/bench/ingest.lua" "http://127.0.0.1:$port" -- "$token" 100 | tail -1
stop

if [ -n "${MESHHOOK_BENCH_DATABASE_URL:-}" ]; then
  echo "== durable: spool + writer into $MESHHOOK_BENCH_DATABASE_URL, batches of 500"
  MESHHOOK_STATS_DATABASE_URL=$MESHHOOK_BENCH_DATABASE_URL "$bin" migrate 2>/dev/null
  before=$(psql -qtAX "$MESHHOOK_BENCH_DATABASE_URL" -c 'select count(*) from execution_time_statistics')
  start MESHHOOK_STATS_DATABASE_URL="$MESHHOOK_BENCH_DATABASE_URL"
  t0=$(date +%s.%N)
  BENCH_BATCH=500 wrk -t2 -c32 -d"$duration" -s "$root/bench/ingest.lua" "http://127.0.0.1:$port" -- "$token" 500 | tail -1
  # Wait until the writer has drained the spool, then count what reached Postgres.
  for _ in $(seq 1 600); do
    curl -s "http://127.0.0.1:$((port + 1))/metrics" | grep -q '^meshhook_stats_spool_records 0$' && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  after=$(psql -qtAX "$MESHHOOK_BENCH_DATABASE_URL" -c 'select count(*) from execution_time_statistics')
  awk -v n=$((after - before)) -v a="$t0" -v b="$t1" \
    'BEGIN { printf "rows committed: %d in %.1f s: %.0f runs/s end to end\n", n, b - a, n / (b - a) }'
  stop
fi
