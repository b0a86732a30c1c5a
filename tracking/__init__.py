"""MLflow records of studies and trials (knows nothing of Ray)."""
