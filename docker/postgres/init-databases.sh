#!/bin/sh
# First start of the PostgreSQL volume: one database and role for Optuna, one for MLflow.
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE optuna LOGIN PASSWORD '${OPTUNA_DB_PASSWORD}';
CREATE DATABASE optuna OWNER optuna;
CREATE ROLE mlflow LOGIN PASSWORD '${MLFLOW_DB_PASSWORD}';
CREATE DATABASE mlflow OWNER mlflow;
SQL
