"""The gradient-health pruning rule (workers/gradients/health_stop.py): k unhealthy probes in a row after the warm-up
stop a trial, with the reason in its summary; one healthy probe spares it."""
from __future__ import annotations

import pytest

from testkit.tiny import tiny_trial_config
from workers.config import Activation, Device, Init, TaskName, TrialConfig
from workers.gradients.health_stop import HealthStop
from workers.reporter import FanOut, Reporter
from workers.trial import run_trial


def feed(rule: HealthStop, verdicts: list[str], every: int = 10) -> list[bool]:
    decisions = []
    for i, verdict in enumerate(verdicts):
        rule.on_probe({"step": i * every, "health": verdict})
        decisions.append(rule.should_stop(i * every))
    return decisions


def test_patience_warmup_and_reason():
    assert feed(HealthStop(3), ["vanishing", "exploding", "diverged"]) == [False, False, True]
    rule = HealthStop(3)
    assert feed(rule, ["vanishing", "vanishing", "healthy", "vanishing", "vanishing", "vanishing"]) == \
        [False, False, False, False, False, True]
    assert rule.stop_reason() == "health: the last 3 probes (steps 30–50) were vanishing"
    assert feed(HealthStop(2, warmup_steps=25), ["vanishing"] * 4) == [False, False, False, True]   # steps 0..30
    assert feed(HealthStop(1), ["healthy", "exploding"]) == [False, True]
    assert HealthStop(3).stop_reason() is None
    with pytest.raises(ValueError):
        HealthStop(0)


def tiny(gain: float) -> TrialConfig:
    """The tiny trial (testkit.tiny) as one of the demo's tanh corners: λ1 = `gain`, 16 units, T = 30, 60 steps
    in batches of 16, probed every 10."""
    return tiny_trial_config(task__seq_len=30, model__hidden_size=16, model__init=Init.scaled, model__init_gain=gain,
                             model__activation=Activation.tanh, train__steps=60, train__batch_size=16,
                             train__probe_every=10)


def test_a_vanishing_trial_is_pruned_and_a_healthy_one_spared():
    """Pascanu et al.: λ1 = 0.5 < 1/γ vanishes over 30 steps; λ1 = 2 stays healthy (demo's grid)."""
    vanishing = run_trial(tiny(0.5), FanOut(Reporter(), HealthStop(3)))
    assert vanishing["status"] == "pruned" and vanishing["steps"] == 21      # stopped after the probe at 20
    assert [p["health"] for p in vanishing["probes"]] == ["vanishing"] * 3
    assert vanishing["prune_reason"] == "health: the last 3 probes (steps 0–20) were vanishing"
    healthy = run_trial(tiny(2.0), FanOut(Reporter(), HealthStop(3)))
    assert healthy["status"] == "completed" and healthy["steps"] == 60 and "prune_reason" not in healthy
    assert healthy["health"] == "healthy"


def test_an_esn_is_not_pruned_for_fading_memory():
    rule = HealthStop(2, fading_is_design=True)
    assert feed(rule, ["vanishing", "vanishing", "vanishing"]) == [False, False, False]
    assert feed(rule, ["exploding", "diverged"]) == [False, True]      # after the vanishing ones, two bad in a row


def test_a_trial_that_ran_to_the_end_is_not_pruned():
    """Unhealthy at every probe, but the third probe is the last step: the trial completes."""
    cfg = tiny(0.5)
    cfg.train.steps = 21                                   # probes at 0, 10, 20 (the last step)
    summary = run_trial(cfg, FanOut(Reporter(), HealthStop(3)))
    assert summary["status"] == "completed" and summary["steps"] == 21 and summary["health"] == "vanishing"


def test_the_pruner_follows_the_span_verdict():
    """Mackey-Glass at T = 300, orthogonal tanh: every probe's whole-sequence ratio is below −3, but the
    verdict judges the task's span (3τ = 51 steps), where the gradient holds: the trial is not pruned."""
    cfg = TrialConfig()
    cfg.task.name, cfg.task.seq_len, cfg.task.test_size, cfg.task.val_size = TaskName.mackey_glass, 300, 32, 32
    cfg.model.hidden_size, cfg.model.init, cfg.model.activation = 64, Init.orthogonal, Activation.tanh
    cfg.train.steps, cfg.train.batch_size, cfg.train.probe_every, cfg.train.lr = 31, 8, 10, 1e-4
    cfg.train.device = Device.cpu
    summary = run_trial(cfg, FanOut(Reporter(), HealthStop(2)))
    assert summary["status"] == "completed" and "prune_reason" not in summary and summary["health_span"] == 51
    assert len(summary["probes"]) == 4 and all(
        p["vanishing_ratio"] <= -3 and p["span"] == 51 and p["health"] == "healthy" for p in summary["probes"]
    ), [(p["vanishing_ratio"], p["span_ratio"]) for p in summary["probes"]]
