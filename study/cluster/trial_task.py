"""What runs on a Ray worker for one Optuna trial: the trial engine with the study's reporters.

Kept free of Ray itself (study/cluster/placement.py wraps it as a remote task) so it can be called in-process.
The driver imports this module for `TrialJob` only: PyTorch and the trial engine are imported by
`execute`, on the worker, so the driver never loads torch (measured: about a second of CPU and
180 MB of memory less per `gradstudy run`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import optuna

from study.cluster.optuna_feed import OptunaFeed
from workers.config import Cell, TrialConfig
from workers.gradients.health_stop import HealthStop
from workers.reporter import FanOut


@dataclass
class TrialJob:
    storage_url: str
    study_name: str
    trial_id: int
    number: int
    config: TrialConfig
    metric: str            # the first objective's metric: picks the intermediate value for pruning
    prune: bool
    pruner: Optional[optuna.pruners.BasePruner] = None   # the study's pruner (load_study has no memory of it)
    threads: int = 1       # intra-op threads: the CPUs the trial was given, so trials do not oversubscribe
    tracking_uri: str = ""  # MLflow store and the trial's child run; empty run_id = no MLflow
    run_id: str = ""
    figures_min_s: float = 0.0   # the per-trial figures for trials that trained at least this long
    delivery_timeout_s: float = 30.0   # how long the worker waits for its queued metrics at the end
    study_link: str = ""         # the study's trials in the MLflow UI (relative), for the run's description
    run_colour: str = ""         # the run's colour when the study colours by T ("": the health's)
    run_params: Optional[dict[str, str]] = None   # the run's params, logged by the worker (None: logged already)
    artifact_uri: str = ""       # the run's artifact location ("": the worker's client looks the run up)
    keep_alive: bool = False     # tracking.keep_alive: false = a new connection per MLflow request
    storage_retry_s: float = 600.0   # how long the reporter's last writes wait out a storage outage
    # > 0: the gradient-health pruning rule (workers/gradients/health_stop.py) with this patience
    health_patience: int = 0
    health_warmup_steps: int = 0


def execute(job: TrialJob, node: str = "") -> dict[str, Any]:
    """{"summary": the trial's summary, "tracking": what reached MLflow, "history": metrics sent}.
    `node`: the id of the Ray node it runs on ("" in-process), kept with the worker's pid and host."""
    import torch

    from workers.trial import run_trial

    torch.set_num_threads(job.threads)
    reporters: list = [OptunaFeed(job.storage_url, job.study_name, job.trial_id, job.metric, job.prune,
                                      job.pruner, job.storage_retry_s, node=node)]
    if job.health_patience:
        reporters.append(HealthStop(job.health_patience, job.health_warmup_steps,
                                    fading_is_design=job.config.model.cell == Cell.esn))
    mlflow_reporter = None
    if job.tracking_uri:   # without a run_id (MLflow down at launch) it only keeps the history for the back-fill
        from tracking.runs.trial_recorder import TrialRecorder

        mlflow_reporter = TrialRecorder(job.tracking_uri, job.run_id, job.delivery_timeout_s,
                                         figures_min_s=job.figures_min_s, objective=job.metric,
                                         study_link=job.study_link, study=job.study_name,
                                         colour=job.run_colour or None, params=job.run_params,
                                         artifact_uri=job.artifact_uri, keep_alive=job.keep_alive)
        reporters.append(mlflow_reporter)
    try:
        summary = run_trial(job.config, FanOut(*reporters))
    except BaseException:
        if mlflow_reporter is not None and mlflow_reporter.logger is not None:
            mlflow_reporter.logger.close(0)      # stop its thread: this worker process lives on
        raise
    if mlflow_reporter is None:
        return {"summary": summary, "tracking": {"delivered": not job.run_id, "artifacts": not job.run_id},
                "history": []}
    return {"summary": summary, "tracking": mlflow_reporter.result, "history": mlflow_reporter.history}
