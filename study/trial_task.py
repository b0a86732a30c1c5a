"""What runs on a Ray worker for one Optuna trial: the trial engine with the study's reporters.

Kept free of Ray itself (study/placement.py wraps it as a remote task) so it can be called in-process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from study.optuna_reporter import OptunaReporter
from workers.config import TrialConfig
from workers.trial import run_trial


@dataclass
class TrialJob:
    storage_url: str
    study_name: str
    trial_id: int
    number: int
    config: TrialConfig
    metric: str            # the first objective's metric: picks the intermediate value for pruning
    prune: bool
    threads: int = 1       # intra-op threads: the CPUs the trial was given, so trials do not oversubscribe


def execute(job: TrialJob) -> dict[str, Any]:
    torch.set_num_threads(job.threads)
    reporter = OptunaReporter(job.storage_url, job.study_name, job.trial_id, job.metric, job.prune)
    return run_trial(job.config, reporter)
