#!/usr/bin/env bash
# MeshHook finishing runs without capture, with the capture trigger and with the logical
# capture, side by side in one run.
#   bench/capture/run.sh DATABASE_URL [MESHHOOK_BIN] [CLIENTS] [SECONDS] [MODES]
# MODES: "trigger logical" (default), "trigger" or "logical" (also CAPTURE_BENCH_MODES); and
# two floors that store nothing, to tell what either design costs before it stores a run:
#   noop_trigger  the capture trigger's WHEN clause and a security definer plpgsql function
#                 that returns at once (what any trigger capture pays at least);
#   slot_only     capture_logical.sql's slot and publication streamed by pg_recvlogical into
#                 /dev/null (what the WAL sender costs any logical capture; its CPU is printed
#                 as the reader's).
# Creates MeshHook's tables (tests/fixtures/meshhook_schema.sql) and 400,000 running runs in a
# scratch database `meshhook_capture_bench` of that server (dropped first), migrates it, then
# for each transaction shape (one run, two random runs) runs pgbench without any capture, then
# for each mode with it installed, resetting the statuses before every run:
#   trigger  sql/integrations/meshhook/capture.sql, and the compactor moving and folding what
#            the trigger appends (a psql loop, one round every 0.2 s);
#   logical  sql/integrations/meshhook/capture_logical.sql and no trigger, the daemon
#            (`serve`, capture.mode: logical at its default interval, its compactor on) reading
#            the slot while pgbench runs (the caller's MESHHOOK_STATS_* variables apply, e.g.
#            MESHHOOK_STATS_CAPTURE_INTERVAL_MS). Needs wal_level = logical (scripts/pg.sh sets it).
# After each run it waits until every run finished is captured (captured = finished), and
# prints the seconds on CPU spent during the run by the daemon process, its Postgres session
# reading the slot and its session storing the runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:?DATABASE_URL of the server}
bin=${2:-$root/build/app/meshhook-stats}
clients=${3:-32}
seconds=${4:-15}
modes=${5:-${CAPTURE_BENCH_MODES:-trigger logical}}
db=meshhook_capture_bench
slot=meshhook_capture_bench
url="${server%/*}/$db"
work=$(mktemp -d)
psql "$server" -qX -c "drop database if exists $db with (force)" -c "create database $db"
MESHHOOK_STATS_DATABASE_URL="$url" "$bin" migrate >/dev/null 2>&1
psql "$url" -qX -v ON_ERROR_STOP=1 -f "$root/tests/fixtures/meshhook_schema.sql" -f "$here/setup.sql"
if [[ " $modes " == *" logical "* ]] &&
   [ "$(psql "$url" -qXtA -c "show wal_level")" != logical ]; then
  echo "run.sh: the logical mode needs wal_level = logical on this server" >&2
  exit 2
fi

compactor_pid=
daemon_pid=
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
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
start_daemon() {
  rm -f "$work/daemon.log"
  MESHHOOK_STATS_DATABASE_URL="$url" MESHHOOK_STATS_CAPTURE_MODE=logical \
    MESHHOOK_STATS_CAPTURE_SLOT="$slot" MESHHOOK_STATS_UI_ENABLED=false \
    MESHHOOK_STATS_API_LISTEN="127.0.0.1:$(free_port)" \
    MESHHOOK_STATS_METRICS_LISTEN="127.0.0.1:$(free_port)" \
    MESHHOOK_STATS_SPOOL_DIR="$work/spool" "$bin" serve >"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  # Active: the log says so and the slot has its reader (the session measured below).
  for _ in $(seq 1 100); do
    grep -qs "capture: active" "$work/daemon.log" && [ "$(reader_pid)" != 0 ] && return 0
    sleep 0.1
  done
  echo "run.sh: the daemon's capture did not become active:" >&2
  cat "$work/daemon.log" >&2
  exit 1
}
stop_daemon() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  daemon_pid=
}
trap 'stop_compactor; stop_daemon; [ -n "${KEEP_LOG:-}" ] && cp "$work/daemon.log" "$KEEP_LOG"; rm -rf "$work"' EXIT

cpu_seconds() {  # pid -> seconds on CPU of all its threads so far (/proc/PID/schedstat; 0 when gone)
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.2f", s / 1e9 }'
}
reader_pid() {  # the daemon's session reading the slot (in SQL, once a round)
  psql "$url" -qXtA -c "select coalesce(max(pid), 0) from pg_stat_activity
                        where application_name = 'meshhook-stats-capture-slot'"
}
store_pid() {  # the daemon's session storing the runs it reads
  psql "$url" -qXtA -c "select coalesce(max(pid), 0) from pg_stat_activity
                        where application_name = 'meshhook-stats-capture'"
}

run() {  # shape -> "tps failed"
  local out tps failed
  out=$(pgbench -n -c "$clients" -j 2 -T "$seconds" -f "$here/$1.sql" "$url" 2>&1)
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -1)
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  echo "${tps:-0} ${failed:-0}"
  grep -i "deadlock\|error" <<<"$out" | head -3 >&2 || true
}
reset() {
  psql "$url" -qX -v ON_ERROR_STOP=1 -f "$here/reset.sql" >/dev/null
}
uninstall() {
  PGOPTIONS="-c meshhook_stats.slot=$slot" \
    psql "$url" -qX -f "$root/sql/integrations/meshhook/uninstall.sql" >/dev/null 2>&1
}
counts() {  # -> "captured finished"
  echo "$(psql "$url" -qXtA -c "select count(*) from execution_time_statistics")" \
       "$(psql "$url" -qXtA -c "select count(*) from workflow_runs where status <> 'running'")"
}

with_trigger() {  # shape -> "tps failed captured finished cpu"
  PGOPTIONS="-c client_min_messages=warning" \
    psql "$url" -qX -v ON_ERROR_STOP=1 -f "$root/sql/integrations/meshhook/capture.sql" >/dev/null
  reset
  start_compactor
  local tps failed
  read -r tps failed < <(run "$1")
  stop_compactor
  # What the trigger appended and the compactor has not moved yet counts too: move it now (a
  # round still running when the loop was stopped holds its rows until it commits).
  until [ "$(psql "$url" -qXtA -c "select meshhook_stats_compact(2147483647)" \
              -c "select count(*) from execution_time_captured_runs" | tail -1)" = 0 ]; do
    sleep 0.2
  done
  uninstall
  echo "$tps $failed $(counts) -"
}

with_logical() {  # shape -> "tps failed captured finished cpu"
  PGOPTIONS="-c meshhook_stats.slot=$slot" psql "$url" -qX -v ON_ERROR_STOP=1 \
    -f "$root/sql/integrations/meshhook/capture_logical.sql" >/dev/null 2>&1
  reset
  start_daemon
  local tps failed wal store d0 w0 s0 d1 w1 s1 target
  wal=$(reader_pid)
  store=$(store_pid)
  d0=$(cpu_seconds "$daemon_pid")
  w0=$(cpu_seconds "$wal")
  s0=$(cpu_seconds "$store")
  read -r tps failed < <(run "$1")
  d1=$(cpu_seconds "$daemon_pid")
  w1=$(cpu_seconds "$wal")
  s1=$(cpu_seconds "$store")
  # Every finish is in the WAL by now: wait until the slot has confirmed past it.
  target=$(psql "$url" -qXtA -c "select pg_current_wal_lsn()")
  for _ in $(seq 1 600); do
    [ "$(psql "$url" -qXtA -c "select confirmed_flush_lsn >= '$target' from pg_replication_slots
                               where slot_name = '$slot'")" = t ] && break
    sleep 0.1
  done
  stop_daemon
  uninstall
  echo "$tps $failed $(counts) $(printf '%.2f+%.2f+%.2f' "$(echo "$d1 - $d0" | bc)" \
    "$(echo "$w1 - $w0" | bc)" "$(echo "$s1 - $s0" | bc)")"
}

with_noop_trigger() {  # shape -> "tps failed captured finished cpu"
  psql "$url" -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
create function bench_noop_capture() returns trigger language plpgsql security definer
  set search_path = pg_catalog, public, pg_temp as $$ begin return null; end $$;
create trigger bench_noop_capture after update of status, finished_at on workflow_runs
  for each row
  when (new.status in ('succeeded', 'failed', 'canceled') and new.finished_at is not null
        and new.started_at is not null
        and (old.status is distinct from new.status or old.finished_at is distinct from new.finished_at))
  execute function bench_noop_capture();
SQL
  reset
  local tps failed
  read -r tps failed < <(run "$1")
  psql "$url" -qX -c "drop trigger bench_noop_capture on workflow_runs" \
    -c "drop function bench_noop_capture()" >/dev/null
  echo "$tps $failed 0 $(counts | cut -d' ' -f2) -"
}

with_slot_only() {  # shape -> "tps failed captured finished cpu"
  PGOPTIONS="-c meshhook_stats.slot=$slot" psql "$url" -qX -v ON_ERROR_STOP=1 \
    -f "$root/sql/integrations/meshhook/capture_logical.sql" >/dev/null 2>&1
  reset
  local recv tps failed wal w0 w1
  recv=$(ls /usr/lib/postgresql/*/bin/pg_recvlogical 2>/dev/null | tail -1)
  PGAPPNAME=meshhook-stats-capture-slot "${recv:-pg_recvlogical}" -d "$url" --slot "$slot" \
    --start -o proto_version=1 -o publication_names=meshhook_stats_capture -f /dev/null &
  local recv_pid=$!
  for _ in $(seq 1 100); do [ "$(reader_pid)" != 0 ] && break; sleep 0.1; done
  wal=$(reader_pid)
  w0=$(cpu_seconds "$wal")
  read -r tps failed < <(run "$1")
  w1=$(cpu_seconds "$wal")
  kill "$recv_pid" 2>/dev/null; wait "$recv_pid" 2>/dev/null || true
  uninstall
  echo "$tps $failed 0 $(counts | cut -d' ' -f2) $(printf '0+%.2f+0' "$(echo "$w1 - $w0" | bc)")"
}

printf '%-11s %-8s %10s %10s %7s %7s %9s %9s %s\n' shape mode "tps off" "tps on" failed ratio \
  captured finished "cpu s: daemon+reader+store"
for shape in finish_one finish_two; do
  uninstall
  reset
  read -r tps0 failed0 < <(run "$shape")
  [ "$failed0" = 0 ] || echo "run.sh: $failed0 failed transactions without capture" >&2
  for mode in $modes; do
    read -r tps1 failed1 captured finished cpu < <("with_$mode" "$shape")
    printf '%-11s %-8s %10s %10s %7s %6.1f%% %9s %9s %s\n' "$shape" "$mode" "$tps0" "$tps1" \
      "$failed1" "$(echo "100 * $tps1 / $tps0" | bc -l)" "$captured" "$finished" "$cpu"
  done
done
psql "$url" -qXtA -c "select 'pending deltas after the last run: ' || count(*) from execution_time_rollup_deltas"
psql "$url" -qXtA -c "select 'rejected runs: ' || count(*) from execution_time_rejected_runs"
