"""Whole trials through `workers.trial.run_trial`: learning, the summary contract of docs/summary-json.md, the
probe cadence, divergence, clipping, truncated BPTT, penalties, pruning, optimizers, determinism and
config errors. Real training runs on tiny configs (CPU), no mocks."""
from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from testkit.tiny import tiny_trial_config
from workers.config import (
    Activation,
    Cell,
    ClipMode,
    ConfigError,
    Init,
    Norm,
    Optimizer,
    TaskName,
    TrialConfig,
    from_dict,
    validate,
)
from workers.trial import run_trial

HEALTH = {"healthy", "vanishing", "exploding", "diverged"}
REGRESSION = {"adding", "mackey_glass"}


def make_cfg(task: str = "adding", seq_len: int = 20, **kw) -> TrialConfig:
    """The tiny trial (testkit.tiny) with 16 units, T = 20, batches of 16, probed every 10 steps; keyword
    `section__key=value` (e.g. `train__lr=0.1`, `train__clip__mode=...`)."""
    return tiny_trial_config(**{"task__name": TaskName(task), "task__seq_len": 64 if task == "digits" else seq_len,
                                "model__hidden_size": 16, "train__batch_size": 16, "train__probe_every": 10,
                                "train__log_every": 5, **kw})


class Recorder:
    """A reporter that records every call, and asks to stop at its `stop_at`-th should_stop call."""

    def __init__(self, stop_at: int | None = None):
        self.stop_at = stop_at
        self.calls: list[str] = []
        self.start: dict[str, Any] | None = None
        self.steps: list[tuple[int, dict[str, float]]] = []
        self.probes: list[dict[str, Any]] = []
        self.stop_queries: list[int] = []
        self.summary: dict[str, Any] | None = None

    def on_start(self, info):
        self.calls.append("start")
        self.start = info

    def on_step(self, step, metrics):
        self.calls.append("step")
        self.steps.append((step, dict(metrics)))

    def on_probe(self, probe):
        self.calls.append("probe")
        self.probes.append(copy.deepcopy(probe))

    def should_stop(self, step):
        self.calls.append("stop?")
        self.stop_queries.append(step)
        return self.stop_at is not None and len(self.stop_queries) >= self.stop_at

    def on_end(self, summary):
        self.calls.append("end")
        self.summary = summary


def run(cfg: TrialConfig, reporter: Recorder | None = None) -> tuple[dict, Recorder]:
    reporter = reporter or Recorder()
    summary = run_trial(cfg, reporter)
    assert reporter.calls[0] == "start" and reporter.calls[-1] == "end" and reporter.calls.count("end") == 1
    assert reporter.summary is summary
    return summary, reporter


def json_roundtrip(summary: dict) -> dict:
    text = json.dumps(summary, allow_nan=False)   # raises on NaN/Inf
    return json.loads(text)


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --- learning ------------------------------------------------------------------------------------------

def test_short_training_lowers_the_loss():
    cfg = make_cfg("adding", seq_len=10, model__cell=Cell.lstm, model__hidden_size=32,
                   train__optimizer=Optimizer.adam, train__lr=1e-2, train__steps=250, train__batch_size=32,
                   train__probe_every=50, train__log_every=25, task__test_size=256)
    summary, rec = run(cfg)
    final = summary["final"]
    assert summary["status"] == "completed" and summary["steps"] == 250
    assert final["baseline_loss"] == pytest.approx(1 / 6)
    assert final["baseline_ratio"] == pytest.approx(final["test_loss"] / final["baseline_loss"])
    assert final["baseline_ratio"] < 0.5, final
    assert final["wall_s"] > 0 and final["seq_per_s"] == pytest.approx(250 * 32 / final["wall_s"])

    # the reporter saw it: on_start's info, a train/loss window every log_every steps, falling
    assert rec.start["task_length"] == 10 and rec.start["baseline_loss"] == pytest.approx(1 / 6)
    assert rec.start["config"] == summary["config"] and rec.start["parameters"] > 0
    assert [s for s, _ in rec.steps] == list(range(25, 251, 25))
    losses = [m["train/loss"] for _, m in rec.steps]
    assert all(finite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    # no clipping configured: no clipped fraction (a chart of zeros in MLflow)
    assert not any("grad/clipped_fraction" in m for _, m in rec.steps)
    # the validation loss on the probes falls too
    assert summary["probes"][-1]["val_loss"] < 0.5 * summary["probes"][0]["val_loss"]
    # every probe went through the reporter, each followed by one should_stop
    assert [p["step"] for p in rec.probes] == [p["step"] for p in summary["probes"]] == [0, 50, 100, 150, 200, 249]
    assert rec.stop_queries == [0, 50, 100, 150, 200, 249]
    assert [c for c in rec.calls if c in ("probe", "stop?")] == ["probe", "stop?"] * 6


# --- the summary contract for every task ----------------------------------------------------------------

TASK_LENGTH = {"adding": 12, "copy_memory": 12 + 20, "temporal_order": 12, "digits": 64,
               "mackey_glass": 12}


@pytest.mark.parametrize("task", [t.value for t in TaskName])
def test_every_task_follows_the_summary_contract(task):
    cfg = make_cfg(task, seq_len=12, model__layers=2, train__steps=20, train__probe_every=10)
    summary, rec = run(cfg)
    assert json_roundtrip(summary) == summary

    assert {"config", "health", "final", "probes"} <= set(summary)
    assert summary["config"]["task"]["name"] == task and summary["config"]["model"]["layers"] == 2
    assert summary["health"] in HEALTH
    assert summary["status"] == "completed" and summary["steps"] == 20

    final = summary["final"]
    for key in ("test_loss", "baseline_loss", "baseline_ratio", "accuracy", "solved", "steps_to_solve",
                "wall_s", "seq_per_s"):
        assert key in final, key
    assert finite(final["test_loss"]) and finite(final["baseline_loss"]) and final["baseline_loss"] > 0
    assert final["baseline_ratio"] == pytest.approx(final["test_loss"] / final["baseline_loss"])
    if task in REGRESSION:
        assert final["accuracy"] is None
    else:
        assert isinstance(final["accuracy"], float) and 0.0 <= final["accuracy"] <= 1.0
    assert isinstance(final["solved"], bool)
    assert final["steps_to_solve"] is None or isinstance(final["steps_to_solve"], int)
    assert final["solved"] or final["steps_to_solve"] is None or final["steps_to_solve"] <= 20
    assert final["wall_s"] > 0 and final["seq_per_s"] > 0
    if task == "mackey_glass":
        assert finite(final["nrmse"])

    probes = summary["probes"]
    assert [p["step"] for p in probes] == [0, 10, 19]
    length = TASK_LENGTH[task]
    assert rec.start["task_length"] == length
    for p in probes:
        for key in ("step", "grad_h_norms", "vanishing_ratio", "horizon", "global_norm", "clipped",
                    "lambda1", "spectral_radius"):
            assert key in p, key
        assert len(p["grad_h_norms"]) == 2
        assert all(len(layer) == length for layer in p["grad_h_norms"])
        assert all(finite(v) and v >= 0 for layer in p["grad_h_norms"] for v in layer)
        assert p["grad_h_norms"][1][-1] > 0     # the final-step loss reaches h_T of the top layer
        top = p["grad_h_norms"][-1]
        assert p["vanishing_ratio"] == pytest.approx(math.log10(max(top[0], 1e-45) / top[-1]))
        assert isinstance(p["horizon"], int) and 1 <= p["horizon"] <= length
        assert finite(p["global_norm"]) and p["global_norm"] > 0
        assert p["clipped"] is False
        assert len(p["lambda1"]) == 2 and len(p["spectral_radius"]) == 2
        assert all(finite(v) and v > 0 for v in p["lambda1"] + p["spectral_radius"])
        # the spectral radius of a matrix never exceeds its largest singular value
        assert all(r <= l1 * (1 + 1e-6) for r, l1 in zip(p["spectral_radius"], p["lambda1"]))
        assert p["health"] in HEALTH
        assert finite(p["loss"]) and finite(p["val_loss"])
    # per-step metrics arrive every log_every steps
    assert [s for s, _ in rec.steps] == [5, 10, 15, 20]
    assert all(finite(m["train/loss"]) for _, m in rec.steps)


def test_probe_at_step_zero_sees_the_initial_network():
    """The step-0 probe measures the network before any update: its λ1 is the configured init_gain."""
    cfg = make_cfg(model__init=Init.scaled, model__init_gain=0.8, train__lr=0.05, train__steps=12,
                   train__probe_every=6)
    summary, _ = run(cfg)
    first, last = summary["probes"][0], summary["probes"][-1]
    assert first["step"] == 0
    assert first["lambda1"][0] == pytest.approx(0.8, rel=1e-5)
    assert last["lambda1"][0] != pytest.approx(0.8, rel=1e-5)   # training moved W_hh


# --- probe cadence -------------------------------------------------------------------------------------

def test_probe_cadence():
    cfg = make_cfg(train__steps=25, train__probe_every=10, train__log_every=10)
    summary, rec = run(cfg)
    assert [p["step"] for p in summary["probes"]] == [0, 10, 20, 24]
    assert [p["step"] for p in rec.probes] == [0, 10, 20, 24]
    assert rec.stop_queries == [0, 10, 20, 24]
    assert [s for s, _ in rec.steps] == [10, 20]


def test_probe_every_step():
    summary, _ = run(make_cfg(train__steps=4, train__probe_every=1))
    assert [p["step"] for p in summary["probes"]] == [0, 1, 2, 3]


# --- divergence ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", [Activation.relu, Activation.linear])
def test_divergence_is_a_verdict_not_an_exception(activation):
    cfg = make_cfg(seq_len=50, model__activation=activation, model__init=Init.scaled, model__init_gain=5.0,
                   train__optimizer=Optimizer.sgd, train__lr=10.0, train__clip__mode=ClipMode.none,
                   train__steps=30)
    summary, rec = run(cfg)
    assert summary["status"] == "diverged"
    assert summary["health"] == "diverged"
    assert summary["steps"] < cfg.train.steps
    assert summary["probes"] and summary["probes"][-1]["health"] == "diverged"
    assert rec.probes[-1]["health"] == "diverged"
    # no update was counted past the divergence, and the trial ended there
    assert summary["steps"] <= summary["probes"][-1]["step"]
    assert json_roundtrip(summary) == summary


def test_divergence_between_probes_is_measured():
    """A divergence on an ordinary step still ends the trial with a probe of the state it diverged in."""
    cfg = make_cfg(seq_len=50, model__activation=Activation.relu, model__init=Init.scaled,
                   model__init_gain=2.0, train__optimizer=Optimizer.sgd, train__lr=10.0, train__steps=30,
                   train__probe_every=10)
    summary, rec = run(cfg)
    assert summary["status"] == "diverged" and summary["health"] == "diverged"
    last = summary["probes"][-1]
    assert last["step"] % 10 != 0           # not a scheduled probe step
    assert last["health"] == "diverged"
    assert summary["steps"] == last["step"] < 30
    assert len(last["grad_h_norms"][0]) == 50
    # the window of the diverged step was flushed to the reporter
    assert rec.steps and rec.steps[-1][0] == last["step"] + 1
    assert json_roundtrip(summary) == summary


# --- clipping ------------------------------------------------------------------------------------------

def test_clip_norm_tiny_threshold():
    cfg = make_cfg(train__clip__mode=ClipMode.norm, train__clip__threshold=1e-3, train__steps=20,
                   train__log_every=5, train__optimizer=Optimizer.sgd, train__lr=0.1)
    summary, rec = run(cfg)
    assert summary["status"] == "completed"
    for p in summary["probes"]:
        assert p["clipped"] is True
        assert p["global_norm"] > 1e-3       # the norm before clipping is what is recorded
    for _, metrics in rec.steps:
        assert metrics["grad/clipped_fraction"] == 1.0
        assert metrics["grad/global_norm"] > 1e-3
        assert finite(metrics["train/loss"])

    # the clipped SGD step is tiny compared with the unclipped one
    free, _ = run(make_cfg(train__steps=20, train__optimizer=Optimizer.sgd, train__lr=0.1))
    clipped_step = summary["probes"][0]["update_ratio"]["recurrent"]
    free_step = free["probes"][0]["update_ratio"]["recurrent"]
    assert summary["probes"][0]["global_norm"] == pytest.approx(free["probes"][0]["global_norm"], rel=1e-5)
    expected = 1e-3 / summary["probes"][0]["global_norm"]
    assert clipped_step == pytest.approx(free_step * expected, rel=1e-3)


def test_clip_norm_large_threshold_does_not_clip():
    summary, rec = run(make_cfg(train__clip__mode=ClipMode.norm, train__clip__threshold=1e6))
    assert all(p["clipped"] is False for p in summary["probes"])
    assert all(m["grad/clipped_fraction"] == 0.0 for _, m in rec.steps)
    assert all(m["grad/global_norm"] > 0 for _, m in rec.steps)


def test_clip_value():
    cfg = make_cfg(train__clip__mode=ClipMode.value, train__clip__threshold=1e-4, train__steps=20,
                   train__log_every=5, train__probe_every=5)
    summary, rec = run(cfg)
    assert summary["status"] == "completed"
    assert all(p["clipped"] is True and finite(p["global_norm"]) for p in summary["probes"])
    assert all(finite(m["train/loss"]) for _, m in rec.steps)
    # the value mode measures the norm on probe steps; every window here holds one probe
    for _, metrics in rec.steps:
        assert "grad/clipped_fraction" in metrics and 0.0 < metrics["grad/clipped_fraction"] <= 1.0
        assert finite(metrics["grad/global_norm"])

    loose, _ = run(make_cfg(train__clip__mode=ClipMode.value, train__clip__threshold=1e6))
    assert all(p["clipped"] is False for p in loose["probes"])


# --- truncated BPTT ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("task,seq_len,length", [("adding", 20, 20), ("copy_memory", 10, 30)])
def test_tbptt(task, seq_len, length):
    cfg = make_cfg(task, seq_len=seq_len, train__tbptt=5, train__steps=20, train__probe_every=10)
    summary, rec = run(cfg)
    assert summary["status"] == "completed"
    assert finite(summary["final"]["test_loss"])
    assert all(finite(m["train/loss"]) for _, m in rec.steps)
    for p in summary["probes"]:
        assert len(p["grad_h_norms"][0]) == length      # the full, untruncated profile
        assert finite(p["loss"]) and finite(p["global_norm"])
        assert p["grad_h_norms"][0][0] > 0             # the probe reaches the first step

    full, _ = run(make_cfg(task, seq_len=seq_len, train__steps=20, train__probe_every=10))
    # at step 0 the probe sees the same network and batch: the same profile
    (truncated_profile,), (full_profile,) = summary["probes"][0]["grad_h_norms"], full["probes"][0]["grad_h_norms"]
    assert truncated_profile == pytest.approx(full_profile, rel=1e-5)
    # but the truncated gradient trains differently
    assert summary["final"]["test_loss"] != full["final"]["test_loss"]


def test_tbptt_longer_than_the_sequence_is_full_bptt():
    a, _ = run(make_cfg(train__tbptt=100))
    b, _ = run(make_cfg(train__tbptt=0))
    assert a["final"]["test_loss"] == b["final"]["test_loss"]


# --- penalties ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", [Cell.rnn, Cell.gru])
def test_omega_penalty(cell):
    cfg = make_cfg(model__cell=cell, train__penalty__omega=1.0, train__steps=15, train__lr=1e-2)
    summary, rec = run(cfg)
    assert summary["status"] == "completed"
    assert finite(summary["final"]["test_loss"])
    assert all(finite(m["train/loss"]) for _, m in rec.steps)
    plain, _ = run(make_cfg(model__cell=cell, train__steps=15, train__lr=1e-2))
    assert summary["final"]["test_loss"] != plain["final"]["test_loss"]   # Ω changed the updates
    # the probe at step 0 is taken before any update: identical with or without Ω
    # (equal up to float rounding: the two runs read ∂L/∂h_t through different backward calls)
    for got, want in zip(summary["probes"][0]["grad_h_norms"], plain["probes"][0]["grad_h_norms"]):
        assert got == pytest.approx(want, rel=1e-5)


def test_omega_penalty_two_layers():
    summary, _ = run(make_cfg(model__layers=2, train__penalty__omega=0.5, train__steps=10))
    assert summary["status"] == "completed" and finite(summary["final"]["test_loss"])


def test_l2_penalty_shrinks_the_weights():
    base = dict(train__steps=40, train__optimizer=Optimizer.sgd, train__lr=0.1, train__probe_every=39)
    penalized, rec = run(make_cfg(train__penalty__l2=0.5, **base))
    plain, _ = run(make_cfg(**base))
    assert penalized["status"] == "completed" and finite(penalized["final"]["test_loss"])
    assert all(finite(m["train/loss"]) for _, m in rec.steps)
    # same start, and weight decay pulls λ1 of W_hh down
    assert penalized["probes"][0]["lambda1"] == plain["probes"][0]["lambda1"]
    assert penalized["probes"][-1]["lambda1"][0] < 0.9 * plain["probes"][-1]["lambda1"][0]


# --- pruning ----------------------------------------------------------------------------------------------

def test_pruning_through_the_reporter():
    cfg = make_cfg(train__steps=30, train__probe_every=5)
    summary, rec = run(cfg, Recorder(stop_at=2))
    assert summary["status"] == "pruned"
    assert rec.stop_queries == [0, 5]
    assert summary["steps"] == 6 < cfg.train.steps
    assert [p["step"] for p in summary["probes"]] == [0, 5]
    assert summary["health"] in {"healthy", "vanishing", "exploding"}
    assert finite(summary["final"]["test_loss"])
    assert json_roundtrip(summary) == summary


# --- optimizers --------------------------------------------------------------------------------------------

def test_optimizers():
    results = {}
    for opt in Optimizer:
        summary, rec = run(make_cfg(train__optimizer=opt, train__steps=10, train__lr=1e-2, train__log_every=5))
        assert summary["status"] == "completed" and summary["steps"] == 10
        assert finite(summary["final"]["test_loss"])
        assert all(finite(m["train/loss"]) for _, m in rec.steps)
        assert summary["config"]["train"]["optimizer"] == opt.value
        results[opt] = summary["final"]["test_loss"]
    # each optimizer really trains differently
    assert len(set(results.values())) == len(results), results


# --- determinism -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", [Cell.rnn, Cell.lstm])
def test_determinism(cell):
    cfg = make_cfg(model__cell=cell, train__steps=15, train__probe_every=7)
    a, _ = run(cfg)
    b, _ = run(copy.deepcopy(cfg))
    assert a["final"]["test_loss"] == b["final"]["test_loss"]
    assert a["probes"][0] == b["probes"][0]
    assert [p["grad_h_norms"] for p in a["probes"]] == [p["grad_h_norms"] for p in b["probes"]]

    other, _ = run(make_cfg(model__cell=cell, train__steps=15, train__probe_every=7, train__seed=1))
    assert other["final"]["test_loss"] != a["final"]["test_loss"]
    assert other["probes"][0]["grad_h_norms"] != a["probes"][0]["grad_h_norms"]


# --- config errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes,key", [
    (dict(train__lr=-1.0), "train.lr"),
    (dict(train__lr=float("nan")), "train.lr"),
    (dict(model__cell=Cell.lstm, model__activation=Activation.relu), "model.activation"),
    (dict(model__cell=Cell.gru, model__activation=Activation.sigmoid), "model.activation"),
    (dict(model__cell=Cell.lstm, train__penalty__omega=0.1), "train.penalty.omega"),
    (dict(model__cell=Cell.esn, train__penalty__omega=0.1), "train.penalty.omega"),
    (dict(train__penalty__omega=0.1, train__tbptt=5), "train.tbptt"),
    (dict(train__steps=-1), "train.steps"),
    (dict(train__clip__mode=ClipMode.norm, train__clip__threshold=0.0), "train.clip.threshold"),
    (dict(model__init_gain=0.0), "model.init_gain"),
    (dict(model__forget_bias=1.0), "model.forget_bias"),
    (dict(train__probe_every=0), "train.probe_every"),
    (dict(train__probe_loss_gradient=False), "train.probe_loss_gradient"),    # steps > 0 takes it anyway
    (dict(train__steps=0, train__probe_loss_gradient="no"), "train.probe_loss_gradient"),
])
def test_bad_config_raises_config_error(changes, key):
    cfg = make_cfg(**changes)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == key
    assert key in str(err.value)
    # run_trial refuses it before starting anything
    rec = Recorder()
    with pytest.raises(ConfigError) as err2:
        run_trial(cfg, rec)
    assert err2.value.key == key
    assert rec.calls == []


def test_from_dict_names_bad_keys():
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"lr": -1}})
    assert err.value.key == "train.lr"
    with pytest.raises(ConfigError) as err:
        from_dict({"model": {"cell": "transformer"}})
    assert err.value.key == "model.cell"
    with pytest.raises(ConfigError) as err:
        from_dict({"train": {"learning_rate": 0.1}})
    assert err.value.key == "train.learning_rate"
    cfg = from_dict({"task": {"name": "copy_memory", "seq_len": 10}, "model": {"cell": "gru"},
                     "train": {"clip": {"mode": "norm", "threshold": 2.0}}})
    assert cfg.model.cell == Cell.gru and cfg.train.clip.mode == ClipMode.norm
    assert cfg.task.name == TaskName.copy_memory


def test_valid_config_passes_validation():
    cfg = make_cfg()
    assert validate(cfg) is cfg


def test_attention_needs_full_bptt():
    cfg = make_cfg(model__attention=True, train__tbptt=5)
    with pytest.raises(ConfigError, match="train.tbptt"):
        validate(cfg)


@pytest.mark.parametrize("cell", [Cell.rnn, Cell.lstm])
def test_zero_steps_measures_the_network_at_initialization(cell):
    """train.steps=0: one probe at step 0, no update, and the test score is the untrained net's."""
    import torch

    from workers.loop import evaluate
    from workers.trial import build

    cfg = make_cfg(model__cell=cell, train__steps=0)
    summary = run_trial(cfg)
    assert summary["steps"] == 0 and summary["status"] == "completed"
    (probe,) = summary["probes"]
    assert probe["step"] == 0 and probe["update_ratio"] == {}
    assert probe["global_norm"] > 0 and set(probe["group_norms"]) >= {"recurrent", "readout"}
    assert len(probe["grad_h_log10"][0]) == 20 and math.isfinite(probe["vanishing_ratio"])
    assert summary["final"]["seq_per_s"] is None
    task, net = build(cfg, torch.device("cpu"))
    untrained = evaluate(net, task, task.held_out("test", cfg.task.test_size))
    assert summary["final"]["test_loss"] == pytest.approx(untrained["loss"], rel=1e-6)


def test_a_trial_flushes_subnormals_while_it_runs_and_restores_ieee_after():
    """Vanishing gradients are subnormal floats, 3-4x slower on a CPU (bench/bench_subnormals.py):
    inside a trial a result below float32's normal range is 0, after it the process is as before."""
    import torch

    from workers.reporter import Reporter

    tiny = torch.tensor([1e-30], dtype=torch.float32)
    seen = []

    class Look(Reporter):
        def on_start(self, info):
            seen.append((tiny * 1e-9).item())      # 1e-39: subnormal in float32

    run_trial(make_cfg(train__steps=1), Look())
    assert seen == [0.0]
    assert (tiny * 1e-9).item() > 0                # gradual underflow again outside the trial


@pytest.mark.parametrize("changes", [dict(model__cell=Cell.rnn), dict(model__cell=Cell.lstm),
                                     dict(model__cell=Cell.gru, model__layers=2, model__norm=Norm.layer),
                                     dict(task="copy_memory", model__attention=True)])
def test_init_probe_without_the_loss_gradient_measures_the_same_profile(changes):
    """train.probe_loss_gradient=false (train.steps=0 only): the same profile, λ1, verdict, loss and test score as
    with the parameter gradient, without its norms; no backward through the sequence is taken."""
    with_gradient, _ = run(make_cfg(**changes, train__steps=0))
    without, _ = run(make_cfg(**changes, train__steps=0, train__probe_loss_gradient=False))
    (a,), (b,) = with_gradient["probes"], without["probes"]
    assert a["global_norm"] > 0 and b["global_norm"] is None and b["group_norms"] == {} and b["nonfinite"] == 0
    assert b["grad_h_log10"] == a["grad_h_log10"] and b["lambda1"] == a["lambda1"]
    assert b["health"] == a["health"] and b["decay_rate"] == a["decay_rate"]
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)          # the probe's forward, in float32
    assert without["final"]["test_loss"] == pytest.approx(with_gradient["final"]["test_loss"], rel=1e-6)
    calls = []
    from workers import loop

    original = loop.Trainer.backward
    loop.Trainer.backward = lambda self, batch: calls.append(batch) or original(self, batch)
    try:
        run(make_cfg(**changes, train__steps=0, train__probe_loss_gradient=False))
        assert calls == []
        run(make_cfg(**changes, train__steps=0))
        assert len(calls) == 1
    finally:
        loop.Trainer.backward = original


def test_init_probe_without_the_loss_gradient_still_judges_a_nonfinite_loss():
    """The verdict's finite check reads the loss when no gradient norm was taken: a network whose output is not
    finite at initialization is diverged either way."""
    from workers.loop import probe_record

    fields = {"grad_h_log10": [[0.0, -1.0]], "lambda1": [1.0], "spectral_radius": [1.0], "span": 2,
              "loss_gradient": False}
    assert probe_record(0, fields, float("nan"), {"loss": 1.0})["health"] == "diverged"
    assert probe_record(0, fields, 1.0, {"loss": 1.0})["health"] != "diverged"
    assert probe_record(0, dict(fields, loss_gradient=True), 1.0, {"loss": 1.0})["health"] == "diverged"


@pytest.mark.parametrize("activation,seq_len,gain,verdict", [
    (Activation.tanh, 2000, 8.0, "diverged"),      # ‖∂L/∂h_t‖ reaches 10^175: float32's backward overflows
    (Activation.relu, 60, 4.0, "exploding"),       # 10^25: finite entries, a norm float32 cannot hold
])
def test_an_exploding_network_at_initialization_gets_one_verdict_with_or_without_the_loss_gradient(
        activation, seq_len, gain, verdict):
    """The verdict of an exploding network at initialization is the same whether its probe takes the parameter
    gradient or not (train.probe_loss_gradient): diverged where the float32 gradient is Inf (seen from the
    log-space profile when it is not taken), exploding where only its norm passes float32's range (the norms are
    summed in float64, so a finite gradient is not called diverged)."""
    probes = []
    for with_gradient in (True, False):
        summary, _ = run(make_cfg(seq_len=seq_len, model__activation=activation, model__init=Init.scaled,
                                  model__init_gain=gain, train__steps=0, train__probe_loss_gradient=with_gradient))
        probes.append(summary["probes"][-1])
    assert [p["health"] for p in probes] == [verdict, verdict]
    if verdict == "exploding":
        assert 1e19 < probes[0]["global_norm"] < math.inf and probes[0]["group_norms"]["recurrent"] > 1e19
