"""The driver's running count (study/driver/tally.py) agrees with the storage's own count (study/records/trials.py)
on a real Optuna study holding every kind of trial, and counts a trial once."""
from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from study.driver.tally import Tally
from study.records.attrs import TrialAttr
from study.records.trials import best_trial, counts_towards_total


def a_study(direction: str) -> optuna.Study:
    study = optuna.create_study(direction=direction, storage=optuna.storages.InMemoryStorage())
    for value in (0.5, math.inf, 0.2, 0.2, 0.9):
        study.tell(study.ask(), value)
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.tell(study.ask(), state=TrialState.FAIL)
    lost = study.ask()
    lost.set_user_attr(TrialAttr.REQUEUED, True)
    study.tell(lost, state=TrialState.FAIL)
    study.ask()                          # RUNNING
    study.enqueue_trial({})              # WAITING
    return study


def test_the_tally_agrees_with_the_storage():
    for direction in ("minimize", "maximize"):
        study = a_study(direction)
        trials = study.get_trials(deepcopy=False)
        tally = Tally(study.directions[0], trials)
        assert tally.done == sum(counts_towards_total(t) for t in trials) == 7
        assert (tally.pruned, tally.failed) == (1, 1)
        assert tally.best_number == best_trial(study).number == (2 if direction == "minimize" else 4)


def test_a_trial_is_counted_once_and_a_finite_value_beats_an_infinite_one():
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    tally = Tally(study.directions[0])
    assert tally.best_value is None
    study.tell(study.ask(), math.inf)
    tally.add(study.trials[-1])
    tally.add(study.trials[-1])
    assert tally.done == 1 and tally.best_value == math.inf
    study.tell(study.ask(), 3.0)
    tally.add(study.trials[-1])
    assert tally.done == 2 and tally.best_value == 3.0
