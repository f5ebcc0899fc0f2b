#!/usr/bin/env bash
# Runs one pgTAP file in a fresh database: tests/db/pgtap/run.sh FILE.sql
# The database gets, in order: MeshHook's tables when FILE has a line "-- needs: meshhook_schema"
# (and then the capture trigger),
# FILE's companion FILE.before.sql when there is one (objects the platform already has, e.g.
# Supabase's auth schema), sql/schema.sql (every migration), then pgTAP. Uses pg_prove when
# installed, psql otherwise. Server: MESHHOOK_TEST_DATABASE_URL (set by `make test`); unset, the
# test fails, or is skipped (exit 77) when MESHHOOK_TEST_ALLOW_SKIP is set.
set -euo pipefail
file=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
root=$(cd "$(dirname "$0")/../../.." && pwd)
url=${MESHHOOK_TEST_DATABASE_URL:-}
if [ -z "$url" ]; then
  if [ -n "${MESHHOOK_TEST_ALLOW_SKIP:-}" ]; then echo "skipped: MESHHOOK_TEST_DATABASE_URL is not set"; exit 77; fi
  echo "MESHHOOK_TEST_DATABASE_URL is not set: run through make test" >&2
  exit 1
fi
server=${url%/*}
query=""
case "$url" in *\?*) query="?${url#*\?}" ;; esac
db="pgtap_$(basename "$file" .sql | tr -c 'a-z0-9_\n' '_')_$$"
db_url="$server/$db$query"
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_q "$server/postgres$query" -c "create database $db"
trap 'psql -X -q "$server/postgres$query" -c "drop database if exists $db with (force)" >/dev/null 2>&1' EXIT

if grep -q '^-- needs: meshhook_schema' "$file"; then
  psql_q "$db_url" -f "$root/tests/fixtures/meshhook_schema.sql"
fi
before="${file%.sql}.before.sql"
if [ -f "$before" ]; then psql_q "$db_url" -f "$before"; fi
psql_q "$db_url" -1 -f "$root/sql/schema.sql" >/dev/null
if grep -q '^-- needs: meshhook_schema' "$file"; then
  psql_q "$db_url" -f "$root/sql/integrations/meshhook/capture.sql" >/dev/null
fi
psql_q "$db_url" -c "create extension pgtap"

if command -v pg_prove >/dev/null 2>&1; then
  exec pg_prove --verbose --dbname "$db_url" "$file"
fi
out=$(psql -X -q -v ON_ERROR_STOP=1 -At "$db_url" -f "$file" 2>&1) || { echo "$out"; exit 1; }
echo "$out"
planned=$(sed -nE 's/^1\.\.([0-9]+)$/\1/p' <<<"$out" | head -1)
passed=$(grep -cE '^ok [0-9]+' <<<"$out" || true)
if grep -qE '^not ok' <<<"$out" || [ -z "$planned" ] || [ "$planned" != "$passed" ]; then
  echo "FAILED: planned ${planned:-?}, passed $passed"
  exit 1
fi
