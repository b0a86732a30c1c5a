"""MLflow tracking as a driver hook (study/driver/hooks.py): the parent run at the start, a child run per
trial, the runs closed as trials end, and at the end the back-fill (backfill.py) and the report
(publish.py).

MLflow is the record for analysis; the Optuna study stays the source of truth. So:
- MLflow unreachable when the hook is built → a TrackingError before any trial runs (exit 2).
- MLflow lost mid-study → the trials go on: none of these methods lets an MLflow failure stop the study.
  The worker's reporter keeps its metrics queued and retries; whatever is still undelivered when the trial
  ends is marked pending and back-filled later (backfill.py). No trial result is lost.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import optuna

from study.config.compose import Composed
from study.driver.hooks import StudyHook
from study.driver.progress import Outcome
from study.driver.trial_calls import trial_id
from study.recording.backfill import ATTR_RUN, ATTR_SYNC, backfill
from study.recording.publish import Publisher
from study.recording.tracked_study import TrackedStudy
from study.records.attrs import StudyAttr
from study.storage.trial_attrs import set_user_attrs
from tracking.runs import names
from tracking.runs.connection import check_answers
from tracking.ui.run_look import sampled_lengths


def safely(fn, *args) -> tuple[bool, Any]:
    """(True, its value) or (False, None) when it raised."""
    try:
        return True, fn(*args)
    except Exception:
        return False, None


class MlflowHook(StudyHook):
    """Records a study run in MLflow (`tracking.*`)."""

    RETRY_S = 60.0     # after an MLflow failure, per-trial calls are skipped this long (marked pending)

    def __init__(self, composed: Composed):
        tracking = composed.root.tracking
        self.composed = composed
        self.figures_min_s = tracking.trial_figures_min_s
        self.delivery_timeout_s = tracking.delivery_timeout_s
        self.keep_alive = tracking.keep_alive       # the workers' too (tracking/runs/fresh_connections.py)
        # TrackingError: before any trial
        self.tracked = TrackedStudy(tracking.uri, composed.root.study.name, tracking.keep_alive)
        self.recorder = None           # the parent run, opened by on_start under the study lock
        self.retry_at = 0.0            # set when a per-trial call fails (so > 0: MLflow failed during this run)
        # trial number → (its run id, its params) while it is in flight: no read of the trial back at its result,
        # and the params for closing its run from here
        self.in_flight: dict[int, tuple[Optional[str], dict[str, str]]] = {}

    def live(self, fn, *args) -> tuple[bool, Any]:
        """A per-trial MLflow call from the driver loop. Once one fails, the next ones are skipped
        for RETRY_S seconds instead of each waiting on timeouts: the trials go on, their records are
        pending, and the back-fill writes them later."""
        if time.monotonic() < self.retry_at:
            return False, None
        ok, value = safely(fn, *args)
        if not ok:
            self.retry_at = time.monotonic() + self.RETRY_S
        return ok, value

    def on_start(self, study: optuna.Study) -> None:
        search = study.user_attrs.get(StudyAttr.SEARCH, {})
        self.recorder = self.tracked.open(self.composed, search)
        root = self.composed.root
        objectives = [(names.metric_of_objective(o.metric), o.direction.value) for o in root.study.objectives]
        sampled = [k for k, spec in search.items() if not spec["fixed"]]
        untrained = root.train.steps == 0 and "train.steps" not in sampled    # measured at initialization
        safely(self.recorder.seed_view, objectives, sampled, untrained)
        safely(self.publisher().describe, study)

    def publisher(self) -> Publisher:
        return Publisher(self.recorder, self.tracked.uri)

    def on_launch(self, trial: optuna.Trial, config: dict[str, Any]) -> dict[str, Any]:
        """The trial's child run; the worker logs to it (the TrialJob's fields), its params with its first
        metrics (one request fewer here, in the driver's loop), its artifacts straight into the run's
        artifact location (no lookup of the run)."""
        from tracking.runs.study_runs import trial_params

        if self.recorder.lengths is None:
            self.recorder.lengths = sampled_lengths([trial])
        _, run = self.live(self.recorder.create_trial_run, trial.number, config, list(trial.params))
        run_id = run.info.run_id if run is not None else None
        params = trial_params(config)
        self.in_flight[trial.number] = (run_id, params)
        set_user_attrs(trial.storage, trial_id(trial),
                       {ATTR_RUN: run_id, ATTR_SYNC: "running" if run_id else "pending"})
        return {"tracking_uri": self.tracked.uri, "run_id": run_id or "", "figures_min_s": self.figures_min_s,
                "delivery_timeout_s": self.delivery_timeout_s, "study_link": self.recorder.study_link,
                "run_colour": self.recorder.colour(config) or "", "run_params": params,
                "artifact_uri": run.info.artifact_uri if run is not None else "", "keep_alive": self.keep_alive}

    def on_result(self, trial: optuna.Trial, summary: dict[str, Any], delivery: dict[str, Any]) -> dict[str, Any]:
        run_id, params = self.in_flight.pop(trial.number, (None, None))
        # the worker closed the run when everything reached MLflow; else the driver closes it here, with the
        # params in case the worker could not send them
        closed = bool(run_id) and (bool(delivery.get("closed")) or self.live(
            self.recorder.finish_trial, run_id, summary["status"], summary["health"], summary.get("prune_reason"),
            summary.get("health_span"), summary, params)[0])
        ok = closed and delivery.get("delivered") and delivery.get("artifacts")
        return {ATTR_SYNC: "synced" if ok else "pending"}        # written with the trial's record

    def on_lost(self, frozen: optuna.trial.FrozenTrial, state: str, reason: str) -> None:
        # a trial of this run, or one a lost driver left RUNNING (its run id on the trial, its params logged)
        run_id, params = self.in_flight.pop(frozen.number, (frozen.user_attrs.get(ATTR_RUN), None))
        if run_id:
            self.live(self.recorder.finish_trial, run_id, state, None, reason, None, None, params)

    def on_end(self, outcome: Outcome) -> Optional[int]:
        """End of a run: back-fill what MLflow missed, the nightly comparison (set by the nightly hook,
        which runs first), then the study report and counts on the parent. If MLflow failed during the run
        and does not answer now, only the report's files are written: each call would wait out its
        retries, and `gradstudy report` records everything once MLflow is back."""
        study, publisher = outcome.study, self.publisher()
        if self.retry_at and not safely(check_answers, self.tracked.client)[0]:
            safely(publisher.write_files, study)
            return None
        comparison = study.user_attrs.get(StudyAttr.NIGHTLY)
        if comparison:
            safely(publisher.log_comparison, comparison)
        safely(backfill, self.recorder, study)
        if not safely(publisher.publish, study)[0]:     # publish() logs the counts once the report is attached
            safely(publisher.log_counts, study)
        safely(self.recorder.end_study)
        return None


def tracking_hooks(composed: Composed) -> list[StudyHook]:
    """The MLflow hook of a study when `tracking.enabled` (built now: MLflow that does not answer is a
    TrackingError here, before anything runs), else none."""
    return [MlflowHook(composed)] if composed.root.tracking.enabled else []
