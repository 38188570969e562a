#!/usr/bin/env bash
# Stop what start-local.sh STATE_DIR started (the data stays in STATE_DIR).
set -uo pipefail
state=${1:?usage: stop-local.sh STATE_DIR}
if [ -f "$state/mlflow.pid" ]; then
  pid=$(cat "$state/mlflow.pid")
  pkill -TERM -P "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null; pkill -KILL -P "$pid" 2>/dev/null
  rm -f "$state/mlflow.pid"
fi
pg_bin=$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1)")")
if [ -s "$state/pg/PG_VERSION" ]; then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$pg_bin/pg_ctl" -D "$state/pg" -m fast stop >/dev/null 2>&1
  else "$pg_bin/pg_ctl" -D "$state/pg" -m fast stop >/dev/null 2>&1; fi
fi
exit 0
