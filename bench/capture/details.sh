#!/usr/bin/env bash
# MeshHook writing runs (a job row, three steps of events, the finish: bench/capture/mh_run.sql)
# with the capture trigger installed, first without the daemon, then with a daemon whose
# tailer records every captured run's queue wait and steps from job_tracking and
# workflow_events while pgbench runs (tailer.details_delay_ms = 0, the most it can cost).
#   bench/capture/details.sh DATABASE_URL [MESHHOOK_BIN] [CLIENTS] [SECONDS]
# Uses a scratch database `meshhook_details_bench` of that server (dropped first).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:?DATABASE_URL of the server}
bin=${2:-$root/build/app/meshhook-stats}
clients=${3:-16}
seconds=${4:-15}
db=meshhook_details_bench
url="${server%/*}/$db"
psql "$server" -qX -c "drop database if exists $db with (force)" -c "create database $db"
MESHHOOK_STATS_DATABASE_URL="$url" "$bin" migrate >/dev/null 2>&1
psql "$url" -qX -v ON_ERROR_STOP=1 -f "$root/tests/fixtures/meshhook_schema.sql" -f "$here/setup.sql" \
  -f "$root/sql/integrations/meshhook/capture.sql" >/dev/null

work=$(mktemp -d)
daemon_pid=
stop_daemon() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  daemon_pid=
}
trap 'stop_daemon; rm -rf "$work"' EXIT

reset() {
  psql "$url" -qX -v ON_ERROR_STOP=1 -f "$here/reset.sql" \
    -c "truncate job_tracking, workflow_events, queue_time_statistics, step_time_statistics" \
    -c "delete from meshhook_stats_cursors" >/dev/null
}

run() {  # -> "tps failed"
  local out tps failed
  out=$(pgbench -n -c "$clients" -j 2 -T "$seconds" -f "$here/mh_run.sql" "$url" 2>&1) || true
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -1)
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  echo "${tps:-0} ${failed:-0}"
  grep -i "deadlock\|error" <<<"$out" | head -3 >&2 || true
}

reset
read -r tps0 failed0 < <(run)

reset
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MESHHOOK_STATS_DATABASE_URL="$url" MESHHOOK_STATS_TAILER_ENABLED=true \
  MESHHOOK_STATS_TAILER_INTERVAL_MS=200 MESHHOOK_STATS_TAILER_DETAILS_DELAY_MS=0 \
  MESHHOOK_STATS_API_LISTEN="127.0.0.1:$port" MESHHOOK_STATS_METRICS_LISTEN="127.0.0.1:$mport" \
  MESHHOOK_STATS_SPOOL_DIR="$work/spool" "$bin" serve >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do grep -q "tailer: active" "$work/daemon.log" && break; sleep 0.1; done
read -r tps1 failed1 < <(run)
# Let the tailer catch up, then count what it recorded.
for _ in $(seq 1 300); do
  behind=$(psql "$url" -qXtA -c "select count(*) from execution_time_statistics s where not exists
    (select 1 from queue_time_statistics q where q.run_id = s.run_id)")
  [ "$behind" = 0 ] && break
  sleep 0.2
done
stop_daemon

printf '%-22s %10s %8s\n' "" tps failed
printf '%-22s %10s %8s\n' "capture, no daemon" "$tps0" "$failed0"
printf '%-22s %10s %8s\n' "daemon recording steps" "$tps1" "$failed1"
printf 'ratio %.1f%%\n' "$(echo "100 * $tps1 / $tps0" | bc -l)"
psql "$url" -qXtA -c "select 'runs ' || count(*) from execution_time_statistics" \
  -c "select 'queue rows ' || count(*) from queue_time_statistics" \
  -c "select 'step rows ' || count(*) from step_time_statistics" \
  -c "select 'rejected ' || count(*) from execution_time_rejected_runs"
