"""Trials that MLflow missed, recorded afterwards from the files the driver kept.

MLflow lost mid-study does not stop the trials: whatever a worker could not deliver is marked
`gradstudy.mlflow=pending` on the Optuna trial, and the driver keeps the trial's summary.json and history.json
in the data directory. At the end of the run (if MLflow is back) and on `gradstudy report NAME`, pending trials
are back-filled into fresh child runs. A finished Optuna trial cannot be changed (UpdateFinishedTrialError),
so a back-fill is recorded on the study: user attr `gradstudy.mlflow_backfill.<trial number>` = the run that now
holds the trial; `mlflow_record()` reads both.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import optuna

from study.records.attrs import StudyAttr, TrialAttr
from study.records.results import finished
from study.storage.paths import trial_dir
from tracking.ui.run_look import sampled_lengths

if TYPE_CHECKING:
    from tracking.runs.study_runs import StudyRecorder

ATTR_RUN, ATTR_SYNC, ATTR_BACKFILL = TrialAttr.MLFLOW_RUN, TrialAttr.MLFLOW_SYNC, StudyAttr.BACKFILL


def mlflow_record(study_attrs: dict[str, Any], trial) -> tuple[Optional[str], Optional[str]]:
    """(sync state, run id) of a trial's MLflow record: `synced` and the back-filled run once
    back-filled (`study_attrs` = the study's user attrs), else what the trial itself says."""
    key = f"{ATTR_BACKFILL}{trial.number}"
    if key in study_attrs:
        return "synced", study_attrs[key] or None
    return trial.user_attrs.get(ATTR_SYNC), trial.user_attrs.get(ATTR_RUN)


def run_ids(study: optuna.Study) -> dict[int, str]:
    """Trial number → the MLflow run that holds it."""
    attrs = study.user_attrs
    return {t.number: run for t in study.get_trials(deepcopy=False) if (run := mlflow_record(attrs, t)[1])}


def unrecorded(study: optuna.Study) -> list[tuple[Any, Path]]:
    """The finished trials whose MLflow record is incomplete, each with its summary.json (which the
    back-fill needs: a trial that failed before it ran has none)."""
    attrs = study.user_attrs
    return [(t, trial_dir(study.study_name, t.number) / "summary.json")
            for t in finished(study.get_trials(deepcopy=False)) if mlflow_record(attrs, t)[0] != "synced"]


def backfill(recorder: "StudyRecorder", study: optuna.Study) -> int:
    """Record every finished trial whose MLflow record is incomplete into the study's runs; returns how many."""
    count = 0
    attrs = study.user_attrs
    if recorder.lengths is None:
        recorder.lengths = sampled_lengths(study.get_trials(deepcopy=False))
    for t, summary_path in unrecorded(study):
        old = mlflow_record(attrs, t)[1]
        if not summary_path.exists():      # failed before it ran: its run is closed as failed
            if old:
                try:
                    recorder.finish_trial(old, "failed", None, t.user_attrs.get(TrialAttr.FAIL_REASON, "failed"))
                except Exception:
                    pass
                study.set_user_attr(f"{ATTR_BACKFILL}{t.number}", old)
            continue
        summary = json.loads(summary_path.read_text())
        history_path = summary_path.parent / "history.json"
        history = json.loads(history_path.read_text()) if history_path.exists() else []
        run_id = recorder.backfill(t.number, summary, history, summary["status"], old, list(t.params))
        study.set_user_attr(f"{ATTR_BACKFILL}{t.number}", run_id)
        count += 1
    return count
