"""Reading an Optuna study's trials the way gradstudy counts them (shared by the CLI, the nightly
comparison and the report).

A trial that was lost with its worker or driver is FAIL with `gradstudy.requeued` set: its configuration
was queued again, so it does not count towards `study.n_trials` and is counted apart as REQUEUED.
The best trial is the best COMPLETE one by the first objective; a non-finite value (a diverged trial)
loses, and ties go to the lower trial number.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Optional

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from study.records.attrs import TrialAttr

REQUEUED = TrialAttr.REQUEUED
STATES = ("COMPLETE", "PRUNED", "FAIL", "REQUEUED", "RUNNING", "WAITING")


def counts_towards_total(t: FrozenTrial) -> bool:
    return state_counts_towards_total(t.state, bool(t.user_attrs.get(REQUEUED)))


def state_counts_towards_total(state: TrialState, requeued: bool) -> bool:
    return state in (TrialState.COMPLETE, TrialState.PRUNED) or (state == TrialState.FAIL and not requeued)


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    counts: Counter = Counter()
    for t in trials:
        counts["REQUEUED" if t.state == TrialState.FAIL and t.user_attrs.get(REQUEUED) else t.state.name] += 1
    return {k: counts.get(k, 0) for k in STATES}


def health_mix(trials: list[FrozenTrial]) -> dict[str, int]:
    """Trials by health verdict, the most common first (trials without one are left out)."""
    return dict(Counter(t.user_attrs[TrialAttr.HEALTH] for t in trials if TrialAttr.HEALTH in t.user_attrs)
                .most_common())


def rank_key(direction: StudyDirection, t: FrozenTrial) -> tuple[float, int]:
    return value_rank_key(direction, float(t.values[0]) if t.values else None, t.number)


def value_rank_key(direction: StudyDirection, value: Optional[float], number: int) -> tuple[float, int]:
    """Smaller is better: a non-finite or missing value loses, ties go to the lower trial number."""
    if value is None or not math.isfinite(value):
        return math.inf, number
    return (value if direction == StudyDirection.MINIMIZE else -value), number


def best_trial(study: optuna.Study, trials: Optional[list[FrozenTrial]] = None) -> Optional[FrozenTrial]:
    done = [t for t in (trials if trials is not None else study.get_trials(deepcopy=False))
            if t.state == TrialState.COMPLETE]
    return min(done, key=lambda t: rank_key(study.directions[0], t)) if done else None


def best_per_cell(study: optuna.Study, trials: Optional[list[FrozenTrial]] = None) -> dict[str, FrozenTrial]:
    """The best COMPLETE trial of each `gradstudy.cell`."""
    by_cell: dict[str, list[FrozenTrial]] = {}
    for t in trials if trials is not None else study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            by_cell.setdefault(str(t.user_attrs.get(TrialAttr.CELL, "?")), []).append(t)
    return {cell: best_trial(study, ts) for cell, ts in sorted(by_cell.items())}
