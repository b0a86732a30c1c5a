"""Echo state networks trained as reservoir computing does: the readout solved in closed form by ridge
regression (workers/forecast/ridge_readout.py, workers/forecast/esn_fit.py), and Jaeger (2001)'s free-running test."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from testkit.heard import Heard
from workers.config import ConfigError, TrialConfig, from_dict, to_dict
from workers.forecast.free_run import free_run_nrmse
from workers.forecast.ridge_readout import RidgeFit, design
from workers.reporter import Reporter
from workers.trial import build, run_trial

ESN_YAML = Path(__file__).resolve().parents[3] / "conf" / "model" / "esn.yaml"


def ridge_reference(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """numpy least squares of the augmented system [X 1; √λ I 0] w = [Y; 0] (the bias not shrunk)."""
    n, f = x.shape
    a = np.vstack([np.hstack([x, np.ones((n, 1))]), np.hstack([math.sqrt(ridge) * np.eye(f), np.zeros((f, 1))])])
    b = np.vstack([y, np.zeros((f, y.shape[1]))])
    return np.linalg.lstsq(a, b, rcond=None)[0]


@pytest.mark.parametrize("ridge", [0.0, 1e-6, 0.5, 20.0])
def test_ridge_readout_equals_a_least_squares_reference(ridge):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))        # correlated features
    y = x @ rng.normal(size=(12, 2)) + 0.3 + 0.1 * rng.normal(size=(300, 2))
    fit = RidgeFit(12, 2)
    for part in np.array_split(np.arange(300), 3):                     # accumulated batch by batch
        fit.add(torch.tensor(x[part], dtype=torch.float32), torch.tensor(y[part]))
    weight, bias = fit.solve(ridge)
    reference = ridge_reference(x.astype(np.float32).astype(np.float64), y, ridge)
    assert fit.rows == 300
    np.testing.assert_allclose(weight.T.numpy(), reference[:-1], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(bias.numpy(), reference[-1], rtol=1e-6, atol=1e-8)


def test_design_drops_the_washout_and_one_hot_encodes_classes():
    features = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    x, y = design(features, torch.arange(10, dtype=torch.float32).reshape(2, 5), None, skip=2)
    assert x.shape == (6, 3) and torch.equal(x[0], features[0, 2]) and y[:, 0].tolist() == [2, 3, 4, 7, 8, 9]
    x, y = design(features[:, -1:], torch.tensor([1, 0]), classes=3, skip=0)   # the last step only
    assert x.shape == (2, 3) and y.tolist() == [[0, 1, 0], [1, 0, 0]]


def esn_config(**model) -> TrialConfig:
    """The default ESN (conf/model/esn.yaml) on Mackey-Glass τ = 17, one step ahead, with its defaults."""
    defaults = yaml.safe_load(ESN_YAML.read_text())
    cfg = to_dict(TrialConfig())
    cfg["model"].update(defaults, **model)
    cfg["task"].update(name="mackey_glass", seq_len=100)       # conf/task/mackey_glass.yaml
    cfg["train"].update(device="cpu")
    return from_dict(cfg)


def test_the_default_esn_predicts_mackey_glass_without_a_gradient_step():
    cfg = esn_config()
    assert cfg.model.hidden_size == 200 and cfg.train.steps == 1000 and cfg.task.seq_len == 100
    _, fresh = build(cfg, torch.device("cpu"))
    reporter = Heard()
    summary = run_trial(cfg, reporter)
    assert summary["status"] == "completed" and summary["steps"] == 1000          # windows collected
    assert summary["final"]["nrmse"] <= 0.01, summary["final"]                      # Jaeger's task, 1 step ahead
    assert summary["final"]["solved"]
    # probes: after the first batch of 64 windows, every 100 windows, and the last; each with a profile
    steps = [p["step"] for p in summary["probes"]]
    assert steps[0] == 64 and steps[-1] == 1000 and all(b - a <= 128 for a, b in zip(steps, steps[1:]))
    assert all(len(p["grad_h_log10"][-1]) == 100 and p["health"] for p in summary["probes"])
    assert [s for s, _ in reporter.steps][-1] == 1000
    # the validation NRMSE improves from the first batch's readout to the last
    assert summary["probes"][-1]["val_loss"] <= summary["probes"][0]["val_loss"]
    # the reservoir is the one it was built with: only the readout was solved
    task, net = build(cfg, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(fresh.layers.parameters(), net.layers.parameters()))


def test_the_readout_is_the_ridge_solution_of_the_collected_states():
    """Solving the same windows by hand (numpy) gives the readout the trial ends with (test score)."""
    cfg = esn_config(hidden_size=30, ridge=1e-3)
    cfg.train.steps, cfg.train.batch_size, cfg.train.probe_every = 40, 20, 40
    summary = run_trial(cfg)
    task, net = build(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(cfg.train.seed)
    rows, targets = [], []
    for _ in range(2):
        batch = task.batch(20, g)
        with torch.no_grad():
            x, y = design(net.features(batch.x), batch.y, None, cfg.model.washout)
        rows.append(x.double().numpy())
        targets.append(y.numpy())
    w = ridge_reference(np.vstack(rows), np.vstack(targets), 1e-3)
    with torch.no_grad():
        net.readout.weight.copy_(torch.tensor(w[:-1].T))
        net.readout.bias.copy_(torch.tensor(w[-1]))
        test = task.held_out("test", cfg.task.test_size)
        out = net(test.x).out[:, cfg.model.washout:]
        loss = task.pointwise(out, test.y[:, cfg.model.washout:]).mean().item()
    assert summary["final"]["test_loss"] == pytest.approx(loss, rel=1e-4)


def test_free_running_error_grows_from_the_one_step_error():
    cfg = esn_config()
    cfg.train.steps = 256
    task, net = build(cfg, torch.device("cpu"))
    summary = run_trial(cfg)
    assert summary["final"].get("free_run_nrmse") is None                          # off by default
    cfg.task.free_run = 84
    summary = run_trial(cfg)
    nrmse84 = summary["final"]["free_run_nrmse"]
    assert math.isfinite(nrmse84) and summary["final"]["nrmse"] < nrmse84 < 1.0, summary["final"]
    # k = 1 is the one-step prediction after a teacher-forced window: by hand, from the solved readout
    from workers.forecast.esn_fit import fit_readout
    fit_readout(net, task, cfg, Reporter(), torch.device("cpu"))
    one = free_run_nrmse(net, task, steps=1, runs=50)
    lo, hi = task.bounds["test"]
    starts = torch.linspace(lo, hi - task.length - 1, 50).long()
    with torch.no_grad():
        pred = net(task.series[starts.unsqueeze(1) + torch.arange(task.length)].unsqueeze(-1)).out[:, -1, 0]
    truth = task.series[starts + task.length]
    expected = math.sqrt(((pred.double() - truth.double()) ** 2).mean()
                         / task.series[lo:hi].double().var(unbiased=False))
    # the float32 network run in two batch layouts: 1.4e-5 apart on some CPUs (seen on a fresh machine), 1e-7 on others
    assert one == pytest.approx(expected, rel=5e-5)


@pytest.mark.parametrize("change,key", [
    (dict(washout=100), "model.washout"),          # no step left of a 100-step window
    (dict(washout=-1), "model.washout"),
    (dict(ridge=-1.0), "model.ridge"),
])
def test_bad_esn_keys_are_refused(change, key):
    with pytest.raises(ConfigError) as err:
        esn_config(**change)
    assert err.value.key == key


def test_free_run_needs_mackey_glass_one_step_ahead():
    cfg = to_dict(TrialConfig())
    cfg["task"].update(name="adding", free_run=84)
    with pytest.raises(ConfigError) as err:
        from_dict(cfg)
    assert err.value.key == "task.free_run" and "mackey_glass" in str(err.value)
    cfg["task"].update(name="mackey_glass", horizon=2)
    with pytest.raises(ConfigError):
        from_dict(cfg)


def test_an_esn_on_a_classification_task_fits_one_hot_targets():
    cfg = to_dict(TrialConfig())
    cfg["task"].update(name="temporal_order", seq_len=20, test_size=200, val_size=64)
    cfg["model"].update(cell="esn", hidden_size=50)
    cfg["train"].update(steps=256, device="cpu", probe_every=128)
    summary = run_trial(from_dict(cfg))
    assert summary["status"] == "completed" and 0.0 <= summary["final"]["accuracy"] <= 1.0
    assert math.isfinite(summary["final"]["test_loss"])
