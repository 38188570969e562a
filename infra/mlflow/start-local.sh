#!/usr/bin/env bash
# A real MLflow tracking server on this machine: PostgreSQL backend store (Debian's
# postgresql package), artifacts proxied by the server into a directory, everything on
# 127.0.0.1. Used by the tests and for single-host studies.
#
#   infra/mlflow/start-local.sh STATE_DIR [MLFLOW_PORT] [PG_PORT]
#   -> prints the tracking URI (http://127.0.0.1:MLFLOW_PORT); stop with stop-local.sh STATE_DIR
#
# STATE_DIR keeps the database cluster (pg/), the artifacts (artifacts/), logs and pids; a
# second start on the same STATE_DIR reuses the data. MLFLOW defaults to the mlflow next to
# this python (MLFLOW=/path/to/mlflow to override).
set -euo pipefail
state=${1:?usage: start-local.sh STATE_DIR [MLFLOW_PORT] [PG_PORT]}
port=${2:-5005}
pg_port=${3:-5433}
mkdir -p "$state"
state=$(cd "$state" && pwd)
mlflow=${MLFLOW:-$(command -v mlflow || true)}
[ -n "$mlflow" ] || { echo "start-local.sh: mlflow not found (activate the venv or set MLFLOW)" >&2; exit 2; }

pg_bin=$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1)")")
[ -x "$pg_bin/pg_ctl" ] || { echo "start-local.sh: PostgreSQL not found: apt-get install postgresql" >&2; exit 2; }

# PostgreSQL refuses to run as root: run it as the 'postgres' user then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pgdata=$state/pg
if [ ! -s "$pgdata/PG_VERSION" ]; then
  mkdir -p "$pgdata"
  [ "$(id -u)" = 0 ] && chown postgres "$pgdata" "$state"
  as_pg "$pg_bin/initdb" -D "$pgdata" -U mlflow --auth=trust -E UTF8 >"$state/initdb.log"
fi
if ! as_pg "$pg_bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
  as_pg "$pg_bin/pg_ctl" -D "$pgdata" -l "$state/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdata" start >/dev/null
fi
if ! as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U mlflow mlflow 2>"$state/createdb.err"; then
  grep -q "already exists" "$state/createdb.err" || { cat "$state/createdb.err" >&2; exit 1; }
fi

mkdir -p "$state/artifacts"
uri=http://127.0.0.1:$port
if ! curl -fs "$uri/health" >/dev/null 2>&1; then
  # --allowed-hosts/--cors: this server is for 127.0.0.1 only
  # server-side jobs (huey consumers) are not used by memlab
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup "$mlflow" server \
    --backend-store-uri "postgresql+psycopg2://mlflow@127.0.0.1:$pg_port/mlflow" \
    --artifacts-destination "$state/artifacts" \
    --host 127.0.0.1 --port "$port" --workers 2 \
    >"$state/mlflow.log" 2>&1 &
  echo $! >"$state/mlflow.pid"
  for _ in $(seq 1 120); do
    curl -fs "$uri/health" >/dev/null 2>&1 && break
    kill -0 "$(cat "$state/mlflow.pid")" 2>/dev/null || { tail -20 "$state/mlflow.log" >&2; exit 1; }
    sleep 1
  done
  curl -fs "$uri/health" >/dev/null || { echo "start-local.sh: server did not come up" >&2; exit 1; }
fi
echo "$uri"
