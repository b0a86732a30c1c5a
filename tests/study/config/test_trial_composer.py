"""The fast trial composition (study/config/trial_composer.py) gives exactly what Hydra's full composition gives:
for sampled trials of every experiment, for a config-group choice (which takes the Hydra path), and for a
bad value (the same ConfigError)."""
from __future__ import annotations

import optuna
import pytest

from study.config.compose import compose_root, compose_trial
from study.config.trial_composer import TrialComposer
from study.driver.runner import StudyRunner, lookup
from testkit.processes import REPO
from workers.config import ConfigError, to_dict

# the published experiments (test_tiny, the tests' tiny trial, samples the demo's space)
EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml") if not p.stem.startswith("test_"))


def hydra_path(runner: StudyRunner, values: dict) -> dict:
    """The trial config as the driver composed it before: Hydra on base + sampled overrides."""
    sampled = runner.space.overrides(values)
    keys = {o.split("=", 1)[0] for o in sampled}
    base = [o for o in runner.base + list(runner.root.study.fixed) if o.split("=", 1)[0].lstrip("+~") not in keys]
    return to_dict(compose_trial(base + sampled))


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_sampled_trials_compose_as_hydra_composes_them(experiment):
    runner = StudyRunner(compose_root([f"experiment={experiment}"]))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7),
                                storage=optuna.storages.InMemoryStorage())
    compared = 0
    for _ in range(3):
        trial = study.ask()
        values = runner.space.sample(trial, lambda key: lookup(runner.base_config, key))
        try:
            expected = hydra_path(runner, values)
        except ConfigError as exc:        # a sampled combination the config refuses: refused alike
            with pytest.raises(ConfigError) as info:
                runner.trial_config(values)
            assert str(info.value) == str(exc)
            continue
        assert to_dict(runner.trial_config(values)) == expected, values
        compared += 1
    assert compared, "no sampled trial composed"
    assert runner._composer.fast >= compared        # the fast path did the work


def test_a_group_choice_takes_the_hydra_path_and_a_bad_value_is_the_same_error():
    composer = TrialComposer(["experiment=demo"])
    cfg = composer({"task": "copy_memory"}, ["task=copy_memory"])
    assert cfg.task.name.value == "copy_memory" and composer.slow == 1
    assert to_dict(cfg) == to_dict(compose_trial(["experiment=demo", "task=copy_memory"]))
    with pytest.raises(ConfigError) as fast:
        composer({"model.hidden_size": -3}, ["model.hidden_size=-3"])
    with pytest.raises(ConfigError) as full:
        compose_trial(["experiment=demo", "model.hidden_size=-3"])
    assert str(fast.value) == str(full.value)
    assert composer({"model.cell": "gru"}, ["model.cell=gru"]).model.cell.value == "gru"
    assert composer.fast == 1
