"""The linear AR(k) baseline on Mackey-Glass (workers/forecast/ar_baseline.py): its least-squares fit, its one-step
score on the model's own test positions and its free run from the model's starting points."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workers.config import ConfigError, TaskConfig, TaskName, TrialConfig, from_dict, to_dict
from workers.forecast import ar_baseline as ar
from workers.forecast.free_run import free_run_starts
from workers.tasks.mackey_glass import MackeyGlass


@pytest.fixture(scope="module")
def task() -> MackeyGlass:
    return MackeyGlass(TaskConfig(name=TaskName.mackey_glass, seq_len=100), seed=0)


@pytest.fixture(scope="module")
def coef30(task) -> np.ndarray:
    lo, hi = task.bounds["train"]
    return ar.fit_ar(task.series[lo:hi].double().numpy(), 30)


def test_fit_recovers_the_coefficients_of_an_ar_process():
    rng = np.random.default_rng(0)
    a, c = np.array([0.5, -0.3, 0.2]), 0.1                     # x[t+1] = 0.5 x[t] − 0.3 x[t−1] + 0.2 x[t−2] + c
    x, noise = np.zeros(50000), rng.normal(size=50000)
    for t in range(2, len(x) - 1):
        x[t + 1] = a @ x[t - 2:t + 1][::-1] + c + noise[t]
    coef = ar.fit_ar(x, 3)
    np.testing.assert_allclose(coef, [*a, c], atol=0.02)       # the least-squares error: ~0.005 here
    exact = ar.fit_ar(x[:200] * 0 + np.arange(200.0), 2)      # a noiseless line: predicted exactly
    np.testing.assert_allclose(ar.predict(exact, np.array([3.0, 4.0])), 5.0, atol=1e-9)


def test_one_step_scores_are_the_tasks_own_on_the_same_positions(task, coef30):
    """By hand: each scored position's last 30 values → prediction; task.evaluate normalizes."""
    test = task.held_out("test", 200)
    skip = 50
    scores = ar.one_step_scores(coef30, task, test, skip)
    starts = test.starts
    assert torch.equal(task.series[starts.unsqueeze(1) + torch.arange(100)], test.x[..., 0])
    series = task.series.double().numpy()
    pred = np.array([[coef30[-1] + sum(coef30[i] * series[s + t - i] for i in range(30)) for t in range(skip, 100)]
                     for s in starts.tolist()])
    mse = ((torch.tensor(pred, dtype=torch.float32) - test.y[:, skip:]) ** 2).mean().item()
    assert scores["nrmse"] == pytest.approx(math.sqrt(mse / test.y[:, skip:].var(unbiased=False).item()), rel=1e-4)


def test_ar30_on_mackey_glass_is_near_5e_4_one_step(task, coef30):
    test = task.held_out("test", 1000)
    nrmse = ar.one_step_scores(coef30, task, test, 50)["nrmse"]
    assert 3e-4 < nrmse < 8e-4, nrmse                          # review: AR(30) 5.2e-4
    lo, hi = task.bounds["train"]
    ar4 = ar.one_step_scores(ar.fit_ar(task.series[lo:hi].double().numpy(), 4), task, test, 50)["nrmse"]
    assert nrmse < ar4 < 1e-2, ar4                             # a longer history helps (review: AR(4) 3.5e-3)


def test_free_run_is_worse_than_one_step_and_starts_where_the_models_does(task, coef30):
    one = ar.free_run_nrmse(coef30, task, steps=1, runs=100, teacher=100)
    k84 = ar.free_run_nrmse(coef30, task, steps=84, runs=100, teacher=100)
    assert math.isfinite(k84) and one < k84, (one, k84)
    # k = 1 by hand from the same starting points as the model's free run (workers/forecast/free_run.py)
    starts = free_run_starts(task, "test", 100, 1, 100)
    series = task.series.double().numpy()
    pred = np.array([ar.predict(coef30, series[s + 100 - 30:s + 100]) for s in starts.tolist()])
    truth = series[starts.numpy() + 100]
    lo, hi = task.bounds["test"]
    assert one == pytest.approx(math.sqrt(np.mean((pred - truth) ** 2) / series[lo:hi].var()), rel=1e-9)
    assert math.isnan(ar.free_run_nrmse(coef30, task, steps=84, runs=10, teacher=5000))   # does not fit


def test_the_fit_reads_the_training_part_only(task):
    """Changing the validation and test parts does not change the baseline's coefficients."""
    lo, hi = task.bounds["train"]
    coef = ar.ar_baseline(task, 5, task.held_out("test", 100), skip=50, free_run=0, runs=10, teacher=100)
    other = MackeyGlass(TaskConfig(name=TaskName.mackey_glass, seq_len=100), seed=0)
    other.series = other.series.clone()
    other.series[hi:] = other.series[hi:] * 1.5
    np.testing.assert_array_equal(ar.fit_ar(other.series[lo:hi].double().numpy(), 5),
                                  ar.fit_ar(task.series[lo:hi].double().numpy(), 5))
    assert set(coef) == {"ar_order", "ar_nrmse"} and coef["ar_order"] == 5


@pytest.mark.parametrize("value", [-1, 1.5, 1001])
def test_a_bad_ar_order_is_refused(value):
    cfg = to_dict(TrialConfig())
    cfg["task"].update(name="mackey_glass", seq_len=100, ar_order=value)
    with pytest.raises(ConfigError) as err:
        from_dict(cfg)
    assert err.value.key == "task.ar_order" and "task.ar_order" in str(err.value)
