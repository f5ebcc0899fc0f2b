#!/usr/bin/env bash
# make fuzz: builds the libFuzzer targets of tests/fuzz in their own clang build (ASan, UBSan,
# libFuzzer coverage) and runs each for FUZZ_SECONDS (default 60), starting from the seed
# corpus tests/fuzz/corpus/<target>/. New inputs go to a work corpus, never into the tree.
#   scripts/fuzz.sh [--build-only | --no-build] [TARGET...]
# Environment: FUZZ_SECONDS, FUZZ_BUILD_DIR (default build-fuzz), FUZZ_WORK_DIR (default
# FUZZ_BUILD_DIR/work), FUZZ_JOBS (build jobs, default nproc). A crash leaves its input in the
# work directory and fails the run; the last lines of each run's log are printed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
work=${FUZZ_WORK_DIR:-$build/work}
seconds=${FUZZ_SECONDS:-60}
all=(run_event_parser statistics_params config_loader jwt)

mode=all
case "${1:-}" in
  --build-only) mode=build; shift ;;
  --no-build) mode=run; shift ;;
esac
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

cxx=$(command -v clang++ || command -v clang++-14 || true)
cc=$(command -v clang || command -v clang-14 || true)
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "fuzz: clang is not installed (Debian: clang libclang-rt-14-dev)" >&2
  exit 1
fi

if [ "$mode" != run ]; then
  # -fno-sanitize-recover: undefined behaviour stops the run like a crash does.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
    -DMESHHOOK_FUZZ=ON -DMESHHOOK_BUILD_BENCH=OFF -DMESHHOOK_WERROR=OFF \
    -DMESHHOOK_SANITIZE=address,undefined,fuzzer-no-link \
    -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=all" -DCMAKE_C_FLAGS="-fno-sanitize-recover=all" \
    >"$build.cmake.log" 2>&1 || { cat "$build.cmake.log" >&2; exit 1; }
  cmake --build "$build" -j "${FUZZ_JOBS:-$(nproc)}" \
    --target $(printf 'fuzz_%s ' "${targets[@]}") >"$build.build.log" 2>&1 ||
    { tail -50 "$build.build.log" >&2; exit 1; }
  echo "fuzz: built ${targets[*]} in $build"
fi
[ "$mode" = build ] && exit 0

status=0
for t in "${targets[@]}"; do
  bin=$(find -H "$build" -name "fuzz_$t" -type f -perm -u+x | head -1)
  if [ -z "$bin" ]; then echo "fuzz: fuzz_$t is not built (run without --no-build)" >&2; exit 1; fi
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  log="$work/$t.log"
  echo "== fuzz $t for ${seconds}s"
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$artifacts" \
       "$corpus" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1; then
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
    echo "fuzz $t: ok, ${runs:-?} executions, corpus $(ls "$corpus" | wc -l) inputs"
  else
    status=1
    echo "fuzz $t: FAILED; input kept in $artifacts" >&2
    grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$log" | head -40 >&2 || tail -40 "$log" >&2
  fi
done
exit "$status"
