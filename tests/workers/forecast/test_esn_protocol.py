"""Jaeger (2001)'s protocol for an echo state network on Mackey-Glass: one long teacher-forced training run
with its washout dropped (`model.fit_run`), a long teacher-forced lead-in before the free run
(`task.free_run_teacher`), a bias scale of its own (`model.bias_scaling`), and the ridge λ chosen on a
validation free run, never on the test (`model.ridge_grid`). Defaults keep the window protocol."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workers.config import ConfigError, TrialConfig, from_dict, to_dict
from workers.forecast.esn_fit import fit_readout
from workers.forecast.free_run import free_run_nrmse
from workers.reporter import Reporter
from workers.trial import build, run_trial

CPU = torch.device("cpu")
GRID = [1e-10, 1e-6, 1e-2, 10.0]


def config(task=None, **model) -> TrialConfig:
    cfg = to_dict(TrialConfig())
    cfg["model"].update(cell="esn", hidden_size=40, leak=1.0, spectral_radius=0.9, input_scaling=0.3, washout=30)
    cfg["model"].update(model)
    cfg["task"].update(name="mackey_glass", seq_len=60, test_size=50, val_size=40, **(task or {}))
    cfg["train"].update(device="cpu", steps=64, batch_size=32, probe_every=64)
    return from_dict(cfg)


def ridge_by_hand(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    a = np.hstack([x, np.ones((len(x), 1))])
    reg = ridge * np.eye(a.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(a.T @ a + reg, a.T @ y)


def test_the_defaults_keep_the_window_protocol():
    cfg = config()
    assert (cfg.model.fit_run, cfg.model.ridge_grid, cfg.model.bias_scaling,
            cfg.task.free_run_teacher) == (0, [], None, 0)
    summary = run_trial(cfg)
    assert summary["steps"] == 64 and summary["final"]["ridge"] == cfg.model.ridge
    assert summary["final"]["ridge_val"] is None                    # no grid: nothing chosen


def test_the_fit_run_is_one_run_along_the_training_part_with_its_washout_dropped():
    cfg = config(fit_run=1500, ridge=1e-6)
    task, net = build(cfg, CPU)
    result = fit_readout(net, task, cfg, Reporter(), CPU)
    assert result.steps == 1500 and result.status == "completed" and len(result.probes) == 1
    _, fresh = build(cfg, CPU)
    lo, _ = task.bounds["train"]
    with torch.no_grad():                                          # the whole run at once, from a zero state
        states = fresh.features(task.series[lo:lo + 1500].view(1, -1, 1))[0].double().numpy()
    y = task.series[lo + 1:lo + 1501].double().numpy()[:, None]
    w = ridge_by_hand(states[30:], y[30:], 1e-6)                   # the first 30 (washout) steps dropped
    np.testing.assert_allclose(net.readout.weight.detach().double().numpy(), w[:-1].T, rtol=2e-3, atol=1e-4)
    with_washout = ridge_by_hand(states, y, 1e-6)                  # not the fit with the washout kept
    assert not np.allclose(net.readout.weight.detach().double().numpy(), with_washout[:-1].T, rtol=2e-3, atol=1e-4)


def test_the_ridge_is_chosen_from_the_grid_on_the_validation_free_run():
    cfg = config(task={"free_run": 20, "free_run_teacher": 200}, fit_run=2000, ridge_grid=GRID)
    task, net = build(cfg, CPU)
    result = fit_readout(net, task, cfg, Reporter(), CPU)
    chosen, score = result.final["ridge"], result.final["ridge_val"]
    assert chosen in GRID
    # each λ by hand: solve the same run, free-run on the validation part
    scores = {}
    for ridge in GRID:
        c = config(task={"free_run": 20, "free_run_teacher": 200}, fit_run=2000, ridge=ridge)
        t2, n2 = build(c, CPU)
        fit_readout(n2, t2, c, Reporter(), CPU)
        scores[ridge] = free_run_nrmse(n2, t2, 20, c.task.val_size, 200, split="val")
    assert chosen == min(scores, key=scores.get), scores
    assert score == pytest.approx(scores[chosen], rel=1e-6)
    assert len(set(round(math.log10(v), 3) for v in scores.values())) > 1   # the grid matters here


def test_the_choice_never_reads_the_test_part():
    """With the test part of the series replaced by NaN, the choice and its validation score are unchanged."""
    cfg = config(task={"free_run": 20, "free_run_teacher": 100}, fit_run=1000, ridge_grid=GRID)
    task, net = build(cfg, CPU)
    clean = fit_readout(net, task, cfg, Reporter(), CPU).final
    task, net = build(cfg, CPU)
    lo, hi = task.bounds["test"]
    task.series = task.series.clone()
    task.series[lo:hi] = math.nan
    poisoned = fit_readout(net, task, cfg, Reporter(), CPU).final
    assert poisoned == clean and math.isfinite(poisoned["ridge_val"])


def test_without_a_free_run_the_grid_is_scored_one_step_on_validation():
    summary = run_trial(config(ridge_grid=[1e-8, 1e3]))
    assert summary["final"]["ridge"] == 1e-8 and summary["final"]["ridge_val"] > 0


def test_the_bias_has_its_own_scale():
    _, tied = build(config(), CPU)
    _, own = build(config(bias_scaling=0.01), CPU)
    layer_t, layer_o = tied.layers[0], own.layers[0]
    assert torch.equal(layer_t.w_ih, layer_o.w_ih) and torch.equal(layer_t.w_hh, layer_o.w_hh)   # the rest unchanged
    assert layer_t.core.bias_ih_l0.abs().max() > 0.1                # tied: U(−0.3, 0.3)
    assert 0 < layer_o.core.bias_ih_l0.abs().max() <= 0.01
    torch.testing.assert_close(layer_o.core.bias_ih_l0, layer_t.core.bias_ih_l0 * (0.01 / 0.3))
    _, none = build(config(bias_scaling=0.0), CPU)
    assert not none.layers[0].core.bias_ih_l0.any()


def test_the_teacher_length_of_the_free_run():
    cfg = config(task={"free_run": 20})
    task, net = build(cfg, CPU)
    fit_readout(net, task, cfg, Reporter(), CPU)
    assert free_run_nrmse(net, task, 20, 30) == free_run_nrmse(net, task, 20, 30, teacher=60)   # 0 = seq_len
    assert math.isfinite(free_run_nrmse(net, task, 20, 30, teacher=1000))
    summary = run_trial(config(task={"free_run": 20, "free_run_teacher": 500}))
    assert math.isfinite(summary["final"]["free_run_nrmse"]) and math.isfinite(summary["final"]["ar_free_run_nrmse"])


@pytest.mark.parametrize("task,model,key", [
    ({}, dict(bias_scaling=-0.1), "model.bias_scaling"),
    ({}, dict(bias_scaling=math.inf), "model.bias_scaling"),
    ({}, dict(ridge_grid=[1e-6, -1.0]), "model.ridge_grid"),
    ({}, dict(ridge_grid=[math.nan]), "model.ridge_grid"),
    ({}, dict(fit_run=-5), "model.fit_run"),
    ({}, dict(fit_run=30), "model.fit_run"),                       # not longer than the washout
    ({}, dict(fit_run=14000), "model.fit_run"),                    # past the training part (and its last target)
    ({"free_run_teacher": -1}, {}, "task.free_run_teacher"),
    ({"free_run": 84, "free_run_teacher": 2950}, {}, "task.free_run_teacher"),   # does not fit the test part
])
def test_bad_protocol_keys_are_refused(task, model, key):
    with pytest.raises(ConfigError) as err:
        config(task, **model)
    assert err.value.key == key and key in str(err.value)


def test_the_fit_run_needs_an_esn_on_mackey_glass():
    cfg = to_dict(TrialConfig())
    cfg["task"].update(name="adding")
    cfg["model"].update(cell="esn", fit_run=500)
    with pytest.raises(ConfigError) as err:
        from_dict(cfg)
    assert err.value.key == "model.fit_run" and "mackey_glass" in str(err.value)
