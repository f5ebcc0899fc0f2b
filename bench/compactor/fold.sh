#!/usr/bin/env bash
# What one compactor round costs, schema against schema:
#   bench/compactor/fold.sh SERVER_URL SPAN_SECONDS ROUNDS BATCHES LAST_MIGRATION...
# For each LAST_MIGRATION (e.g. 17 18) creates the database meshhook_fold_<N> (dropped first)
# with sql/migrations/0001..N applied. Then, ROUNDS times and alternating between the
# databases: appends BATCHES batches of batch.sql (20,000 runs each, over SPAN_SECONDS) and
# folds the deltas by two meshhook_stats_compact(20000) calls, printing for each call its wall
# time and the time its backend spent on CPU (/proc/PID/schedstat: nanoseconds run, not
# inflated by waiting for a core on a loaded machine). Round 0 of each database (first rows of
# every key) is a warm-up: compare the rounds after it. Postgres must run on this machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:?SERVER_URL, e.g. postgresql://postgres@127.0.0.1:55813}
span=${2:?SPAN_SECONDS}
rounds=${3:?ROUNDS}
batches=${4:?BATCHES}
shift 4
[ $# -gt 0 ] || { echo "fold.sh: name at least one LAST_MIGRATION" >&2; exit 2; }
server=${server%/}
psql_to() { psql "$server/$1" -v ON_ERROR_STOP=1 -q -X "${@:2}"; }

for n in "$@"; do
  db=meshhook_fold_$n
  psql_to postgres -c "set client_min_messages = warning" -c "drop database if exists $db" \
    -c "create database $db"
  for f in "$root"/sql/migrations/*.sql; do
    v=$(basename "$f"); v=$((10#${v%%_*}))
    [ "$v" -le "$n" ] && psql_to "$db" -1 -f "$f" > /dev/null
  done
done

# CPU nanoseconds of the session named $1 (its application_name).
cpu_of() {
  local pid
  pid=$(PGAPPNAME=fold-probe psql_to postgres -Atc \
        "select pid from pg_stat_activity where application_name = '$1'")
  cut -d' ' -f1 "/proc/$pid/schedstat"
}

for round in $(seq 0 "$rounds"); do
  for n in "$@"; do
    db=meshhook_fold_$n
    for i in $(seq 1 "$batches"); do
      psql_to "$db" -v span="$span" -v seed=$((round * 100 + i)) -f "$here/batch.sql"
    done
    pending=$(psql_to "$db" -Atc "select count(*) from execution_time_rollup_deltas")
    name=fold-$db-$$
    # One session for both calls; the shell between them reads its CPU.
    coproc fold { PGAPPNAME=$name psql_to "$db" -At; }
    echo "select 1;" >&"${fold[1]}"; read -r _ <&"${fold[0]}"
    line="schema 00$n round $round: $pending deltas, load $(cut -d' ' -f1 /proc/loadavg)"
    for call in 1 2; do
      before=$(cpu_of "$name"); start=$(date +%s%N)
      echo "select folded from meshhook_stats_compact(20000);" >&"${fold[1]}"
      read -r folded <&"${fold[0]}"
      end=$(date +%s%N); after=$(cpu_of "$name")
      line+="; fold $call: $folded in $(( (end - start) / 1000000 )) ms, $(( (after - before) / 1000000 )) ms CPU"
    done
    echo '\q' >&"${fold[1]}"
    wait "$fold_PID"
    echo "$line"
  done
done
