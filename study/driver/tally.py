"""The driver's running count of a study's finished trials: O(1) per finished trial, no storage read.

Read from the storage once when the driver starts (it holds the study lock, so no other driver changes
the study after that), then told of every trial this driver finishes, with the state and values it just
wrote. The counting rules are those of study/records/trials.py: COMPLETE and PRUNED count, a FAIL counts unless
it was re-queued; the best trial is the best COMPLETE one by the first objective (a non-finite value
loses, ties go to the lower number).
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from study.records.attrs import TrialAttr
from study.records.trials import state_counts_towards_total, value_rank_key


class Tally:
    def __init__(self, direction: StudyDirection, trials: Iterable[FrozenTrial] = ()):
        self.direction = direction
        self.done = self.pruned = self.failed = 0
        self.best_value: Optional[float] = None
        self._best_key: Optional[tuple[float, int]] = None
        self._seen: set[int] = set()
        for t in trials:
            self.add(t)

    def add(self, t: FrozenTrial) -> None:
        """A trial as the storage holds it."""
        self.count(t.number, t.state, t.values, bool(t.user_attrs.get(TrialAttr.REQUEUED)))

    def count(self, number: int, state: TrialState, values: Optional[Sequence[float]] = None,
              requeued: bool = False) -> None:
        """A trial in its final state (counted once, whatever calls it again)."""
        if number in self._seen or not state_counts_towards_total(state, requeued):
            return
        self._seen.add(number)
        self.done += 1
        self.pruned += state == TrialState.PRUNED
        self.failed += state == TrialState.FAIL
        if state == TrialState.COMPLETE:
            value = float(values[0]) if values else None
            key = value_rank_key(self.direction, value, number)
            if self._best_key is None or key < self._best_key:
                self._best_key, self.best_value = key, value

    @property
    def best_number(self) -> Optional[int]:
        return None if self._best_key is None else self._best_key[1]


__all__ = ["Tally"]
