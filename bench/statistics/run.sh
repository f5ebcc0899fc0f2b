#!/usr/bin/env bash
# Runs the statistics benchmark: statistics_server on a database loaded by generate.sql,
# then wrk at 32 connections for each query kind, answered the default way and exactly
# (exact=true: percentile_cont over the rows, the naive way). Prints one line per run.
#   bench/statistics/run.sh BUILD_DIR DATABASE_URL [seconds]
set -euo pipefail
build=${1:?BUILD_DIR}
url=${2:?DATABASE_URL}
seconds=${3:-15}
here=$(cd "$(dirname "$0")" && pwd)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/bench/statistics/statistics_server" --database "$url" --listen "127.0.0.1:$port" \
  --threads 48 --pool 8 >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
sleep 1
printf '%-10s %-7s %9s %9s %9s %8s\n' kind mode p50_ms p99_ms req_per_s errors
for kind in wf24h wf7d wf90d tenant30d dayseries mixed; do
  for mode in default exact; do
    out=$(wrk -t2 -c32 -d"${seconds}s" --latency -s "$here/statistics.lua" "http://127.0.0.1:$port" \
          -- "$kind" "$mode" 2>&1)
    ms() { awk -v k="$1" '$1 == k { v = $2; if (v ~ /ms$/) { sub(/ms/, "", v); print v }
           else if (v ~ /us$/) { sub(/us/, "", v); print v / 1000 } else { sub(/s/, "", v); print v * 1000 } }' <<<"$out"; }
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    errors=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    printf '%-10s %-7s %9s %9s %9s %8s\n' "$kind" "$mode" "$(ms 50%)" "$(ms 99%)" "$rps" "${errors:-0}"
  done
done
