"""`task.series_length`: the length of the Mackey-Glass series (0, the default, keeps the rule
max(20000, 20·(T + horizon))); a longer series gives a longer training part, so that an ESN's one
teacher-forced run (`model.fit_run`) can be as long as Jaeger (2001)'s 21000 steps."""
from __future__ import annotations

import numpy as np
import pytest

from workers.config import ConfigError, TrialConfig, from_dict, mackey_glass_parts, to_dict
from workers.key_use import applies
from workers.tasks import make_task
from workers.tasks.mackey_glass import mackey_glass_series


def config(task=None, **model) -> TrialConfig:
    cfg = to_dict(TrialConfig())
    cfg["task"].update(name="mackey_glass", seq_len=60, test_size=20, val_size=20)
    cfg["task"].update(task or {})
    cfg["model"].update(cell="esn", hidden_size=20, washout=30)
    cfg["model"].update(model)
    return from_dict(cfg)


def test_the_default_keeps_the_series_rule():
    cfg = config()
    assert cfg.task.series_length == 0
    task = make_task(cfg.task, 0)
    assert len(task.series) == 20000
    assert task.bounds == {"train": (0, 14000), "val": (14000, 17000), "test": (17000, 20000)}
    long_windows = make_task(config({"seq_len": 1500}).task, 0)        # 20·(T + horizon) > 20000
    assert len(long_windows.series) == 20 * 1501


def test_a_longer_series_has_longer_parts_and_the_same_start():
    cfg = config({"series_length": 30000}, fit_run=20000)              # past the default training part
    assert mackey_glass_parts(cfg.task) == {"train": 21000, "val": 4500, "test": 4500}
    task = make_task(cfg.task, 3)
    assert len(task.series) == 30000
    assert task.bounds == {"train": (0, 21000), "val": (21000, 25500), "test": (25500, 30000)}
    # the same integration, only run further: the default series is its beginning
    np.testing.assert_array_equal(mackey_glass_series(30000, 17, 3)[:20000], mackey_glass_series(20000, 17, 3))
    with pytest.raises(ConfigError) as err:
        config(fit_run=20000)                                          # the default series is too short for it
    assert err.value.key == "model.fit_run"


def test_the_key_applies_to_mackey_glass_only():
    plain = to_dict(config())
    assert applies("task.series_length", plain)
    plain["task"]["name"] = "adding"
    assert not applies("task.series_length", plain)


@pytest.mark.parametrize("value", [-1, 19999, 1_000_001, 2.5e4, True])
def test_bad_lengths_are_refused(value):
    with pytest.raises(ConfigError) as err:
        config({"series_length": value})
    assert err.value.key == "task.series_length" and err.value.value == value
    assert "task.series_length" in str(err.value) and "20000" in str(err.value)


def test_a_length_on_another_task_is_refused():
    cfg = to_dict(TrialConfig())
    cfg["task"].update(name="adding", series_length=30000)
    with pytest.raises(ConfigError) as err:
        from_dict(cfg)
    assert err.value.key == "task.series_length" and "mackey_glass" in str(err.value)
