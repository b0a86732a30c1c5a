#!/bin/sh
# The MLflow server of the compose stack: PostgreSQL backend, artifacts served from the volume, basic-auth.
set -eu
export PGPASSWORD="$MLFLOW_DB_PASSWORD"   # libpq reads it: no password on the command line
# MLflow's default 4 uvicorn workers: on a kept-alive connection each request of theirs stalls ~40 ms (uvicorn's lost
# TCP_NODELAY); gradstudy's clients open a connection per request (tracking.keep_alive=false, docs/mlflow.md)
exec mlflow server --app-name basic-auth \
    --backend-store-uri "postgresql+psycopg2://mlflow@postgres:5432/mlflow" \
    --serve-artifacts --artifacts-destination /mlflow/artifacts \
    --host 0.0.0.0 --port 5000
