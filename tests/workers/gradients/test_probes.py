"""The gradient probes are exact, obey Pascanu et al. (2013)'s bound, and their verdicts follow the rule."""
import copy
import math

import pytest
import torch
from torch import nn

from workers.config import Activation, Cell, Device, Init, ModelConfig, Norm, TaskConfig, TaskName, TrialConfig
from workers.gradients import health, probes
from workers.gradients.log_profile import log_profile
from workers.model.network import RecurrentNet
from workers.tasks import Batch, make_task
from workers.trial import run_trial

REFERENCE_CELLS = {Cell.rnn: nn.RNNCell, Cell.lstm: nn.LSTMCell, Cell.gru: nn.GRUCell}


def reference_profile(net: RecurrentNet, x: torch.Tensor, y: torch.Tensor) -> list[list[float]]:
    """‖∂L_T/∂h_t‖ by an independent implementation: torch's *Cell modules with copied weights, a
    Python loop and retain_grad on every state, then one ordinary backward of the last step's MSE."""
    hs_all, inp = [], x
    for layer in net.layers:
        ref = REFERENCE_CELLS[layer.cell](layer.core.input_size, layer.hidden_size,
                                          **({"nonlinearity": layer.activation.value}
                                             if layer.cell == Cell.rnn else {})).to(x.dtype)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name).data.copy_(getattr(layer.core, name + "_l0").data)
        h = torch.zeros(x.shape[0], layer.hidden_size, dtype=x.dtype)
        c = torch.zeros_like(h)
        hs = []
        for t in range(inp.shape[1]):
            if layer.cell == Cell.lstm:
                h, c = ref(inp[:, t], (h, c))
            else:
                h = ref(inp[:, t], h)
            h.retain_grad()
            hs.append(h)
        hs_all.append(hs)
        inp = torch.stack(hs, 1)
    pred = net.readout(hs_all[-1][-1]).squeeze(-1)
    ((pred - y) ** 2).mean().backward()
    return [[h.grad.norm().item() for h in hs] for hs in hs_all]


def log10_or_none(values: list[float]) -> list[float | None]:
    return [math.log10(v) if v > 1e-300 else None for v in values]


def assert_log_close(got: list[list[float]], want: list[list[float | None]], tol: float = 1e-4) -> int:
    """|got − want| ≤ tol (log10) wherever the reference did not underflow; returns how many were compared."""
    compared = 0
    assert len(got) == len(want)
    for g_layer, w_layer in zip(got, want):
        assert len(g_layer) == len(w_layer)
        for t, (g, w) in enumerate(zip(g_layer, w_layer)):
            if w is not None:
                assert abs(g - w) <= tol, (t, g, w)
                compared += 1
    return compared


def autograd_reference(net: RecurrentNet, task, batch) -> list[list[float | None]]:
    """log10 ‖∂L_T/∂h_t‖ by plain float64 autograd over the unrolled graph (None where it underflowed)."""
    net64 = copy.deepcopy(net).double()
    y = batch.y.double() if batch.y.is_floating_point() else batch.y
    out = net64(batch.x.double(), unrolled=True)
    flat = [h for layer in out.hs for h in layer]
    grads = torch.autograd.grad(task.final_step_loss(out.out, y), flat, allow_unused=True)
    norms = [g.norm().item() if g is not None else 0.0 for g in grads]
    steps = len(out.hs[0])
    return [log10_or_none(norms[i * steps:(i + 1) * steps]) for i in range(len(out.hs))]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell,activation", [(Cell.rnn, Activation.tanh), (Cell.rnn, Activation.relu),
                                             (Cell.lstm, Activation.tanh), (Cell.gru, Activation.tanh)])
@pytest.mark.parametrize("layers", [1, 2])
def test_log_profile_equals_an_independent_float64_reference(cell, activation, layers, dtype):
    cfg = ModelConfig(cell=cell, activation=activation, hidden_size=12, layers=layers,
                      init=Init.orthogonal, init_gain=1.1)
    net = RecurrentNet(cfg, input_size=2, output_size=1, per_step=False, seed=3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 15, 2, generator=g), torch.randn(5, generator=g)

    measured = log_profile(net, make_task(TaskConfig(seq_len=15), 0), Batch(x, y), dtype)
    expected = [log10_or_none(p) for p in reference_profile(net.double(), x.double(), y.double())]

    assert assert_log_close(measured, expected) == 15 * layers
    # the profile is not flat: the probe sees the recurrence, not just the direct path
    assert abs(measured[-1][0] - measured[-1][-1]) > 1e-2


@pytest.mark.parametrize("task,seq_len,extra", [
    ("adding", 60, {"cell": Cell.rnn, "layers": 2, "residual": True}),
    ("adding", 60, {"cell": Cell.lstm, "layers": 2, "attention": True}),
    ("adding", 60, {"cell": Cell.gru, "layers": 3, "residual": True, "norm": Norm.layer}),
    ("adding", 60, {"cell": Cell.rnn, "layers": 2, "norm": Norm.batch}),
    ("adding", 60, {"cell": Cell.esn, "leak": 0.5}),
    ("adding", 60, {"cell": Cell.rnn, "activation": Activation.sigmoid}),
    ("copy_memory", 30, {"cell": Cell.lstm, "layers": 2, "attention": True, "norm": Norm.layer}),
    ("temporal_order", 60, {"cell": Cell.gru, "layers": 2, "norm": Norm.batch, "residual": True}),
    ("mackey_glass", 60, {"cell": Cell.rnn, "layers": 2, "attention": True, "residual": True}),
])
def test_log_profile_equals_float64_autograd_for_every_architecture(task, seq_len, extra):
    cfg = TrialConfig(task=TaskConfig(name=TaskName(task), seq_len=seq_len), model=ModelConfig(**extra))
    t = make_task(cfg.task, 0)
    net = RecurrentNet(cfg.model, t.input_size, t.output_size, t.per_step, seed=1)
    batch = t.batch(8, torch.Generator().manual_seed(2))
    want = autograd_reference(net, t, batch)
    assert assert_log_close(log_profile(net, t, batch, torch.float64), want, tol=1e-9) >= seq_len
    assert assert_log_close(log_profile(net, t, batch, torch.float32), want, tol=1e-4) >= seq_len


def test_the_log_profile_is_exact_far_below_float64_where_autograd_underflows():
    """A tanh RNN with λ1 = 0.5 at T = 2000: float64 autograd underflows to 0 within a few hundred steps,
    the log profile stays finite and obeys Pascanu et al.'s bound (T−1)·log10(λ1·γ) ≈ −602."""
    steps, lam = 2000, 0.5
    cfg = TrialConfig(task=TaskConfig(seq_len=steps),
                      model=ModelConfig(init=Init.scaled, init_gain=lam, hidden_size=32))
    cfg.train.steps, cfg.train.device = 0, Device.cpu
    probe = run_trial(cfg)["probes"][0]
    log10 = probe["grad_h_log10"][0]
    assert all(math.isfinite(v) for v in log10)
    bound = (steps - 1) * math.log10(lam * 1.0)
    assert bound == pytest.approx(-602.0, abs=0.5)
    assert probe["vanishing_ratio"] <= bound + 1e-6
    assert math.isfinite(probe["vanishing_ratio"])
    assert probe["grad_h_norms"][0][0] == 0.0          # the plain norm is below the float range
    assert probe["decay_rate"] <= math.log10(lam) + 1e-6
    assert probe["health"] == "vanishing"


def test_each_step_of_the_walk_keeps_its_own_scale_across_the_float32_range():
    """Linear units and W_hh = c·I with c = 1e-9: each step back multiplies ∂L/∂h by exactly c, 99 decades over
    T = 12, far outside float32's range, the mantissa renormalized every other step. The walk sums every step's
    scale from its divisors after the loop: each step must get exactly the divisors applied before it (an
    off-by-one there shifts every other step by 9 decades)."""
    steps, c = 12, 1e-9
    cfg = ModelConfig(cell=Cell.rnn, activation=Activation.linear, hidden_size=4)
    net = RecurrentNet(cfg, input_size=2, output_size=1, per_step=False, seed=3)
    with torch.no_grad():
        net.layers[0].core.weight_hh_l0.copy_(c * torch.eye(4))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, steps, 2, generator=g), torch.randn(3, generator=g)
    (profile,) = log_profile(net, make_task(TaskConfig(seq_len=steps), 0), Batch(x, y), torch.float32)
    rises = [profile[t + 1] - profile[t] for t in range(steps - 1)]
    assert rises == pytest.approx([-math.log10(c)] * (steps - 1), abs=1e-4), rises


def test_at_t1000_inits_and_cells_are_told_apart():
    """The comparison a study exists for: at T = 1000 xavier, orthogonal and an LSTM no longer share the
    float32 floor (−44.2) but give clearly different ratios."""
    ratios = {}
    for name, model in {"xavier": ModelConfig(init=Init.xavier_uniform),
                        "orthogonal": ModelConfig(init=Init.orthogonal),
                        "lstm": ModelConfig(cell=Cell.lstm)}.items():
        cfg = TrialConfig(task=TaskConfig(seq_len=1000), model=model)
        cfg.train.steps, cfg.train.device, cfg.train.batch_size = 0, Device.cpu, 16
        probe = run_trial(cfg)["probes"][0]
        assert probe["vanishing_ratio"] is not None and math.isfinite(probe["vanishing_ratio"])
        ratios[name] = probe["vanishing_ratio"]
    values = sorted(ratios.values())
    assert all(b - a > 5.0 for a, b in zip(values, values[1:])), ratios
    assert all(r < -44.2 or r > -44.0 for r in values)


def test_fused_output_gradient_misses_the_recurrent_path():
    """Why the unrolled pass exists: the gradient w.r.t. the fused kernel's outputs is the direct path."""
    cfg = ModelConfig(cell=Cell.rnn, hidden_size=8, init=Init.orthogonal)
    net = RecurrentNet(cfg, 2, 1, per_step=False, seed=0)
    x, y = torch.randn(4, 10, 2), torch.randn(4)
    outputs, _ = net.layers[0].fused(x, net.layers[0].initial_state(4, x))
    outputs.retain_grad()
    ((net.readout(outputs[:, -1]).squeeze(-1) - y) ** 2).mean().backward()
    direct = outputs.grad[:, 0].norm().item()
    exact = reference_profile(net, x, y)[0][0]
    assert direct == 0.0 and exact > 0.0


@pytest.mark.parametrize("activation,gamma", [(Activation.tanh, 1.0), (Activation.sigmoid, 0.25)])
@pytest.mark.parametrize("contraction", [0.5, 0.9])
def test_pascanu_bound_at_initialization(activation, gamma, contraction):
    """λ1·γ < 1 ⇒ ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ ≤ (λ1·γ)^(T−1) (Pascanu, Mikolov & Bengio 2013, §2.1)."""
    lam = contraction / gamma
    steps = 40
    cfg = TrialConfig()
    cfg.task.seq_len = steps
    cfg.model.cell, cfg.model.activation = Cell.rnn, activation
    cfg.model.init, cfg.model.init_gain, cfg.model.hidden_size = Init.scaled, lam, 32
    cfg.train.steps, cfg.train.device = 1, cfg.train.device.cpu
    probe = run_trial(cfg)["probes"][0]
    assert probe["step"] == 0
    assert probe["lambda1"][0] == pytest.approx(lam, rel=1e-5)
    log10 = probe["grad_h_log10"][0]
    step_bound = math.log10(lam * gamma)
    assert log10[0] - log10[-1] <= (steps - 1) * step_bound + 1e-4
    # and step by step: each step back shrinks the gradient by at least λ1·γ
    for later, earlier in zip(log10[1:], log10[:-1]):
        assert earlier <= later + step_bound + 1e-4


def test_ratio_horizon_and_decay_rate_from_a_log_profile():
    log10 = [-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0]
    assert probes.vanishing_ratio(log10) == pytest.approx(-6.0)
    assert probes.horizon(log10) == 4              # 0, −1, −2, −3 are within 3 decades of the last
    assert probes.decay_rate(log10) == pytest.approx(-1.0)   # one decade per step back
    assert probes.decay_rate(log10) * (len(log10) - 1) == pytest.approx(probes.vanishing_ratio(log10))
    assert probes.horizon([0.7, 0.6, 0.5]) == 3    # never drops: the whole length
    assert probes.vanishing_ratio([2.0, 0.0]) == pytest.approx(2.0)
    assert probes.decay_rate([2.0, 0.0]) == pytest.approx(2.0)
    assert probes.vanishing_ratio([-math.inf, 0.0]) is None        # an exactly zero gradient at t = 1
    assert probes.decay_rate([-math.inf, -1.0, 0.0]) == pytest.approx(-1.0)   # left out of the fit
    assert probes.vanishing_ratio([math.nan, 1.0]) is None
    assert probes.horizon([1.0, math.inf]) is None
    assert probes.decay_rate([0.0]) is None
    assert probes.norms_from_log10([-400.0, 0.0, 2.0, 400.0]) == [0.0, 1.0, 100.0, math.inf]
    assert probes.profile_finite([[-math.inf, 0.0]]) and not probes.profile_finite([[math.nan, 0.0]])


def test_span_ratio_reads_the_last_span_steps_of_the_profile():
    log10 = [-6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0]
    assert probes.span_ratio(log10, 3) == pytest.approx(-2.0)          # g_5 against g_7
    assert probes.span_ratio(log10, 1) == pytest.approx(0.0)
    assert probes.span_ratio(log10, 7) == probes.vanishing_ratio(log10)
    assert probes.span_ratio(log10, 70) == probes.vanishing_ratio(log10)   # capped at T
    assert probes.span_ratio([-math.inf, -1.0, 0.0], 2) == pytest.approx(-1.0)   # a zero outside the span
    assert probes.span_ratio([0.0, -math.inf, 0.0], 2) is None


def orthogonal_tanh(task: TaskName, seq_len: int) -> TrialConfig:
    """The review's example: an orthogonal tanh RNN (λ1 = 1) at initialization decays ≈ −0.033 decades per
    step back at any T."""
    cfg = TrialConfig()
    cfg.task.name, cfg.task.seq_len, cfg.task.val_size, cfg.task.test_size = task, seq_len, 32, 32
    cfg.model.cell, cfg.model.activation, cfg.model.init = Cell.rnn, Activation.tanh, Init.orthogonal
    cfg.train.steps, cfg.train.device = 0, Device.cpu
    return cfg


def test_the_verdict_judges_the_task_span_not_the_whole_sequence():
    """Mackey-Glass at T = 300 is judged over its span 3τ = 51: healthy, though the whole-sequence ratio is
    far below −3; the adding problem's span is T, so at T = 100 the same net is vanishing on both."""
    mg = run_trial(orthogonal_tanh(TaskName.mackey_glass, 300))
    probe = mg["probes"][0]
    assert mg["health_span"] == probe["span"] == 51
    assert probe["vanishing_ratio"] <= -3 and -3 < probe["span_ratio"] < 0
    assert probe["span_ratio"] == pytest.approx(probe["grad_h_log10"][-1][300 - 51] - probe["grad_h_log10"][-1][-1],
                                                abs=1e-5)
    assert probe["health"] == mg["health"] == "healthy"
    adding = run_trial(orthogonal_tanh(TaskName.adding, 100))
    probe = adding["probes"][0]
    assert adding["health_span"] == probe["span"] == 100
    assert probe["span_ratio"] == probe["vanishing_ratio"] <= -3
    assert probe["health"] == adding["health"] == "vanishing"
    # the T-free decay rate is alike on both: only the span tells them apart
    assert mg["probes"][0]["decay_rate"] == pytest.approx(probe["decay_rate"], abs=0.01)


@pytest.mark.parametrize("ratio,nonfinite,finite,verdict", [
    (-3.5, 0, True, "vanishing"), (-2.9, 0, True, "healthy"), (0.0, 0, True, "healthy"),
    (3.0, 0, True, "exploding"), (0.0, 1, True, "diverged"), (0.0, 0, False, "diverged"),
    (None, 0, True, "vanishing")])
def test_probe_verdict_rule(ratio, nonfinite, finite, verdict):
    assert health.probe_verdict(ratio, nonfinite, finite) == verdict


def test_trial_verdict_is_the_majority_with_ties_to_the_more_severe():
    assert health.trial_verdict(["healthy", "vanishing", "vanishing"], False) == "vanishing"
    assert health.trial_verdict(["healthy", "exploding"], False) == "exploding"
    assert health.trial_verdict(["healthy", "healthy"], True) == "diverged"
    assert health.trial_verdict(["healthy", "diverged", "healthy"], False) == "diverged"


def test_small_and_large_recurrent_scale_give_vanishing_and_exploding():
    """The picture a wrec_scale study draws: small λ1 vanishes, large λ1 (linear units) explodes."""
    verdicts = {}
    for gain in (0.3, 3.0):
        cfg = TrialConfig()
        cfg.model.activation, cfg.model.init, cfg.model.init_gain = Activation.linear, Init.scaled, gain
        cfg.train.steps, cfg.train.device = 1, cfg.train.device.cpu
        verdicts[gain] = run_trial(cfg)["probes"][0]["health"]
    assert verdicts == {0.3: "vanishing", 3.0: "exploding"}


def test_an_overflowing_profile_with_a_finite_loss_is_exploding():
    assert health.probe_verdict(None, 0, True, profile_finite=False) == "exploding"
    assert health.probe_verdict(None, 1, True, profile_finite=False) == "diverged"


def test_a_float64_probe_uses_float64_constants():
    """leaky_relu's slope 0.01 built as a float32 constant is 0.0099999998: over 40 steps of a leaky net
    that is a 1e-8 error in log10, far above float64's rounding; the walk agrees with float64 autograd
    to 1e-12 only when every constant is float64."""
    cfg = ModelConfig(cell=Cell.rnn, activation=Activation.leaky_relu, hidden_size=16, init=Init.orthogonal,
                      init_gain=1.0)
    net = RecurrentNet(cfg, input_size=2, output_size=1, per_step=False, seed=1).double()
    task = make_task(TaskConfig(seq_len=40), 0)
    g = torch.Generator().manual_seed(2)
    # inputs shifted by -1: many negative pre-activations
    batch = Batch(torch.randn(4, 40, 2, generator=g) - 1.0, torch.randn(4, generator=g))
    want = autograd_reference(net, task, batch)
    assert assert_log_close(log_profile(net, task, batch, torch.float64), want, tol=1e-12) == 40
