#!/usr/bin/env bash
# MeshHook finishing runs with and without the capture trigger, side by side in one run.
#   bench/capture/run.sh DATABASE_URL [MESHHOOK_BIN] [CLIENTS] [SECONDS]
# Creates MeshHook's tables (tests/fixtures/meshhook_schema.sql) and 400,000 running runs in a
# scratch database `meshhook_capture_bench` of that server (dropped first), migrates it, then
# for each transaction shape (one run, two random runs) runs pgbench without the capture,
# then with sql/integrations/meshhook/capture.sql installed (the compactor folding what the
# trigger appends, as the daemon does), resetting the statuses before every run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:?DATABASE_URL of the server}
bin=${2:-$root/build/app/meshhook-stats}
clients=${3:-32}
seconds=${4:-15}
db=meshhook_capture_bench
url="${server%/*}/$db"
psql "$server" -qX -c "drop database if exists $db with (force)" -c "create database $db"
MESHHOOK_STATS_DATABASE_URL="$url" "$bin" migrate >/dev/null 2>&1
psql "$url" -qX -v ON_ERROR_STOP=1 -f "$root/tests/fixtures/meshhook_schema.sql" -f "$here/setup.sql"

compactor_pid=
start_compactor() {
  # What the daemon's compactor does: one short transaction per round.
  (while true; do
     psql "$url" -qXtA -c "select meshhook_stats_compact(20000)" >/dev/null 2>&1 || true
     sleep 0.2
   done) &
  compactor_pid=$!
}
stop_compactor() {
  [ -n "$compactor_pid" ] && kill "$compactor_pid" 2>/dev/null && wait "$compactor_pid" 2>/dev/null || true
  compactor_pid=
}
trap stop_compactor EXIT

run() {  # shape, label -> "tps failed"
  psql "$url" -qX -v ON_ERROR_STOP=1 -f "$here/reset.sql" >/dev/null
  local out
  out=$(pgbench -n -c "$clients" -j 2 -T "$seconds" -f "$here/$1.sql" "$url" 2>&1)
  local tps failed
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -1)
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  echo "${tps:-0} ${failed:-0}"
  grep -i "deadlock\|error" <<<"$out" | head -3 >&2 || true
}

printf '%-12s %14s %10s %14s %10s %8s %10s %10s\n' shape "tps without" failed "tps with" failed ratio captured finished
for shape in finish_one finish_two; do
  psql "$url" -qX -f "$root/sql/integrations/meshhook/uninstall.sql" >/dev/null
  read -r tps0 failed0 < <(run "$shape")
  psql "$url" -qX -v ON_ERROR_STOP=1 -f "$root/sql/integrations/meshhook/capture.sql" >/dev/null
  start_compactor
  read -r tps1 failed1 < <(run "$shape")
  stop_compactor
  # What the trigger appended and the compactor has not moved yet counts too: move it now (a
  # round still running when the loop was stopped holds its rows until it commits).
  until [ "$(psql "$url" -qXtA -c "select meshhook_stats_compact(2147483647)" \
              -c "select count(*) from execution_time_captured_runs" | tail -1)" = 0 ]; do
    sleep 0.2
  done
  captured=$(psql "$url" -qXtA -c "select count(*) from execution_time_statistics")
  finished=$(psql "$url" -qXtA -c "select count(*) from workflow_runs where status <> 'running'")
  printf '%-12s %14s %10s %14s %10s %7.1f%% %10s %10s\n' "$shape" "$tps0" "$failed0" "$tps1" \
    "$failed1" "$(echo "100 * $tps1 / $tps0" | bc -l)" "$captured" "$finished"
done
psql "$url" -qXtA -c "select 'pending deltas after the last run: ' || count(*) from execution_time_rollup_deltas"
psql "$url" -qXtA -c "select 'rejected runs: ' || count(*) from execution_time_rejected_runs"
