"""The gradient probes are exact, obey Pascanu et al. (2013)'s bound, and their verdicts follow the rule."""
import math

import pytest
import torch
from torch import nn

from workers import health, probes
from workers.config import Activation, Cell, Init, ModelConfig, TrialConfig
from workers.model.network import RecurrentNet
from workers.trial import run_trial

REFERENCE_CELLS = {Cell.rnn: nn.RNNCell, Cell.lstm: nn.LSTMCell, Cell.gru: nn.GRUCell}


def reference_profile(net: RecurrentNet, x: torch.Tensor, y: torch.Tensor) -> list[list[float]]:
    """‖∂L_T/∂h_t‖ by an independent implementation: torch's *Cell modules with copied weights, a
    Python loop and retain_grad on every state, then one ordinary backward of the last step's MSE."""
    hs_all, inp = [], x
    for layer in net.layers:
        ref = REFERENCE_CELLS[layer.cell](layer.core.input_size, layer.hidden_size,
                                          **({"nonlinearity": layer.activation.value}
                                             if layer.cell == Cell.rnn else {}))
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name).data.copy_(getattr(layer.core, name + "_l0").data)
        h = torch.zeros(x.shape[0], layer.hidden_size)
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


@pytest.mark.parametrize("cell,activation", [(Cell.rnn, Activation.tanh), (Cell.rnn, Activation.relu),
                                             (Cell.lstm, Activation.tanh), (Cell.gru, Activation.tanh)])
@pytest.mark.parametrize("layers", [1, 2])
def test_probe_equals_independent_unrolled_reference(cell, activation, layers):
    cfg = ModelConfig(cell=cell, activation=activation, hidden_size=12, layers=layers,
                      init=Init.orthogonal, init_gain=1.1)
    net = RecurrentNet(cfg, input_size=2, output_size=1, per_step=False, seed=3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 15, 2, generator=g), torch.randn(5, generator=g)

    out = net(x, unrolled=True)
    loss_final = ((out.out[:, -1, 0] - y) ** 2).mean()
    measured = probes.hidden_gradient_norms(loss_final, out.hs)
    expected = reference_profile(net, x, y)

    assert len(measured) == layers and all(len(p) == 15 for p in measured)
    for got, want in zip(measured, expected):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-10)
    # the profile is not flat: the probe sees the recurrence, not just the direct path
    assert measured[-1][0] != pytest.approx(measured[-1][-1], rel=1e-2)


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
    profile = probe["grad_h_norms"][0]
    bound = (lam * gamma) ** (steps - 1)
    assert profile[0] / profile[-1] <= bound * (1 + 1e-3)
    # and step by step: each step back shrinks the gradient by at least λ1·γ
    for later, earlier in zip(profile[1:], profile[:-1]):
        assert earlier <= later * lam * gamma * (1 + 1e-3)


def test_vanishing_ratio_and_horizon_from_a_profile():
    profile = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert probes.vanishing_ratio(profile) == pytest.approx(-6.0)
    assert probes.horizon(profile) == 4            # 1, .1, .01, .001 are ≥ 1e-3 of the last
    assert probes.horizon([5.0, 4.0, 3.0]) == 3    # never drops: the whole length
    assert probes.vanishing_ratio([100.0, 1.0]) == pytest.approx(2.0)
    assert probes.vanishing_ratio([0.0, 1.0]) == pytest.approx(math.log10(probes.UNDERFLOW))
    assert probes.vanishing_ratio([math.nan, 1.0]) is None
    assert probes.horizon([1.0, math.inf]) is None


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
