"""MLflow runs: a study's parent run and a child run per trial.

    connection.py     where records go (`tracking.uri` or the local store) and checking that they can
    errors.py         the error of an unusable MLflow configuration (no MLflow import)
    urls.py           credentials in URLs, masked before anything is logged
    names.py          the MLflow names (metrics, tags) and a trial's reports mapped to them
    study_runs.py     `StudyRecorder`: the experiment, the parent run and the child runs, kept by the driver
    trial_recorder.py `TrialRecorder`: a worker's Reporter that records one trial in its child run
    batch_logger.py   metrics sent in batches from a background thread
    run_end.py        closing a trial's run: state, health, colour, final metrics
    task_input.py     a trial's task as the run's input dataset
    trial_note.py     a trial run's description
    fresh_connections.py  a new connection per request to an MLflow server (`tracking.keep_alive=false`)

study_runs, trial_recorder, batch_logger, run_end and fresh_connections (switched on) load MLflow: import them
directly.
"""
from tracking.runs.connection import connect, resolve_uri
from tracking.runs.errors import TrackingError
from tracking.runs.urls import has_password, scrub

__all__ = ["connect", "resolve_uri", "TrackingError", "has_password", "scrub"]
