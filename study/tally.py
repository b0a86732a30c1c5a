"""The driver's running count of a study's finished trials: O(1) per finished trial.

Read from the storage once when the driver starts (it holds the study lock, so no other driver changes
the study after that), then told of every trial this driver finishes. The counting rules are those of
tracking/trials.py: COMPLETE and PRUNED count, a FAIL counts unless it was re-queued; the best trial is
the best COMPLETE one by the first objective (a non-finite value loses, ties go to the lower number).
"""
from __future__ import annotations

from typing import Iterable, Optional

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tracking.trials import counts_towards_total, rank_key


class Tally:
    def __init__(self, direction: StudyDirection, trials: Iterable[FrozenTrial] = ()):
        self.direction = direction
        self.done = self.pruned = self.failed = 0
        self.best: Optional[FrozenTrial] = None
        self._seen: set[int] = set()
        for t in trials:
            self.add(t)

    def add(self, t: FrozenTrial) -> None:
        """A trial in its final state (counted once, whatever calls it again)."""
        if t.number in self._seen or not counts_towards_total(t):
            return
        self._seen.add(t.number)
        self.done += 1
        self.pruned += t.state == TrialState.PRUNED
        self.failed += t.state == TrialState.FAIL
        if t.state == TrialState.COMPLETE and (
                self.best is None or rank_key(self.direction, t) < rank_key(self.direction, self.best)):
            self.best = t

    @property
    def best_value(self) -> Optional[float]:
        return self.best.values[0] if self.best is not None and self.best.values else None


__all__ = ["Tally"]
