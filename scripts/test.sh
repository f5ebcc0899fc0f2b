#!/usr/bin/env bash
# make test: starts a private Postgres, runs every CTest suite (unit, db, e2e, rules, browser,
# fuzz), stops what it started, and ends with one summary line.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
cd "$root"

work=$(mktemp -d /tmp/meshhook-stats-test.XXXXXX)
chmod 755 "$work"
pg_port=${MESHHOOK_TEST_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
cleanup() {
  scripts/pg.sh stop "$work/pg" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a private Postgres on 127.0.0.1:$pg_port"
if ! scripts/pg.sh start "$work/pg" "$pg_port"; then
  echo "summary: 0 passed, 1 failed (could not start Postgres)"
  exit 1
fi
export MESHHOOK_TEST_PG_DATADIR="$work/pg"
export MESHHOOK_TEST_PG_PORT="$pg_port"
export MESHHOOK_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$pg_port/meshhook_stats"
export MESHHOOK_TEST_WORK="$work"
export MESHHOOK_BUILD_DIR="$build"

log="$work/ctest.log"
(cd "$build" && ctest --output-on-failure --timeout 900 -j "${MESHHOOK_TEST_JOBS:-2}" "${@:2}") 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
failed=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
if [ -z "$line" ]; then total=0; failed=1; status=1; fi
echo
echo "summary: $((total - failed)) passed, $failed failed"
exit "$status"
