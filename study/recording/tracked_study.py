"""A study's MLflow record opened: the connection to the store and the study's parent run.

Shared by the driver hook (hook.py) and the services the CLI calls (backfill.py, publish.py). Opening it
checks that MLflow answers: a TrackingError before any trial runs (exit 2).
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study.config.compose import Composed
from study.records.attrs import describe_search
from study.storage.paths import data_dir
from tracking.runs import names
from tracking.runs.connection import connect, resolve_uri, use_recording_http
from tracking.runs.urls import scrub

if TYPE_CHECKING:   # MLflow is imported only when a study is tracked
    from tracking.runs.study_runs import StudyRecorder


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class TrackedStudy:
    """The MLflow store of a study (`tracking.uri`, or the local store) and, once `open()`ed, its parent run."""

    def __init__(self, uri: str, study_name: str, keep_alive: bool = False):
        use_recording_http()
        self.study_name = study_name
        self.data_dir = data_dir()
        self.client = connect(uri, self.data_dir, keep_alive)   # raises TrackingError: before any trial
        self.uri = resolve_uri(uri, self.data_dir)
        self.recorder: "StudyRecorder | None" = None

    def open(self, composed: Composed, search: dict[str, dict]) -> "StudyRecorder":
        """The parent run of the study, with its params, config and source; `search` is the structured
        search space (StudyAttr.SEARCH)."""
        from tracking.runs.study_runs import StudyRecorder

        self.recorder = StudyRecorder(self.client, self.uri, self.data_dir, self.study_name)
        root = composed.root
        params: dict[str, Any] = {
            "study.sampler": root.study.sampler.value, "study.seed": root.study.seed,
            "study.pruner": root.study.pruner.value, "study.n_trials": root.study.n_trials,
            "study.objectives": ", ".join(f"{o.metric} ({o.direction.value})" for o in root.study.objectives),
            **{f"search.{k}": v for k, v in describe_search(search).items()}}
        self.recorder.log_study(params, composed.yaml, {names.TAG_OVERRIDES: " ".join(composed.overrides)})
        self.recorder.set_source({"mlflow.source.type": "LOCAL",
                                  "mlflow.source.name": scrub(" ".join(["gradstudy run", *composed.overrides]))[:250],
                                  "mlflow.source.git.commit": git_commit()})
        return self.recorder
