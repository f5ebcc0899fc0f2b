#!/usr/bin/env bash
# make run / make stop / make status: a local Postgres under var/, the daemon with demo
# traffic, all on loopback, each stopped by its own PID. Safe to run again.
set -euo pipefail
cmd=${1:-start}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${2:-$root/build}" && pwd)
var="$root/var"
pg_port=${MESHHOOK_PG_PORT:-54329}
api_port=${MESHHOOK_API_PORT:-9470}
metrics_port=${MESHHOOK_METRICS_PORT:-9471}
db_url="postgresql://postgres@127.0.0.1:$pg_port/meshhook_stats"
bin="$build/app/meshhook-stats"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {  # stop_pid FILE NAME
  if alive "$1"; then
    kill -TERM "$(cat "$1")"
    for _ in $(seq 1 100); do alive "$1" || break; sleep 0.1; done
    alive "$1" && kill -KILL "$(cat "$1")"
    echo "stopped $2"
  fi
  rm -f "$1"
}

urls() {
  cat <<URLS

meshhook-stats is running (logs: var/meshhook-stats.log, demo traffic: var/demo-traffic.log)

  dashboard   http://127.0.0.1:$api_port/ui/?token=$(cat "$var/demo-jwt" 2>/dev/null || echo '<token>')
  metrics     http://127.0.0.1:$metrics_port/metrics
  ingest      http://127.0.0.1:$api_port/api/v1/runs   (token in var/demo-ingest-token)
  statistics  curl -H "Authorization: Bearer \$(cat var/demo-jwt)" http://127.0.0.1:$api_port/api/v1/statistics/execution-times
  health      http://127.0.0.1:$api_port/healthz   http://127.0.0.1:$api_port/readyz
  postgres    psql $db_url -c 'select count(*) from execution_time_statistics'

Stop everything with: make stop
URLS
}

case "$cmd" in
start)
  mkdir -p "$var"
  "$root/scripts/pg.sh" start "$var/pg" "$pg_port"
  MESHHOOK_STATS_DATABASE_URL="$db_url" "$bin" migrate
  if [ ! -s "$var/demo-ingest-token" ]; then
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$var/demo-ingest-token"
    chmod 600 "$var/demo-ingest-token"
  fi
  python3 "$root/scripts/demo-jwt.py" "$var" >/dev/null
  if alive "$var/meshhook-stats.pid"; then
    echo "meshhook-stats already running (pid $(cat "$var/meshhook-stats.pid"))"
  else
    token_hash=$(printf %s "$(cat "$var/demo-ingest-token")" | sha256sum | cut -d' ' -f1)
    env MESHHOOK_STATS_DATABASE_URL="$db_url" \
        MESHHOOK_STATS_INGEST_TOKEN_SHA256="$token_hash" \
        MESHHOOK_STATS_SPOOL_DIR="$var/spool" \
        MESHHOOK_STATS_API_LISTEN="127.0.0.1:$api_port" \
        MESHHOOK_STATS_METRICS_LISTEN="127.0.0.1:$metrics_port" \
        MESHHOOK_STATS_AUTH_JWT_SECRET="$(cat "$var/demo-jwt-secret")" \
        MESHHOOK_STATS_AUTH_JWT_AUDIENCE=authenticated \
        MESHHOOK_STATS_AUTH_PROJECT_IDS_CLAIM=project_ids \
        ${MESHHOOK_RUN_ENV:-} \
      "$bin" serve --config "$root/config/meshhook-stats.yaml" \
        >>"$var/meshhook-stats.log" 2>&1 &
    echo $! >"$var/meshhook-stats.pid"
    for _ in $(seq 1 100); do
      curl -fsS "http://127.0.0.1:$api_port/healthz" >/dev/null 2>&1 && break
      if ! alive "$var/meshhook-stats.pid"; then
        echo "meshhook-stats failed to start; the end of var/meshhook-stats.log:" >&2
        tail -20 "$var/meshhook-stats.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    echo "started meshhook-stats (pid $(cat "$var/meshhook-stats.pid"))"
  fi
  if ! alive "$var/demo-traffic.pid"; then
    # The first time, 30 days of past runs so the dashboards have a history to show.
    history=30
    [ -f "$var/demo-history-posted" ] && history=0
    touch "$var/demo-history-posted"
    python3 "$root/scripts/demo-traffic.py" --url "http://127.0.0.1:$api_port/api/v1/runs" \
      --token-file "$var/demo-ingest-token" --history-days "$history" \
      >>"$var/demo-traffic.log" 2>&1 &
    echo $! >"$var/demo-traffic.pid"
    echo "started demo traffic (pid $(cat "$var/demo-traffic.pid"))"
  fi
  urls
  ;;
stop)
  stop_pid "$var/demo-traffic.pid" "demo traffic"
  stop_pid "$var/meshhook-stats.pid" "meshhook-stats"
  if [ -d "$var/pg" ]; then "$root/scripts/pg.sh" stop "$var/pg" && echo "stopped postgres"; fi
  ;;
status)
  alive "$var/meshhook-stats.pid" && echo "meshhook-stats: running (pid $(cat "$var/meshhook-stats.pid"))" || echo "meshhook-stats: stopped"
  alive "$var/demo-traffic.pid" && echo "demo traffic: running" || echo "demo traffic: stopped"
  "$root/scripts/pg.sh" status "$var/pg" >/dev/null 2>&1 && echo "postgres: running on $pg_port" || echo "postgres: stopped"
  ;;
*)
  echo "usage: run.sh start|stop|status [BUILD_DIR]" >&2; exit 2 ;;
esac
