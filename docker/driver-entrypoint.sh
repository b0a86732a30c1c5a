#!/bin/sh
# Runs a gradstudy command against the compose stack: the cluster address, the Optuna storage and the
# MLflow URI come from the environment (no secret in them: passwords are in PGPASSWORD and
# MLFLOW_TRACKING_PASSWORD). Usage: driver-entrypoint.sh gradstudy nightly [overrides…]
set -eu
cmd="$1"; sub="$2"; shift 2
exec "$cmd" "$sub" "$@" cluster.address="$RAY_ADDRESS" study.storage="$GRADSTUDY_STORAGE" \
    tracking.uri="$MLFLOW_TRACKING_URI"
