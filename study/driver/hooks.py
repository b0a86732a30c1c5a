"""The points of a study run where other parts attach, as Ray Tune's callbacks do: the CLI builds the hooks
(MLflow tracking, study/recording/hook.py; the nightly comparison, study/cli/nightly.py; the live display,
study/cli/console.py) and hands them to the runner, which knows none of them.

The words are the worker's (workers/reporter.py: on_start, on_step, on_probe, on_end):

    on_start(study)                  the study is open and locked, before orphans are recovered
    on_progress(progress)            the counts changed (done, running, pruned, failed, best)
    on_launch(trial, config) -> dict a trial is about to be placed; returns fields for its TrialJob
                                     (e.g. the MLflow run the worker logs to)
    on_result(trial, summary, delivery) -> attrs  a trial came back with a summary, before it is told to
                                     Optuna; returns user attributes to write on it with its record (one
                                     transaction: study/storage/trial_attrs.py)
    on_lost(frozen, state, reason)   a trial ended without a result: "requeued" (worker or driver lost,
                                     budget) or "failed" (error, bad config, not placed)
    on_end(outcome) -> code          the run is over, the lock still held; a hook may return an exit code

`StudyHook` does nothing at each point; `HookList` calls several in order (the first exit code wins).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

import optuna

from study.driver.progress import Outcome, Progress


class StudyHook:
    """No-op hooks: override the points you need."""

    def on_start(self, study: optuna.Study) -> None:
        pass

    def on_progress(self, progress: Progress) -> None:
        pass

    def on_launch(self, trial: optuna.Trial, config: dict[str, Any]) -> dict[str, Any]:
        return {}

    def on_result(self, trial: optuna.Trial, summary: dict[str, Any],
                  delivery: dict[str, Any]) -> Optional[dict[str, Any]]:
        pass

    def on_lost(self, frozen: optuna.trial.FrozenTrial, state: str, reason: str) -> None:
        pass

    def on_end(self, outcome: Outcome) -> Optional[int]:
        return None


class HookList(StudyHook):
    """Several hooks called in order."""

    def __init__(self, hooks: Iterable[StudyHook] = ()):
        self.hooks = list(hooks)

    def on_start(self, study):
        for h in self.hooks:
            h.on_start(study)

    def on_progress(self, progress):
        for h in self.hooks:
            h.on_progress(progress)

    def on_launch(self, trial, config):
        fields: dict[str, Any] = {}
        for h in self.hooks:
            fields.update(h.on_launch(trial, config))
        return fields

    def on_result(self, trial, summary, delivery):
        attrs: dict[str, Any] = {}
        for h in self.hooks:
            attrs.update(h.on_result(trial, summary, delivery) or {})
        return attrs

    def on_lost(self, frozen, state, reason):
        for h in self.hooks:
            h.on_lost(frozen, state, reason)

    def on_end(self, outcome):
        codes = [h.on_end(outcome) for h in self.hooks]
        return next((c for c in codes if c is not None), None)
