#!/bin/sh
# Runs a gradstudy command against the compose stack: the cluster address, the Optuna storage and the
# MLflow URI come from the environment (no secret in them: passwords are in PGPASSWORD and
# MLFLOW_TRACKING_PASSWORD). Usage: driver-entrypoint.sh gradstudy nightly [overrides…]
# run/nightly/trial get them as overrides; status/resume/list/report (which take no overrides) as
# --storage (and --tracking-uri); anything else runs as given.
set -eu
[ $# -ge 2 ] || exec "$@"
cmd="$1"; sub="$2"; shift 2
case "$sub" in
    run|nightly|trial)
        exec "$cmd" "$sub" "$@" cluster.address="$RAY_ADDRESS" study.storage="$GRADSTUDY_STORAGE" \
            tracking.uri="$MLFLOW_TRACKING_URI" ;;
    status|resume|list)
        exec "$cmd" "$sub" "$@" --storage "$GRADSTUDY_STORAGE" ;;
    report)
        exec "$cmd" "$sub" "$@" --storage "$GRADSTUDY_STORAGE" --tracking-uri "$MLFLOW_TRACKING_URI" ;;
    *)
        exec "$cmd" "$sub" "$@" ;;
esac
