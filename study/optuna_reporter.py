"""A `workers.reporter.Reporter` that feeds Optuna from inside a running trial.

At every probe it reports the validation score as the trial's intermediate value at that training step
and answers `should_stop` with the study's pruner. It talks to the Optuna storage directly (the journal
file locally, the database on a cluster), so pruning works wherever Ray placed the trial.
"""
from __future__ import annotations

import math
import os
import socket
from typing import Any, Optional

import optuna

from study.storage import open_storage
from tracking.attrs import TrialAttr
from workers.reporter import Reporter

INTERMEDIATE = {"final.accuracy": "val_accuracy"}   # every other objective is tracked by val_loss


def intermediate_key(metric: str) -> str:
    return INTERMEDIATE.get(metric, "val_loss")


class OptunaReporter(Reporter):
    def __init__(self, storage_url: str, study_name: str, trial_id: int, metric: str, prune: bool,
                 pruner: Optional[optuna.pruners.BasePruner] = None):
        self.storage = open_storage(storage_url)
        # The pruner is not kept in the storage: without it load_study gives Optuna's default
        # MedianPruner (5 startup trials), not the study's.
        self.study = optuna.load_study(study_name=study_name, storage=self.storage,
                                       pruner=pruner if pruner is not None else optuna.pruners.NopPruner())
        self.trial = optuna.Trial(self.study, trial_id)
        self.key, self.prune = intermediate_key(metric), prune
        self.single_objective = len(self.study.directions) == 1   # Optuna: no report() with several
        self.last_step = None

    def on_start(self, info: dict[str, Any]) -> None:
        self.trial.set_user_attr(TrialAttr.WORKER, {"pid": os.getpid(), "host": socket.gethostname(),
                                                     "device": info["device"]})

    def on_probe(self, probe: dict[str, Any]) -> None:
        value = probe.get(self.key)
        if self.single_objective and value is not None and math.isfinite(value):
            self.trial.report(value, probe["step"])
            self.last_step = probe["step"]

    def should_stop(self, step: int) -> bool:
        return self.prune and self.last_step == step and self.trial.should_prune()
