#!/usr/bin/env bash
# A Postgres 15 cluster owned by the project: scripts/pg.sh start|stop|status DATADIR PORT
# Runs as the `postgres` user (Postgres refuses root), listens on 127.0.0.1 only, trusts
# loopback connections (a private development/test cluster), and is stopped by its own PID.
# wal_level=logical (Supabase's default) so that the logical capture (capture_logical.sql) and
# its tests run; the replication slots and WAL senders are enough for parallel test databases.
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop|status DATADIR [PORT]}
datadir=${2:?DATADIR}
port=${3:-54329}
bindir=/usr/lib/postgresql/15/bin
as_pg() {
  # From /: postgres may not enter the caller's working directory.
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The postgres user must reach the data directory. A checkout in a directory it cannot enter
# (root's home is 0700 on Debian) gets its cluster in a directory of its own under
# /var/lib/meshhook-stats, and DATADIR becomes a link to it; every command resolves the link
# first, as the caller, since postgres cannot follow it through such a directory.
reachable_by_pg() {
  [ "$(id -u)" -ne 0 ] || (cd / && runuser -u postgres -- test -x "$1")
}
place() {
  mkdir -p "$(dirname "$datadir")"
  local parent
  parent=$(cd "$(dirname "$datadir")" && pwd -P)
  if [ ! -e "$datadir" ] && ! reachable_by_pg "$parent"; then
    local home
    home=/var/lib/meshhook-stats/$(printf '%s' "$parent/$(basename "$datadir")" | sha1sum | cut -c1-16)
    mkdir -p "$home"
    ln -s "$home" "$datadir"
    echo "pg: postgres cannot enter $parent; the cluster lives in $home (linked from $datadir)"
  fi
}

case "$cmd" in
start)
  place
  mkdir -p "$datadir"
  datadir=$(cd "$datadir" && pwd -P)
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$datadir"
  chmod 700 "$datadir"
  if [ ! -f "$datadir/PG_VERSION" ]; then
    as_pg "$bindir/initdb" -D "$datadir" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8 >"$datadir.initdb.log" 2>&1 || { cat "$datadir.initdb.log" >&2; exit 1; }
  fi
  if as_pg "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
    echo "pg: already running on port $(sed -n 4p "$datadir/postmaster.pid")"
    exit 0
  fi
  as_pg "$bindir/pg_ctl" -D "$datadir" -w -t 60 -l "$datadir/server.log" start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $datadir -c fsync=${PG_FSYNC:-on} \
        -c max_connections=200 -c shared_buffers=256MB -c logging_collector=off \
        -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20" >/dev/null
  for _ in $(seq 1 60); do
    "$bindir/pg_isready" -h 127.0.0.1 -p "$port" -q && break
    sleep 0.5
  done
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qtAc \
    "select 1 from pg_database where datname='meshhook_stats'" | grep -q 1 ||
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "create database meshhook_stats"
  echo "pg: running on 127.0.0.1:$port (pid $(head -1 "$datadir/postmaster.pid"))"
  ;;
stop)
  [ -e "$datadir" ] && datadir=$(cd "$datadir" && pwd -P)
  if [ -f "$datadir/postmaster.pid" ]; then
    as_pg "$bindir/pg_ctl" -D "$datadir" -w -t 60 -m "${PG_STOP_MODE:-fast}" stop >/dev/null || true
  fi
  ;;
status)
  [ -e "$datadir" ] && datadir=$(cd "$datadir" && pwd -P)
  as_pg "$bindir/pg_ctl" -D "$datadir" status
  ;;
*)
  echo "usage: pg.sh start|stop|status DATADIR [PORT]" >&2; exit 2 ;;
esac
