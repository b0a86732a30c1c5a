"""The study report published where MLflow shows it: the report's files in the data directory, attached to the
parent run with the trial counts, the study's note (description) and its `best/*` metrics."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import optuna

from study.recording.backfill import run_ids
from study.records import results
from study.records.attrs import StudyAttr
from study.records.expectations import evaluate
from study.storage.paths import study_dir, trial_dir

if TYPE_CHECKING:
    from tracking.runs.study_runs import StudyRecorder


def read_summaries(study: optuna.Study) -> dict[int, dict]:
    """The summary.json of every finished trial that has one, by trial number."""
    summaries = {}
    for t in results.finished(study.get_trials(deepcopy=False)):
        path = trial_dir(study.study_name, t.number) / "summary.json"
        if path.exists():
            summaries[t.number] = json.loads(path.read_text())
    return summaries


class Publisher:
    """Writes a study's report and puts it, with the counts and the note, on the study's parent run."""

    def __init__(self, recorder: "StudyRecorder", uri: str):
        self.recorder, self.uri = recorder, uri

    def write_files(self, study: optuna.Study) -> tuple[Path, Path, dict[int, dict], list[dict], dict[int, str]]:
        """The study report's files in the data directory: (report.html, its folder, the summaries read,
        the evaluated expectations, the run ids)."""
        from study.report.page import RunLinks, write_study_report
        from tracking.ui.links import ui_address

        summaries = read_summaries(study)
        folder = study_dir(study.study_name) / "report"
        folder.mkdir(parents=True, exist_ok=True)
        runs = run_ids(study)
        checked = evaluate(study.get_trials(deepcopy=False), study.user_attrs.get(StudyAttr.EXPECT) or [], summaries)
        html = write_study_report(study, folder, summaries, study.user_attrs.get(StudyAttr.NIGHTLY),
                                  RunLinks(ui_address(self.uri), self.recorder.experiment_id, runs), checked)
        return html, folder, summaries, checked, runs

    def publish(self, study: optuna.Study) -> Path:
        """(Re)write the study report (PNGs + report.html) and attach it to the parent run with the
        counts; the parent run is ended if no trial is running or waiting (`gradstudy report` after
        MLflow was lost at the end of a run: the driver could not end it)."""
        html, folder, summaries, checked, runs = self.write_files(study)
        self.recorder.log_report(folder)
        self.log_counts(study)
        self.describe(study, summaries, checked, runs)
        if not any(t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
                   for t in study.get_trials(deepcopy=False)):
            self.recorder.end_study()
        return html

    def log_counts(self, study: optuna.Study) -> None:
        """Trial counts by state and health mix, as metrics of the parent run."""
        status = results.status(study)
        metrics = {f"study/{k.lower()}": v for k, v in status["states"].items()}
        metrics.update({f"study/health/{k}": v for k, v in status["health"].items()})
        self.recorder.log_study_metrics(metrics)

    def describe(self, study: optuna.Study, summaries: Optional[dict[int, dict]] = None,
                 checked: Optional[list[dict]] = None, runs: Optional[dict[int, str]] = None) -> None:
        """The parent run's description (study/report/study_note.py) and its `best/*` metrics; what the report
        already gathered (summaries, evaluated expectations, run ids) is not gathered again."""
        from study.report.study_note import best_metrics, ranked_best, study_note
        from tracking.ui.run_look import run_name

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
        runs = run_ids(study) if runs is None else runs
        self.recorder.set_note(study_note(study, self.recorder.experiment_id, runs, names_by_number, checked,
                                          parent_id=self.recorder.parent_id, summaries=summaries))
        metrics = best_metrics(study, trials)
        if metrics:
            self.recorder.log_study_metrics(metrics)

    def log_comparison(self, comparison: dict[str, Any]) -> None:
        """The nightly comparison on the parent run: an artifact and a few metrics."""
        self.recorder.client.log_dict(self.recorder.parent_id, comparison, "nightly/comparison.json")
        self.recorder.log_study_metrics({
            "nightly/regressed": float(comparison["regressed"]),
            "nightly/regressions": float(len(comparison["regressions"])),
            "nightly/failures": float(comparison["failures"]["current"]),
            "nightly/diverged_fraction": float(comparison["diverged_fraction"]["current"])})
