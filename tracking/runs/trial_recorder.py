"""A `workers.reporter.Reporter` that records one trial in its MLflow child run, from the worker.

Step metrics and probe metrics go through a background BatchLogger (training does not wait on MLflow); the
trial's params, where the driver left them to the worker, go with its first batch. At the end: the artifact
files are written (summary.json, config.yaml, the probe tables, the profile table `profiles.json`, and the
gradient profile and heatmap plots of a trial that trained `figures_min_s` or longer), then the final metrics
and the last probe's profile as `profile/log10_grad_h` with step = t (tracking/figures/profile_records.py) go
out with the tags that close the run — its description (tracking/runs/trial_note.py), state, health
(tracking/runs/run_end.py) — in the logger's last batch; then the task as the run's input dataset
(tracking/runs/task_input.py), the artifact files, and, when all of it was delivered, the run's status: the run
is closed here rather than by the driver, so that the driver's per-trial MLflow work stays small. Nothing here
raises into the trial: if MLflow is unreachable the trial still finishes, and `result` says what was not
delivered so that the driver closes the run and keeps the trial for a back-fill (`gradstudy report NAME`).
`history` holds every metric sent, for that back-fill.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

from mlflow import MlflowClient
from mlflow.entities import Param

from tracking.figures import profile_records, profile_svg
from tracking.runs import names
from tracking.runs.batch_logger import BatchLogger
from tracking.runs.connection import use_recording_http
from tracking.runs.fresh_connections import close_connections
from tracking.runs.run_end import STATUS, closing_tags
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


def logged_tables(folder: Path) -> dict[str, str]:
    """The tag that lists the tables among a trial's artifact files (MLflow's `mlflow.loggedArtifacts`), if any."""
    if (folder / profile_records.TABLE).exists():
        return {profile_records.LOGGED_ARTIFACTS: profile_records.logged_tables_tag()}
    return {}


def record_end(client: MlflowClient, run_id: str, summary: dict[str, Any], figures: bool = True,
               with_input: bool = True) -> dict[str, str]:
    """The end of a trial's record in its run: the task as the run's input dataset (`with_input`), the
    artifact files; returns the tags that close the run with them (the table list MLflow reads)."""
    if with_input:
        log_task_input(client, run_id, summary["config"])
    with tempfile.TemporaryDirectory(prefix="gradstudy-artifacts-") as tmp:
        folder = write_artifacts(summary, Path(tmp), figures)
        client.log_artifacts(run_id, str(folder))
        return logged_tables(folder)


FIRST_SEND_S = 5.0     # a trial's first metric batch goes out after this long, or at its end if it is shorter


class TrialRecorder(Reporter):
    """An empty `run_id` (the driver could not create the run: MLflow down at launch) sends nothing and
    only keeps `history`, for the back-fill.

    Requests to MLflow per trial (docs/mlflow.md, "Requests per trial"): `params` (the trial's, where the
    driver left them to the worker) go with the first metric batch and the closing tags with the last, so a
    short trial sends one log-batch; then the input dataset (one log-inputs), the artifact files (one upload
    each: MLflow's proxied artifacts take a file per request, into `artifact_uri` — given by the driver, it
    spares the run lookup MLflow's client makes before an upload) and the status (one runs/update)."""

    def __init__(self, tracking_uri: str, run_id: str, close_timeout_s: float = 30.0, figures_min_s: float = 0.0,
                 objective: str = "", study_link: str = "", study: str = "", colour: Optional[str] = None,
                 params: Optional[dict[str, str]] = None, artifact_uri: str = "", keep_alive: bool = False):
        use_recording_http()
        close_connections(not keep_alive)              # tracking/runs/fresh_connections.py
        self.note = (objective, study_link, study)     # the run's description (tracking/runs/trial_note.py)
        self.colour = colour                           # None: the health's (tracking/ui/run_look.py)
        self.figures_min_s = figures_min_s
        self.tracking_uri, self.artifact_uri = tracking_uri, artifact_uri
        self.client, self.run_id = (MlflowClient(tracking_uri=tracking_uri) if run_id else None), run_id
        self.close_timeout_s = close_timeout_s
        self.history: list[tuple[str, float, int]] = []
        first = [Param(k, v) for k, v in (params or {}).items()]

        def send(batch, **more) -> None:      # `more`: the params and tags that go with a batch
            self.client.log_batch(run_id, metrics=batch, synchronous=True, **more)

        self.logger = BatchLogger(send, params=first, first_s=FIRST_SEND_S) if run_id else None
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

    def _upload(self, folder: Path, summary: dict[str, Any], with_input: bool) -> None:
        """The input dataset (`with_input`) and the artifact files, one request each, sent at once from a few
        threads (the worker waits for the slowest rather than for their sum). Into a local store, or without the
        driver's `artifact_uri`, one after another in this thread: a local store's files in one copy of the
        folder (threads would only add their start, ~10 ms of CPU a trial), else through the client (which looks
        the run up first)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        if not self.artifact_uri or self.artifact_uri.startswith(("file:", "/")):
            if with_input:
                log_task_input(self.client, self.run_id, summary["config"])
            if self.artifact_uri:
                get_artifact_repository(self.artifact_uri).log_artifacts(str(folder))
            else:
                self.client.log_artifacts(self.run_id, str(folder))
            return
        from concurrent.futures import ThreadPoolExecutor

        repo = get_artifact_repository(self.artifact_uri, tracking_uri=self.tracking_uri)
        files = sorted(p for p in folder.rglob("*") if p.is_file())

        def upload(path: Path) -> None:
            where = path.parent.relative_to(folder).as_posix()
            repo.log_artifact(str(path), None if where == "." else where)

        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="mlflow-artifacts") as pool:
            done = [pool.submit(upload, path) for path in files]
            if with_input:
                done.append(pool.submit(log_task_input, self.client, self.run_id, summary["config"]))
            for future in done:
                future.result()          # the first failure raises

    def on_end(self, summary: dict[str, Any]) -> None:
        for key, value, step in end_metrics(summary):
            self._add(key, value, step)
        if self.logger is None:
            return
        with tempfile.TemporaryDirectory(prefix="gradstudy-artifacts-") as tmp:
            try:
                figures = (summary["final"].get("wall_s") or 0.0) >= self.figures_min_s
                folder = write_artifacts(summary, Path(tmp), figures)
                tags = {**logged_tables(folder), names.NOTE_TAG: trial_note(summary, *self.note)}
                closing = closing_tags(summary["status"], summary.get("health"), summary.get("prune_reason"), tags,
                                       span=summary.get("health_span"), colour=self.colour)
            except Exception as exc:  # the files could not be written: the run stays open, the driver closes it
                left = self.logger.close(self.close_timeout_s)
                self.result.update(delivered=not self.logger.unsent, undelivered=len(left),
                                   artifact_error=f"{type(exc).__name__}: {str(exc)[:300]}")
                return
            # the last metrics with the closing tags (and the params if no batch went out before): one request
            left = self.logger.close(self.close_timeout_s, tags=closing)
            self.result.update(delivered=not self.logger.unsent, undelivered=len(left))
            try:
                # the input only while MLflow answers: else its retries would only stall the worker
                self._upload(folder, summary, with_input=self.result["delivered"])
                self.result["artifacts"] = True
            except Exception as exc:  # MLflow gone: the driver back-fills from the files it keeps
                self.result["artifact_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                return
        if self.result["delivered"]:
            # everything is in: the run is closed here, in parallel with the other workers, not by the driver
            try:
                self.client.set_terminated(self.run_id, STATUS.get(summary["status"], "FAILED"))
                self.result["closed"] = True
            except Exception:   # the driver closes it (or marks the trial pending for the back-fill)
                pass
