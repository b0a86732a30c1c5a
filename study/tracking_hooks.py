"""Wires a study to MLflow (tracking/): the driver's hooks (study/hooks.py) through which MLflow hears of it.

MLflow is the record for analysis; the Optuna study stays the source of truth. So:
- MLflow unreachable at start → a TrackingError before any trial runs (exit 2).
- MLflow lost mid-study → the trials go on. The worker's reporter keeps its metrics queued and
  retries; whatever is still undelivered when the trial ends is marked `gradstudy.mlflow=pending` on
  the Optuna trial, and the driver keeps the trial's summary.json and history.json in the data directory.
  At the end of the run (if MLflow is back) and on `gradstudy report NAME`, pending trials are
  back-filled into fresh child runs. No trial result is lost.
- A finished Optuna trial cannot be changed (UpdateFinishedTrialError), so a back-fill is recorded on
  the study: user attr `gradstudy.mlflow_backfill.<trial number>` = the run that now holds the trial;
  `mlflow_record()` reads both.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import optuna

from study.hooks import StudyHooks
from study.paths import data_dir, study_dir, trial_dir
from study.results import finished
from tracking import names
from tracking.attrs import StudyAttr, TrialAttr, describe_search
from tracking.errors import TrackingError
from tracking.run_look import sampled_lengths
from tracking.store import check_answers, connect, resolve_uri, use_recording_http
from tracking.urls import scrub

if TYPE_CHECKING:   # MLflow is imported only when a study is tracked
    from tracking.runs import StudyRecorder

ATTR_RUN, ATTR_SYNC, ATTR_BACKFILL = TrialAttr.MLFLOW_RUN, TrialAttr.MLFLOW_SYNC, StudyAttr.BACKFILL


def mlflow_record(study_attrs: dict[str, Any], trial) -> tuple[Optional[str], Optional[str]]:
    """(sync state, run id) of a trial's MLflow record: `synced` and the back-filled run once
    back-filled (`study_attrs` = the study's user attrs), else what the trial itself says."""
    key = f"{ATTR_BACKFILL}{trial.number}"
    if key in study_attrs:
        return "synced", study_attrs[key] or None
    return trial.user_attrs.get(ATTR_SYNC), trial.user_attrs.get(ATTR_RUN)


def unrecorded(study: optuna.Study) -> list[tuple[Any, Path]]:
    """The finished trials whose MLflow record is incomplete, each with its summary.json (which the
    back-fill needs: a trial that failed before it ran has none)."""
    attrs = study.user_attrs
    return [(t, trial_dir(study.study_name, t.number) / "summary.json")
            for t in finished(study.get_trials(deepcopy=False)) if mlflow_record(attrs, t)[0] != "synced"]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class StudyTracking(StudyHooks):
    """None of these methods lets an MLflow failure stop the study once it has started."""

    def __init__(self, uri: str, study_name: str, figures_min_s: float = 0.0, delivery_timeout_s: float = 30.0):
        use_recording_http()
        self.figures_min_s = figures_min_s
        self.delivery_timeout_s = delivery_timeout_s
        self.data_dir = data_dir()
        self.client = connect(uri, self.data_dir)          # raises TrackingError: before any trial
        self.uri = resolve_uri(uri, self.data_dir)
        self.recorder: Optional["StudyRecorder"] = None        # made by start(), under the study lock
        self._retry_at = 0.0       # set when a per-trial call fails (so > 0: MLflow failed during this run)

    RETRY_S = 60.0     # after an MLflow failure, per-trial calls are skipped this long (marked pending)

    @staticmethod
    def safely(fn, *args) -> tuple[bool, Any]:
        try:
            return True, fn(*args)
        except Exception:
            return False, None

    def _live(self, fn, *args) -> tuple[bool, Any]:
        """A per-trial MLflow call from the driver loop. Once one fails, the next ones are skipped
        for RETRY_S seconds instead of each waiting on timeouts: the trials go on, their records are
        pending, and the back-fill writes them later."""
        if time.monotonic() < self._retry_at:
            return False, None
        ok, value = self.safely(fn, *args)
        if not ok:
            self._retry_at = time.monotonic() + self.RETRY_S
        return ok, value

    # --- the driver's hooks -------------------------------------------------------------------------
    def start(self, runner, study: optuna.Study) -> None:
        self.open_parent(runner.composed, runner.space.structured())
        root = runner.composed.root
        objectives = [(names.metric_of_objective(o.metric), o.direction.value) for o in root.study.objectives]
        sampled = [k for k, spec in runner.space.structured().items() if not spec["fixed"]]
        untrained = root.train.steps == 0 and "train.steps" not in sampled    # measured at initialization
        self.safely(self.recorder.seed_view, objectives, sampled, untrained)
        self.safely(self.describe, study)

    def launch(self, trial: optuna.Trial, config: dict[str, Any]) -> dict[str, Any]:
        """The trial's child run; the worker logs to it (the TrialJob's fields)."""
        if self.recorder.lengths is None:
            self.recorder.lengths = sampled_lengths([trial])
        _, run_id = self._live(self.recorder.start_trial, trial.number, config, list(trial.params))
        trial.set_user_attr(ATTR_RUN, run_id)
        trial.set_user_attr(ATTR_SYNC, "running" if run_id else "pending")
        return {"tracking_uri": self.uri, "run_id": run_id or "", "figures_min_s": self.figures_min_s,
                "delivery_timeout_s": self.delivery_timeout_s, "study_link": self.recorder.study_link,
                "run_colour": self.recorder.colour(config) or ""}

    def result(self, trial: optuna.Trial, summary: dict[str, Any], delivery: dict[str, Any]) -> None:
        run_id = trial.user_attrs.get(ATTR_RUN)
        # the worker closed the run when everything reached MLflow; else the driver closes it here
        closed = bool(run_id) and (bool(delivery.get("closed")) or self._live(
            self.recorder.finish_trial, run_id, summary["status"], summary["health"], summary.get("prune_reason"),
            summary.get("health_span"), summary)[0])
        ok = closed and delivery.get("delivered") and delivery.get("artifacts")
        trial.set_user_attr(ATTR_SYNC, "synced" if ok else "pending")

    def lost(self, frozen: optuna.trial.FrozenTrial, state: str, reason: str) -> None:
        run_id = frozen.user_attrs.get(ATTR_RUN)
        if run_id:
            self._live(self.recorder.finish_trial, run_id, state, None, reason)

    def end(self, runner, outcome) -> None:
        """End of a run: back-fill what MLflow missed, the nightly comparison (set by the nightly hook,
        which runs first), then the study report and counts on the parent. If MLflow failed during the run
        and does not answer now, only the report's files are written: each call would wait out its
        retries, and `gradstudy report` records everything once MLflow is back."""
        if self._retry_at and not self.safely(check_answers, self.client)[0]:
            self.safely(self.write_report, outcome.study)
            return
        comparison = outcome.study.user_attrs.get(StudyAttr.NIGHTLY)
        if comparison:
            self.log_comparison(comparison)
        self.finish(outcome.study)

    # --- the parent run ------------------------------------------------------------------------------
    def open_parent(self, composed, search: dict[str, dict]) -> None:
        """The parent run of the study; `search` is the structured search space (StudyAttr.SEARCH)."""
        from tracking.runs import StudyRecorder

        self.recorder = StudyRecorder(self.client, self.uri, self.data_dir, composed.root.study.name)
        root = composed.root
        params = {"study.sampler": root.study.sampler.value, "study.seed": root.study.seed,
                  "study.pruner": root.study.pruner.value, "study.n_trials": root.study.n_trials,
                  "study.objectives": ", ".join(f"{o.metric} ({o.direction.value})" for o in root.study.objectives),
                  **{f"search.{k}": v for k, v in describe_search(search).items()}}
        self.recorder.log_study(params, composed.yaml, {names.TAG_OVERRIDES: " ".join(composed.overrides)})
        self.recorder.set_source({"mlflow.source.type": "LOCAL",
                                  "mlflow.source.name": scrub(" ".join(["gradstudy run", *composed.overrides]))[:250],
                                  "mlflow.source.git.commit": git_commit()})

    def finish(self, study: optuna.Study) -> None:
        """Back-fill what MLflow missed, then the study report and counts on the parent."""
        self.safely(self.backfill, study)
        reported, _ = self.safely(self.report, study)
        if not reported:                 # report() logs the counts once the report is attached
            self.safely(self.log_counts, study)
        self.safely(self.recorder.end_study)

    def log_counts(self, study: optuna.Study) -> None:
        """Trial counts by state and health mix, as metrics of the parent run."""
        from study import results

        status = results.status(study)
        metrics = {f"study/{k.lower()}": v for k, v in status["states"].items()}
        metrics.update({f"study/health/{k}": v for k, v in status["health"].items()})
        self.recorder.log_study_metrics(metrics)

    def report(self, study: optuna.Study) -> Path:
        """(Re)write the study report (PNGs + report.html) and attach it to the parent run with the
        counts; the parent run is ended if no trial is running or waiting (`gradstudy report` after
        MLflow was lost at the end of a run: the driver could not end it)."""
        html, folder, summaries, checked, run_ids = self.write_report(study)
        self.recorder.log_report(folder)
        self.log_counts(study)
        self.describe(study, summaries, checked, run_ids)
        if not any(t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
                   for t in study.get_trials(deepcopy=False)):
            self.recorder.end_study()
        return html

    def write_report(self, study: optuna.Study) -> tuple[Path, Path, dict[int, dict], list[dict], dict[int, str]]:
        """The study report's files in the data directory: (report.html, its folder, the summaries read,
        the evaluated expectations, the run ids)."""
        from tracking.expectations import evaluate
        from tracking.report import RunLinks, write_study_report
        from tracking.ui_links import ui_address

        summaries = {}
        for t in finished(study.get_trials(deepcopy=False)):
            path = trial_dir(study.study_name, t.number) / "summary.json"
            if path.exists():
                summaries[t.number] = json.loads(path.read_text())
        folder = study_dir(study.study_name) / "report"
        folder.mkdir(parents=True, exist_ok=True)
        run_ids = self.run_ids(study)
        checked = evaluate(study.get_trials(deepcopy=False), study.user_attrs.get(StudyAttr.EXPECT) or [], summaries)
        html = write_study_report(study, folder, summaries, study.user_attrs.get(StudyAttr.NIGHTLY),
                                  RunLinks(ui_address(self.uri), self.recorder.experiment_id, run_ids), checked)
        return html, folder, summaries, checked, run_ids

    def run_ids(self, study: optuna.Study) -> dict[int, str]:
        """Trial number → the MLflow run that holds it."""
        attrs = study.user_attrs
        return {t.number: run for t in study.get_trials(deepcopy=False) if (run := mlflow_record(attrs, t)[1])}

    def describe(self, study: optuna.Study, summaries: Optional[dict[int, dict]] = None,
                 checked: Optional[list[dict]] = None, run_ids: Optional[dict[int, str]] = None) -> None:
        """The parent run's description (tracking/study_note.py) and its `best/*` metrics; what the report
        already gathered (summaries, evaluated expectations, run ids) is not gathered again."""
        from tracking.expectations import evaluate
        from tracking.run_look import run_name
        from tracking.study_note import best_metrics, ranked_best, study_note

        trials = study.get_trials(deepcopy=False)
        names_by_number = {}
        best, _ = ranked_best(study, trials, summaries)
        if best is not None:
            summary = (summaries or {}).get(best.number)
            if summary is None:
                path = trial_dir(study.study_name, best.number) / "summary.json"
                summary = json.loads(path.read_text()) if path.exists() else None
            if summary:
                names_by_number[best.number] = run_name(best.number, summary["config"], list(best.params))
        if checked is None:
            checked = evaluate(trials, study.user_attrs.get(StudyAttr.EXPECT) or [], summaries)
        run_ids = self.run_ids(study) if run_ids is None else run_ids
        self.recorder.set_note(study_note(study, self.recorder.experiment_id, run_ids, names_by_number, checked,
                                          parent_id=self.recorder.parent_id, summaries=summaries))
        metrics = best_metrics(study, trials)
        if metrics:
            self.recorder.log_study_metrics(metrics)

    def log_comparison(self, comparison: dict[str, Any]) -> None:
        """The nightly comparison on the parent run: an artifact and a few metrics."""
        self.safely(self.recorder.client.log_dict, self.recorder.parent_id, comparison,
                     "nightly/comparison.json")
        self.safely(self.recorder.log_study_metrics, {
            "nightly/regressed": float(comparison["regressed"]),
            "nightly/regressions": float(len(comparison["regressions"])),
            "nightly/failures": float(comparison["failures"]["current"]),
            "nightly/diverged_fraction": float(comparison["diverged_fraction"]["current"])})

    def backfill(self, study: optuna.Study) -> int:
        """Record every finished trial whose MLflow record is incomplete; returns how many."""
        count = 0
        attrs = study.user_attrs
        if self.recorder.lengths is None:
            self.recorder.lengths = sampled_lengths(study.get_trials(deepcopy=False))
        for t, summary_path in unrecorded(study):
            old = mlflow_record(attrs, t)[1]
            folder = summary_path.parent
            if not summary_path.exists():
                if old:
                    self.safely(self.recorder.finish_trial, old, "failed", None,
                                 t.user_attrs.get(TrialAttr.FAIL_REASON, "failed"))
                    study.set_user_attr(f"{ATTR_BACKFILL}{t.number}", old)
                continue
            summary = json.loads(summary_path.read_text())
            history_path = folder / "history.json"
            history = json.loads(history_path.read_text()) if history_path.exists() else []
            run_id = self.recorder.backfill(t.number, summary, history, summary["status"], old, list(t.params))
            study.set_user_attr(f"{ATTR_BACKFILL}{t.number}", run_id)
            count += 1
        return count


__all__ = ["StudyTracking", "TrackingError", "ATTR_RUN", "ATTR_SYNC", "ATTR_BACKFILL", "mlflow_record", "unrecorded"]
