"""The MLflow layout of a study, kept by the driver.

    experiment "gradstudy/<study>"
      └─ parent run "<study>"        tag gradstudy.role=study: search space, sampler, pruner, objectives,
         │                           git commit, resolved config (secrets masked), the study report
         ├─ child run "000 rnn tanh λ1₀=0.5"   tags gradstudy.role=trial, study/trial/state/health/cell, mlflow.runColor
         ├─ child run "001 rnn relu λ1₀=0.5"   (by health); params = the keys of the trial's resolved config
         └─ …                                 that apply to it (dotted); metrics, per-trial artifacts

The driver creates a trial's child run before the trial starts; the worker closes it when the trial
returns with everything delivered (tracking/runs/trial_recorder.py), the driver whatever the other ends (failed,
lost with its worker and re-queued, MLflow unreachable from the worker), so no trial is missing.
`gradstudy.state` ∈ completed, pruned, diverged, failed, requeued, running. MLflow run status:
FINISHED (completed, diverged), KILLED (pruned), FAILED (failed, requeued).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Optional

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag

from tracking.figures.colours import health_colour
from tracking.runs import names
from tracking.runs.connection import artifact_location
from tracking.runs.run_end import end_trial_run
from tracking.runs.trial_note import trial_note
from tracking.runs.trial_recorder import end_metrics, record_end
from tracking.runs.urls import scrub
from tracking.ui import links as ui_links
from tracking.ui import run_look
from tracking.ui import view as ui_view
from workers.key_use import applies


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


NOTE_LIMIT = 8000


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """A trial run's params: the keys of its resolved config that apply to it (workers/key_use.py; config.yaml
    keeps them all), dotted, as strings."""
    return {k: v for k, v in names.flatten(config).items() if applies(k, config)}


def experiment_name(study: str) -> str:
    return f"gradstudy/{study}"


class StudyRecorder:
    def __init__(self, client: MlflowClient, uri: str, data_dir: Path, study: str):
        self.client, self.uri, self.study = client, uri, study
        self.source_tags: dict[str, str] = {}   # mlflow.source.* of the parent, repeated on each trial
        self.study_link, self.objective = "", ""    # for the trials' descriptions: set by seed_view
        self.lengths: Optional[list] = None   # T's choices where the study samples it: runs coloured by T
        name = experiment_name(study)
        found = client.get_experiment_by_name(name)
        if found is None:
            self.experiment_id = client.create_experiment(
                name, artifact_location=artifact_location(uri, data_dir, study), tags={names.TAG_STUDY: study})
        else:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            self.experiment_id = found.experiment_id
        self.parent_id = self._parent()

    def _parent(self) -> str:
        runs = self.client.search_runs([self.experiment_id],
                                       filter_string=f"tags.`{names.TAG_ROLE}` = 'study'", max_results=1)
        if runs:
            return runs[0].info.run_id
        run = self.client.create_run(self.experiment_id, run_name=self.study,
                                     tags={names.TAG_ROLE: "study", names.TAG_STUDY: self.study})
        return run.info.run_id

    # --- the study ------------------------------------------------------------------------------------
    def log_study(self, params: dict[str, str], config_yaml: str, tags: dict[str, str]) -> None:
        existing = self.client.get_run(self.parent_id).data.params
        new = [Param(k, scrub(str(v))[:6000]) for k, v in params.items() if k not in existing]
        for batch in _chunks(new, 100):
            self.client.log_batch(self.parent_id, params=batch)
        for batch in _chunks([RunTag(k, scrub(str(v))) for k, v in tags.items()], 100):
            self.client.log_batch(self.parent_id, tags=batch)
        self.client.log_text(self.parent_id, scrub(config_yaml), "config.yaml")

    def set_source(self, tags: dict[str, str]) -> None:
        """`mlflow.source.*` (what ran the study, its git commit): on the parent now, on each trial run as
        it is created, so the runs table's Source and Version columns are filled."""
        self.source_tags = {k: scrub(str(v))[:5000] for k, v in tags.items()}
        self.client.log_batch(self.parent_id, tags=[RunTag(k, v) for k, v in self.source_tags.items()])

    def seed_view(self, objectives: list[tuple[str, str]], sampled: list[str], untrained: bool = False) -> str:
        """The study's runs page in the MLflow UI (tracking/ui/links.py, tracking/ui/view.py): the seeded
        view written where this MLflow version supports it; the page's query is kept on the experiment.
        `untrained`: a study measured at initialization (sorted by the decay rate, not its objective)."""
        seeded = ui_view.supported()
        if seeded:
            state = ui_view.view_state(objectives, sampled, untrained)
            view = ui_view.encode(f"study {self.study}", state)
            self.client.set_experiment_tag(self.experiment_id, ui_view.TAG, view)
        order = (ui_view.RATE, "maximize") if untrained else objectives[0]
        query = ui_links.trials_query(order[0], order[1], seeded)
        self.client.set_experiment_tag(self.experiment_id, ui_links.QUERY_TAG, query)
        self.study_link = ui_links.trials_path(self.experiment_id, query)
        self.objective = objectives[0][0].replace("/", ".")
        return query

    def set_note(self, markdown: str) -> None:
        """The parent run's description (MLflow 3.17 shows its first two lines on the run's page, the rest
        behind "Show more"): the study's summary; its head also as the experiment's description."""
        text = scrub(markdown)
        if len(text) > NOTE_LIMIT:   # MLflow keeps at most 8000 characters in a run tag
            text = text[:NOTE_LIMIT - 60].rsplit("\n", 1)[0] + "\n\n… (cut: the full summary is in report/report.html)"
        self.client.set_tag(self.parent_id, names.NOTE_TAG, text)
        # its first lines (counts + report, best trial, claims or health) as the experiment's description too:
        # MLflow 3.17 shows that above the runs table, where the trials link lands
        self.client.set_experiment_tag(self.experiment_id, names.NOTE_TAG, text.split("\n\n", 1)[0])

    def log_study_metrics(self, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.parent_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])

    def log_report(self, folder: Path) -> None:
        self.client.log_artifacts(self.parent_id, str(folder), "report")

    def end_study(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.parent_id, status)

    # --- trials ---------------------------------------------------------------------------------------
    def colour(self, config: Optional[dict[str, Any]]) -> Optional[str]:
        """The run colour of a trial where the study colours by T, else None (health colours)."""
        return run_look.length_colour(self.lengths, ((config or {}).get("task") or {}).get("seq_len"))

    def create_trial_run(self, number: int, config: dict[str, Any], sampled: Iterable[str] = (),
                         extra_tags: Optional[dict[str, str]] = None) -> Run:
        """The trial's child run, without its params (one request): named for what it is
        (tracking/ui/run_look.py), grey until its health is known."""
        tags = {names.PARENT: self.parent_id, names.TAG_ROLE: "trial", names.TAG_STUDY: self.study,
                names.TAG_TRIAL: str(number),
                names.TAG_STATE: "running", names.TAG_CELL: str(config["model"]["cell"]),
                run_look.COLOUR_TAG: self.colour(config) or health_colour(None), **self.source_tags,
                **(extra_tags or {})}
        return self.client.create_run(self.experiment_id, run_name=run_look.run_name(number, config, sampled),
                                      tags=tags)

    def start_trial(self, number: int, config: dict[str, Any], sampled: Iterable[str] = (),
                    extra_tags: Optional[dict[str, str]] = None) -> str:
        """The trial's child run with its params (`trial_params`); the driver's live path leaves the params to
        the worker (`create_trial_run`, tracking/runs/trial_recorder.py)."""
        run_id = self.create_trial_run(number, config, sampled, extra_tags).info.run_id
        params = [Param(k, v) for k, v in trial_params(config).items()]
        for batch in _chunks(params, 100):
            self.client.log_batch(run_id, params=batch)
        return run_id

    def finish_trial(self, run_id: str, state: str, health: Optional[str] = None,
                     reason: Optional[str] = None, span: Optional[int] = None,
                     summary: Optional[dict[str, Any]] = None, params: Optional[dict[str, str]] = None) -> None:
        """`summary`: the trial's, when it returned one (the run's description is written from it); `params`:
        the trial's params where the worker may not have logged them (sent with the closing tags)."""
        note = {names.NOTE_TAG: trial_note(summary, self.objective, self.study_link, self.study)} if summary else None
        end_trial_run(self.client, run_id, state, health, reason, note, span=span,
                      colour=self.colour(summary["config"]) if summary else None, params=params)

    def backfill(self, number: int, summary: dict[str, Any], history: list, state: str,
                 old_run_id: Optional[str] = None, sampled: Iterable[str] = ()) -> str:
        """Record a trial again from the files the driver kept (a fresh child run; the partial one is
        deleted)."""
        run_id = self.start_trial(number, summary["config"], sampled, {names.TAG_BACKFILLED: "true"})
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(s)) for k, v, s in history]
        if not history:   # no step history kept: at least the probes, the final figures and the profile
            for probe in summary.get("probes", []):
                metrics += [Metric(k, v, now, probe["step"]) for k, v in names.probe_metrics(probe)]
            metrics += [Metric(k, v, now, s) for k, v, s in end_metrics(summary)]
        for batch in _chunks(metrics, 1000):
            self.client.log_batch(run_id, metrics=batch)
        tags = record_end(self.client, run_id, summary)
        tags[names.NOTE_TAG] = trial_note(summary, self.objective, self.study_link, self.study)
        end_trial_run(self.client, run_id, state, summary.get("health"), summary.get("prune_reason"), tags,
                      span=summary.get("health_span"), colour=self.colour(summary["config"]))
        # the partial run, and any run of an earlier back-fill of this trial that was cut short
        stale = {r.info.run_id for r in self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{names.TAG_TRIAL}` = '{number}'", max_results=1000)}
        for old in (stale | ({old_run_id} if old_run_id else set())) - {run_id}:
            try:
                self.client.delete_run(old)
            except Exception:
                pass
        return run_id
