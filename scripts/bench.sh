#!/usr/bin/env bash
# make bench: the microbenchmarks (Release build in build-bench) and the HTTP ingest load test.
# Figures go to docs/benchmarks.md by hand, with the command and the machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMESHHOOK_BUILD_TESTS=OFF >/dev/null
cmake --build build-bench -j "$(nproc)"
for b in build-bench/bench/*_bench; do
  [ -x "$b" ] || continue
  echo "== $b"
  "$b" --benchmark_min_time=0.5
done
bench/ingest_http.sh build-bench
