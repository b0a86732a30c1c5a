"""The points of a driver's run where other parts attach: MLflow tracking (study/tracking_hooks.py) and the
nightly comparison (study/nightly.py).

    start(runner, study)           the study is open and locked, before orphans are recovered
    launch(trial, config) -> dict  a trial is about to be placed; returns fields for its TrialJob
                                   (the MLflow run the worker logs to)
    result(trial, summary, delivery)   a trial came back with a summary, before it is told to Optuna
    lost(frozen, state, reason)    a trial ended without a result: "requeued" (worker or driver lost,
                                   budget) or "failed" (error, bad config, not placed)
    end(runner, outcome) -> code   the run is over, the lock still held; a hook may return an exit code

`StudyHooks` does nothing at each point; `Hooks` calls several in order (the first exit code wins).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Optional

import optuna

if TYPE_CHECKING:
    from study.runner import Outcome, StudyRunner


class StudyHooks:
    """No-op hooks: override the points you need."""

    def start(self, runner: "StudyRunner", study: optuna.Study) -> None:
        pass

    def launch(self, trial: optuna.Trial, config: dict[str, Any]) -> dict[str, Any]:
        return {}

    def result(self, trial: optuna.Trial, summary: dict[str, Any], delivery: dict[str, Any]) -> None:
        pass

    def lost(self, frozen: optuna.trial.FrozenTrial, state: str, reason: str) -> None:
        pass

    def end(self, runner: "StudyRunner", outcome: "Outcome") -> Optional[int]:
        return None


class Hooks(StudyHooks):
    """Several hooks called in order."""

    def __init__(self, hooks: Iterable[StudyHooks] = ()):
        self.hooks = list(hooks)

    def start(self, runner, study):
        for h in self.hooks:
            h.start(runner, study)

    def launch(self, trial, config):
        fields: dict[str, Any] = {}
        for h in self.hooks:
            fields.update(h.launch(trial, config))
        return fields

    def result(self, trial, summary, delivery):
        for h in self.hooks:
            h.result(trial, summary, delivery)

    def lost(self, frozen, state, reason):
        for h in self.hooks:
            h.lost(frozen, state, reason)

    def end(self, runner, outcome):
        codes = [h.end(runner, outcome) for h in self.hooks]
        return next((c for c in codes if c is not None), None)
