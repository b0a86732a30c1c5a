"""Trials a dead driver left RUNNING are queued again with their parameters (study/driver/runner.py requeue),
whole: a driver killed between two suggestions leaves a trial with part of its parameters, and queuing that
part made the next driver crash on a grid ("All parameters must be specified when using GridSampler with
enqueue_trial"). Such a trial is queued with its grid point completed from what the GridSampler recorded on it,
so every re-queued trial runs again. A real Optuna journal storage and the study's own runner; no Ray."""
from __future__ import annotations

import optuna
from optuna.trial import TrialState

from study.config.compose import compose_root
from study.config.objectives import lookup
from study.driver.runner import StudyRunner
from study.records.attrs import TrialAttr
from study.records.trials import counts_towards_total
from study.storage.backend import open_storage
from testkit.tiny import TINY


def test_a_trial_lost_while_it_was_sampled_is_queued_again_with_its_whole_grid_point(home):
    runner = StudyRunner(compose_root([*TINY, "study.name=halfway"]))
    study = runner.open_study(open_storage(""))
    whole = study.ask()
    runner.space.sample(whole, lambda key: lookup(runner.base_config, key))
    half = study.ask()                                  # its driver died after the first suggestion
    grid_id = study._storage.get_trial(half._trial_id).system_attrs["grid_id"]
    grid_point = study.sampler._all_grids[grid_id]                   # what it was going to be
    first = next(p for p in runner.space.params if not p.is_fixed)
    half.suggest_categorical(first.key, list(first.distribution.choices))
    assert set(half.params) == {first.key} and len(whole.params) == 2

    assert runner.recover_orphans(study) == 2
    trials = study.get_trials(deepcopy=False)
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    queued = {t.user_attrs[TrialAttr.REQUEUE_OF]: t.system_attrs["fixed_params"] for t in waiting}
    expected_half = dict(zip(sorted(runner.space.grid()), grid_point))
    assert queued == {whole.number: whole.params, half.number: expected_half}
    assert expected_half[first.key] == half.params[first.key]
    assert all(t.state == TrialState.FAIL for t in trials[:2]) and not any(map(counts_towards_total, trials[:2]))
    # the queued trials run with their parameters (no GridSampler error), then the grid's own
    for _ in range(4):
        trial = study.ask()
        values = runner.space.sample(trial, lambda key: lookup(runner.base_config, key))
        assert len(values) == 3 and set(trial.params) == {p.key for p in runner.space.params if not p.is_fixed}
        study.tell(trial, 1.0)
    reruns = optuna.load_study(study_name="halfway", storage=open_storage("")).trials[2:4]
    as_items = lambda params: tuple(sorted(params.items()))                  # noqa: E731
    assert sorted(as_items(t.params) for t in reruns) == sorted(map(as_items, [whole.params, expected_half]))
