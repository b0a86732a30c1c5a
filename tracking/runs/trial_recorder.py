"""A `workers.reporter.Reporter` that records one trial in its MLflow child run, from the worker.

Step metrics and probe metrics go through a background BatchLogger (training does not wait on MLflow).
At the end: the final metrics and the last probe's profile as `profile/log10_grad_h` with step = t
(tracking/figures/profile_records.py), the task as the run's input dataset (tracking/runs/task_input.py), then the
artifacts (summary.json, config.yaml, the probe tables, the profile table `profiles.json`, and the
gradient profile and heatmap plots of a trial that trained `figures_min_s` or longer), then, when all of it
was delivered, the run is closed here with its description (tracking/runs/trial_note.py), state, health and
status (tracking/runs/run_end.py) rather than by the
driver, so that the driver's per-trial MLflow work stays small. Nothing here raises into the trial: if
MLflow is unreachable the trial still finishes, and `result` says what was not delivered so that the
driver keeps it for a back-fill (`gradstudy report NAME`). `history` holds every metric sent, for that back-fill.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

from mlflow import MlflowClient

from tracking.figures import profile_records, profile_svg
from tracking.runs import names
from tracking.runs.batch_logger import BatchLogger
from tracking.runs.connection import use_recording_http
from tracking.runs.run_end import end_trial_run
from tracking.runs.task_input import log_task_input
from tracking.runs.trial_note import trial_note
from workers.reporter import Reporter
from workers.summary import write_trial_folder


def write_artifacts(summary: dict[str, Any], folder: Path, figures: bool = True) -> Path:
    """The per-trial artifact files, written into `folder`; the PNG figures only with `figures`."""
    from tracking.figures import trial_plots as plots

    write_trial_folder(folder, summary)
    if summary.get("probes"):
        if figures:
            plots.gradient_profile(summary, folder / "gradient_profile.png")
            plots.gradient_heatmap(summary, folder / "gradient_heatmap.png")
        profile_svg.write_profile_svg(summary, folder / profile_svg.FILE, plots.describe(summary))
        plots.probe_table(summary, folder / "probes.csv")
        plots.probe_scalars(summary, folder / "probe_scalars.csv")
        profile_records.write_profile_table(summary, folder / profile_records.TABLE)
    return folder


def end_metrics(summary: dict[str, Any]) -> Iterator[tuple[str, float, int]]:
    """(name, value, step) that a trial's end adds: the final figures at its last step, then the last
    probe's profile by t."""
    for key, value in names.final_metrics(summary["final"]):
        yield key, value, summary["steps"]
    for t, value in profile_records.profile_points(summary):
        yield profile_records.METRIC, value, t


def record_end(client: MlflowClient, run_id: str, summary: dict[str, Any], figures: bool = True,
               with_input: bool = True) -> dict[str, str]:
    """The end of a trial's record in its run: the task as the run's input dataset (`with_input`), the
    artifact files; returns the tags that close the run with them (the table list MLflow reads)."""
    if with_input:
        log_task_input(client, run_id, summary["config"])
    with tempfile.TemporaryDirectory(prefix="gradstudy-artifacts-") as tmp:
        folder = write_artifacts(summary, Path(tmp), figures)
        client.log_artifacts(run_id, str(folder))
        if (folder / profile_records.TABLE).exists():
            return {profile_records.LOGGED_ARTIFACTS: profile_records.logged_tables_tag()}
    return {}


class TrialRecorder(Reporter):
    """An empty `run_id` (the driver could not create the run: MLflow down at launch) sends nothing and
    only keeps `history`, for the back-fill."""

    def __init__(self, tracking_uri: str, run_id: str, close_timeout_s: float = 30.0, figures_min_s: float = 0.0,
                 objective: str = "", study_link: str = "", study: str = "", colour: Optional[str] = None):
        use_recording_http()
        self.note = (objective, study_link, study)     # the run's description (tracking/runs/trial_note.py)
        self.colour = colour                           # None: the health's (tracking/ui/run_look.py)
        self.figures_min_s = figures_min_s
        self.client, self.run_id = (MlflowClient(tracking_uri=tracking_uri) if run_id else None), run_id
        self.close_timeout_s = close_timeout_s
        self.history: list[tuple[str, float, int]] = []
        self.logger = (BatchLogger(lambda batch: self.client.log_batch(run_id, metrics=batch, synchronous=True))
                       if run_id else None)
        self.result: dict[str, Any] = {"delivered": False, "artifacts": False, "undelivered": 0}

    def _add(self, key: str, value: float, step: int) -> None:
        self.history.append((key, value, step))
        if self.logger is not None:
            self.logger.add(key, value, step)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._add(key, float(value), step)

    def on_probe(self, probe: dict[str, Any]) -> None:
        for key, value in names.probe_metrics(probe):
            self._add(key, value, probe["step"])

    def on_end(self, summary: dict[str, Any]) -> None:
        for key, value, step in end_metrics(summary):
            self._add(key, value, step)
        if self.logger is None:
            return
        left = self.logger.close(self.close_timeout_s)
        self.result.update(delivered=not left, undelivered=len(left))
        try:
            figures = (summary["final"].get("wall_s") or 0.0) >= self.figures_min_s
            # the input only while MLflow answers: else its retries would only stall the worker
            tags = record_end(self.client, self.run_id, summary, figures, with_input=self.result["delivered"])
            tags[names.NOTE_TAG] = trial_note(summary, *self.note)
            self.result["artifacts"] = True
        except Exception as exc:  # MLflow gone: the driver back-fills from the files it keeps
            self.result["artifact_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            return
        if self.result["delivered"]:
            # everything is in: the run is closed here, in parallel with the other workers, not by the driver
            try:
                end_trial_run(self.client, self.run_id, summary["status"], summary.get("health"),
                              summary.get("prune_reason"), tags, span=summary.get("health_span"),
                              colour=self.colour)
                self.result["closed"] = True
            except Exception:   # the driver closes it (or marks the trial pending for the back-fill)
                pass

