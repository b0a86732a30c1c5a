"""A `workers.reporter.Reporter` that feeds Optuna from inside a running trial.

At every probe it reports the validation score as the trial's intermediate value at that training step
and answers `should_stop` with the study's pruner. It talks to the Optuna storage directly (the journal
file locally, the database on a cluster), so pruning works wherever Ray placed the trial.

A storage outage never stops training: values and attributes are kept in order and written at the next
probe that finds the storage back (each probe tries once, without waiting); no pruning decision is made
while anything is unwritten; at the end the rest is written, waiting out an outage of up to
`study.storage_retry_s`. Intermediate values serve pruning only, so one that still cannot be written then is
dropped with a warning: the trial's result goes back to the driver through Ray either way.
"""
from __future__ import annotations

import math
import os
import socket
import sys
from contextlib import nullcontext
from typing import Any, Optional

import optuna

from study.records.attrs import TrialAttr
from study.storage.backend import open_storage
from study.storage.retry import StorageUnavailable
from workers.reporter import Reporter

INTERMEDIATE = {"final.accuracy": "val_accuracy"}   # every other objective is tracked by val_loss


_STORAGES: dict[tuple[str, float], optuna.storages.BaseStorage] = {}


def worker_storage(url: str, retry_s: float) -> optuna.storages.BaseStorage:
    """One storage per worker process and URL. A Ray worker runs trial after trial: opening a journal file
    again for each would replay the whole file (a cost that grows with the study), a database would open a
    new connection pool."""
    key = (url, retry_s)
    if key not in _STORAGES:
        _STORAGES[key] = open_storage(url, retry_s, wait_to_open=True)
    return _STORAGES[key]


def intermediate_key(metric: str) -> str:
    return INTERMEDIATE.get(metric, "val_loss")


class OptunaFeed(Reporter):
    def __init__(self, storage_url: str, study_name: str, trial_id: int, metric: str, prune: bool,
                 pruner: Optional[optuna.pruners.BasePruner] = None, retry_s: float = 0.0, node: str = ""):
        self.node = node
        self.storage = worker_storage(storage_url, retry_s)
        # The pruner is not kept in the storage: without it load_study gives Optuna's default
        # MedianPruner (5 startup trials), not the study's.
        self.study = optuna.load_study(study_name=study_name, storage=self.storage,
                                       pruner=pruner if pruner is not None else optuna.pruners.NopPruner())
        self.trial = optuna.Trial(self.study, trial_id)
        self.key, self.prune = intermediate_key(metric), prune
        self.single_objective = len(self.study.directions) == 1   # Optuna: no report() with several
        self.last_step = None
        self.reason: Optional[str] = None
        self.pending: list[tuple[str, Any, Any]] = []    # ("attr", key, value) or ("value", value, step)

    def _quick(self):
        return self.storage.quick() if hasattr(self.storage, "quick") else nullcontext()

    def _flush(self, wait: bool) -> bool:
        """Write what is pending, in order; True when nothing is left. Without `wait` one try only."""
        try:
            with nullcontext() if wait else self._quick():
                while self.pending:
                    kind, a, b = self.pending[0]
                    if kind == "attr":
                        self.trial.set_user_attr(a, b)
                    else:
                        self.trial.report(a, b)
                    self.pending.pop(0)
        except StorageUnavailable:
            if wait:
                raise
            return False
        return True

    def on_start(self, info: dict[str, Any]) -> None:
        where = {"pid": os.getpid(), "host": socket.gethostname(), "device": info["device"]}
        if self.node:
            where["node"] = self.node
        self.pending.append(("attr", TrialAttr.WORKER, where))
        self._flush(wait=False)

    def on_probe(self, probe: dict[str, Any]) -> None:
        value = probe.get(self.key)
        if self.single_objective and value is not None and math.isfinite(value):
            self.pending.append(("value", value, probe["step"]))
            self.last_step = probe["step"]
        self._flush(wait=False)

    def should_stop(self, step: int) -> bool:
        if not (self.prune and self.last_step == step) or self.pending:
            return False                    # no decision without the storage
        try:
            with self._quick():
                pruned = self.trial.should_prune()
        except StorageUnavailable:
            return False
        if pruned:
            self.reason = (f"{type(self.study.pruner).__name__}: {self.key} at step {step} "
                           f"against the other trials'")
        return pruned

    def stop_reason(self) -> Optional[str]:
        return self.reason

    def on_end(self, summary: dict[str, Any]) -> None:
        try:
            self._flush(wait=True)
        except StorageUnavailable as exc:
            print(f"gradstudy: trial {self.trial.number}: {len(self.pending)} intermediate value(s) not "
                  f"written ({exc})", file=sys.stderr, flush=True)
