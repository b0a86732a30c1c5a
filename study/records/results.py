"""What a study holds, read back from its Optuna storage: counts by state, best trials, health mix.

Used by `gradstudy status`, `gradstudy list`, the end-of-run table and the nightly comparison; the
counting rules are in study/records/trials.py (shared with the study report).
"""
from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from study.records import expectations
from study.records.attrs import StudyAttr, TrialAttr
from study.records.trials import REQUEUED, best_per_cell, best_trial, counts_towards_total, health_mix, state_counts

__all__ = ["REQUEUED", "best_per_cell", "best_trial", "counts_towards_total", "state_counts", "finished",
           "health_mix", "trial_brief", "status"]


def finished(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if counts_towards_total(t)]


def trial_brief(t: FrozenTrial) -> dict[str, Any]:
    return {"number": t.number, "values": t.values, "params": t.params,
            "health": t.user_attrs.get(TrialAttr.HEALTH), "cell": t.user_attrs.get(TrialAttr.CELL)}


def status(study: optuna.Study) -> dict[str, Any]:
    trials = study.trials
    best = best_trial(study, trials)
    return {
        "name": study.study_name,
        "n_trials": study.user_attrs.get(StudyAttr.N_TRIALS),
        "finished": len(finished(trials)),
        "states": state_counts(trials),
        "best": trial_brief(best) if best else None,
        "health": health_mix(finished(trials)),
        "directions": [d.name.lower() for d in study.directions],
        "objectives": study.user_attrs.get(StudyAttr.OBJECTIVES),
        "expectations": expectations.evaluate(trials, study.user_attrs.get(StudyAttr.EXPECT) or []),
    }
