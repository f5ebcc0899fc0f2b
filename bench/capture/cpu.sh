#!/usr/bin/env bash
# The logical capture's CPU per MeshHook transaction, at a fixed rate so that the figures do not
# depend on how loaded the machine is (the tps ratios of run.sh do):
#   bench/capture/cpu.sh DATABASE_URL RATE SECONDS MESHHOOK_BIN [MESHHOOK_BIN...]
# Creates the scratch database of run.sh (`meshhook_capture_cpu`, dropped first, 400,000 running
# runs), then for each binary: installs capture_logical.sql, starts `serve` with capture.mode:
# logical (any MESHHOOK_STATS_* variable of the caller applies too, e.g.
# MESHHOOK_STATS_CAPTURE_INTERVAL_MS), runs `pgbench -R RATE` of one-run finishes (SHAPE=
# finish_two for two runs a transaction) for SECONDS, waits until the slot has confirmed past
# the run's WAL, and prints the time on CPU (/proc/PID/schedstat: nanoseconds run, counted by
# the scheduler, not inflated by waiting for a core) of the session reading the slot and of the daemon's
# storing session per transaction and per stored run, and of the daemon process per run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:?DATABASE_URL of the server}
rate=${2:?RATE (transactions a second)}
seconds=${3:?SECONDS}
shift 3
[ $# -gt 0 ] || { echo "cpu.sh: name at least one MESHHOOK_BIN" >&2; exit 2; }
shape=${SHAPE:-finish_one}
db=meshhook_capture_cpu
slot=meshhook_capture_cpu
url="${server%/*}/$db"
work=$(mktemp -d)
psql "$server" -qX -c "drop database if exists $db with (force)" -c "create database $db"
MESHHOOK_STATS_DATABASE_URL="$url" "$1" migrate >/dev/null 2>&1
psql "$url" -qX -v ON_ERROR_STOP=1 -f "$root/tests/fixtures/meshhook_schema.sql" -f "$here/setup.sql"

daemon_pid=
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
q() { psql "$url" -qXtA -c "$1"; }
# The session reading the slot: a WAL sender when it streams, a backend when it reads in SQL.
reader_pid() { q "select coalesce(max(pid), 0) from pg_stat_activity where application_name = 'meshhook-stats-capture-slot'"; }
store_pid() { q "select coalesce(max(pid), 0) from pg_stat_activity where application_name = 'meshhook-stats-capture'"; }
oncpu_ns() {  # pid -> nanoseconds on CPU of all its threads so far
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'
}
stop_daemon() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  daemon_pid=
}
trap 'stop_daemon; rm -rf "$work"' EXIT

printf '%-40s %7s %9s %9s %12s %12s %12s\n' binary tx captured finished "reader/tx" \
  "store/run" "daemon/run"
for bin in "$@"; do
  PGOPTIONS="-c meshhook_stats.slot=$slot" psql "$url" -qX -v ON_ERROR_STOP=1 \
    -f "$root/sql/integrations/meshhook/capture_logical.sql" >/dev/null 2>&1
  psql "$url" -qX -v ON_ERROR_STOP=1 -f "$here/reset.sql" >/dev/null
  rm -f "$work/daemon.log"
  MESHHOOK_STATS_DATABASE_URL="$url" MESHHOOK_STATS_CAPTURE_MODE=logical \
    MESHHOOK_STATS_CAPTURE_SLOT="$slot" MESHHOOK_STATS_UI_ENABLED=false \
    MESHHOOK_STATS_API_LISTEN="127.0.0.1:$(free_port)" \
    MESHHOOK_STATS_METRICS_LISTEN="127.0.0.1:$(free_port)" \
    MESHHOOK_STATS_SPOOL_DIR="$work/spool" "$bin" serve >"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 1 100); do
    grep -qs "capture: active" "$work/daemon.log" && [ "$(reader_pid)" != 0 ] &&
      [ "$(store_pid)" != 0 ] && break
    sleep 0.1
  done
  wal=$(reader_pid)
  store=$(store_pid)
  [ "$wal" != 0 ] && [ "$store" != 0 ] || { cat "$work/daemon.log" >&2; exit 1; }
  w0=$(oncpu_ns "$wal") s0=$(oncpu_ns "$store") d0=$(oncpu_ns "$daemon_pid")
  out=$(pgbench -n -c 8 -j 2 -R "$rate" -T "$seconds" -f "$here/$shape.sql" "$url" 2>&1)
  tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  target=$(q "select pg_current_wal_lsn()")
  for _ in $(seq 1 600); do
    [ "$(q "select confirmed_flush_lsn >= '$target' from pg_replication_slots where slot_name = '$slot'")" = t ] && break
    sleep 0.1
  done
  w1=$(oncpu_ns "$wal") s1=$(oncpu_ns "$store") d1=$(oncpu_ns "$daemon_pid")
  [ "$(reader_pid)" = "$wal" ] || echo "cpu.sh: the slot's reader changed during the run" >&2
  stop_daemon
  PGOPTIONS="-c meshhook_stats.slot=$slot" \
    psql "$url" -qX -f "$root/sql/integrations/meshhook/uninstall.sql" >/dev/null 2>&1
  captured=$(q "select count(*) from execution_time_statistics")
  finished=$(q "select count(*) from workflow_runs where status <> 'running'")
  printf '%-40s %7s %9s %9s %9.1f us %9.1f us %9.1f us\n' "$bin" "$tx" "$captured" "$finished" \
    "$(echo "($w1 - $w0) / 1000 / $tx" | bc -l)" "$(echo "($s1 - $s0) / 1000 / $captured" | bc -l)" \
    "$(echo "($d1 - $d0) / 1000 / $captured" | bc -l)"
done
