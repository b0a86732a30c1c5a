"""What a study holds, read back from its Optuna storage: counts by state, best trials, health mix.

Used by `gradstudy status`, `gradstudy list`, the end-of-run table and the nightly comparison.
A trial that was lost with its worker or driver is FAIL with `gradstudy.requeued` set: its
configuration was queued again, so it does not count towards `study.n_trials`.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

REQUEUED = "gradstudy.requeued"


def counts_towards_total(t: FrozenTrial) -> bool:
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return t.state == TrialState.FAIL and not t.user_attrs.get(REQUEUED)


def finished(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if counts_towards_total(t)]


def state_counts(trials: list[FrozenTrial]) -> dict[str, int]:
    counts = Counter(t.state.name for t in trials if counts_towards_total(t) or t.state != TrialState.FAIL)
    counts["REQUEUED"] = sum(1 for t in trials if t.user_attrs.get(REQUEUED))
    return {k: counts.get(k, 0) for k in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING", "REQUEUED")}


def health_mix(trials: list[FrozenTrial]) -> dict[str, int]:
    return dict(Counter(t.user_attrs["gradstudy.health"] for t in trials if "gradstudy.health" in t.user_attrs))


def _key(study: optuna.Study, t: FrozenTrial) -> float:
    value = t.values[0]
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1.0
    return sign * value if math.isfinite(value) else math.inf


def best_trial(study: optuna.Study, trials: Optional[list[FrozenTrial]] = None) -> Optional[FrozenTrial]:
    """The best COMPLETE trial by the first objective (diverged trials carry ±inf and lose)."""
    done = [t for t in (trials if trials is not None else study.trials) if t.state == TrialState.COMPLETE]
    return min(done, key=lambda t: _key(study, t)) if done else None


def best_per_cell(study: optuna.Study) -> dict[str, FrozenTrial]:
    by_cell: dict[str, list[FrozenTrial]] = {}
    for t in study.trials:
        if t.state == TrialState.COMPLETE:
            by_cell.setdefault(t.user_attrs.get("gradstudy.cell", "?"), []).append(t)
    return {cell: best_trial(study, ts) for cell, ts in sorted(by_cell.items())}


def trial_brief(t: FrozenTrial) -> dict[str, Any]:
    return {"number": t.number, "values": t.values, "params": t.params,
            "health": t.user_attrs.get("gradstudy.health"), "cell": t.user_attrs.get("gradstudy.cell")}


def status(study: optuna.Study) -> dict[str, Any]:
    trials = study.trials
    best = best_trial(study, trials)
    return {
        "name": study.study_name,
        "n_trials": study.user_attrs.get("gradstudy.n_trials"),
        "finished": len(finished(trials)),
        "states": state_counts(trials),
        "best": trial_brief(best) if best else None,
        "health": health_mix(finished(trials)),
        "directions": [d.name.lower() for d in study.directions],
        "objectives": study.user_attrs.get("gradstudy.objectives"),
    }
