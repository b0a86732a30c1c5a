"""workers/model/layer.py: one recurrent layer, run by the fused kernel or unrolled step by step over the same
weights. Checked: the shapes of every cell, one step of each cell against the equations worked by hand on set
weights (PyTorch's gate order), the unrolled pass against the fused kernel, and the echo state network's
fixed weights and leak."""
from __future__ import annotations

import math

import pytest
import torch

from workers.config import Activation, Cell
from workers.model.layer import LEAKY_SLOPE, RecurrentLayer

B, T, IN, H = 3, 5, 2, 4


def layer(cell: Cell, activation: Activation = Activation.tanh, input_size: int = IN, hidden: int = H,
          leak: float = 1.0, seed: int = 0) -> RecurrentLayer:
    torch.manual_seed(seed)
    return RecurrentLayer(cell, input_size, hidden, activation, leak)


def inputs(steps: int = T, size: int = IN) -> torch.Tensor:
    return torch.randn(B, steps, size, generator=torch.Generator().manual_seed(7))


def set_weights(lay: RecurrentLayer, w_ih, b_ih, w_hh, b_hh) -> None:
    with torch.no_grad():
        lay.core.weight_ih_l0.copy_(torch.tensor(w_ih))
        lay.core.bias_ih_l0.copy_(torch.tensor(b_ih))
        lay.core.weight_hh_l0.copy_(torch.tensor(w_hh))
        lay.core.bias_hh_l0.copy_(torch.tensor(b_hh))


def sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def one_step(lay: RecurrentLayer, x: list[float], state: tuple[list[float], ...]) -> tuple[torch.Tensor, ...]:
    """The layer's step from a single input vector and state (batch of one)."""
    xp = lay.input_projection(torch.tensor([[x]]))[:, 0]
    return lay.step(xp, tuple(torch.tensor([s]) for s in state))


CELLS = [(Cell.rnn, a) for a in Activation] + [(Cell.lstm, Activation.tanh), (Cell.gru, Activation.tanh),
                                              (Cell.esn, Activation.tanh), (Cell.esn, Activation.relu)]


@pytest.mark.parametrize("cell,activation", CELLS)
def test_shapes_of_every_cell(cell, activation):
    lay = layer(cell, activation)
    gates = {Cell.lstm: 4, Cell.gru: 3}.get(cell, 1)
    assert lay.gates == gates and lay.w_ih.shape == (gates * H, IN) and lay.w_hh.shape == (gates * H, H)
    blocks = lay.recurrent_blocks()
    assert len(blocks) == gates and all(b.shape == (H, H) and not b.requires_grad for b in blocks)
    state = lay.initial_state(B, inputs())
    assert len(state) == (2 if cell == Cell.lstm else 1)
    assert all(s.shape == (B, H) and not s.any() for s in state)
    assert lay.input_projection(inputs()).shape == (B, T, gates * H)
    out, steps, last = lay(inputs())
    assert out.shape == (B, T, H) and steps is None and len(last) == len(state)
    assert torch.equal(last[0], out[:, -1])
    out_u, steps_u, last_u = lay(inputs(), unrolled=True)
    assert len(steps_u) == T and all(h.shape == (B, H) for h in steps_u)
    assert torch.equal(torch.stack(steps_u, 1), out_u) and torch.equal(last_u[0], steps_u[-1])


def test_lstm_initial_cell_state_is_its_own_tensor():
    h, c = layer(Cell.lstm).initial_state(B, inputs())
    c.add_(1.0)
    assert not h.any()


@pytest.mark.parametrize("cell,activation,fused", [
    (Cell.rnn, Activation.tanh, True), (Cell.rnn, Activation.relu, True), (Cell.lstm, Activation.tanh, True),
    (Cell.gru, Activation.tanh, True), (Cell.rnn, Activation.sigmoid, False), (Cell.rnn, Activation.linear, False),
    (Cell.rnn, Activation.leaky_relu, False), (Cell.esn, Activation.tanh, False)])
def test_which_cells_have_a_fused_kernel(cell, activation, fused):
    assert layer(cell, activation).has_fused_kernel is fused


@pytest.mark.parametrize("cell,activation", [(Cell.rnn, Activation.tanh), (Cell.rnn, Activation.relu),
                                             (Cell.lstm, Activation.tanh), (Cell.gru, Activation.tanh)])
def test_unrolled_pass_equals_the_fused_kernel(cell, activation):
    """Same outputs, same last state and same weight gradients from a non-zero initial state."""
    lay, x = layer(cell, activation), inputs()
    start = tuple(torch.randn(B, H, generator=torch.Generator().manual_seed(i)) for i in range(len(
        lay.initial_state(B, x))))
    fused_out, fused_state = lay.fused(x, start)
    out, steps, state = lay(x, start, unrolled=True)
    assert torch.allclose(out, fused_out, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(state, fused_state))
    (g_fused,) = torch.autograd.grad(fused_out.sum(), lay.w_hh)
    (g_unrolled,) = torch.autograd.grad(out.sum(), lay.w_hh)
    assert torch.allclose(g_unrolled, g_fused, atol=1e-4)


def test_rnn_step_by_hand():
    lay = layer(Cell.rnn, input_size=1, hidden=2)
    set_weights(lay, [[0.5], [-1.0]], [0.1, 0.2], [[0.3, 0.0], [0.2, -0.4]], [0.0, -0.1])
    (h,) = one_step(lay, [2.0], ([1.0, 0.5],))
    pre = [0.5 * 2 + 0.1 + 0.3 * 1.0 + 0.0, -1.0 * 2 + 0.2 + 0.2 * 1.0 - 0.4 * 0.5 - 0.1]     # [1.4, -1.9]
    assert h[0].tolist() == pytest.approx([math.tanh(v) for v in pre], abs=1e-6)


@pytest.mark.parametrize("activation,f", [
    (Activation.sigmoid, sig), (Activation.relu, lambda v: max(v, 0.0)),
    (Activation.leaky_relu, lambda v: v if v > 0 else LEAKY_SLOPE * v), (Activation.linear, lambda v: v)])
def test_rnn_activations_by_hand(activation, f):
    lay = layer(Cell.rnn, activation, input_size=1, hidden=2)
    set_weights(lay, [[1.0], [-2.0]], [0.0, 0.0], [[0.5, 0.0], [0.0, 0.5]], [0.0, 0.0])
    (h,) = one_step(lay, [1.5], ([1.0, -1.0],))
    assert h[0].tolist() == pytest.approx([f(1.5 + 0.5), f(-3.0 - 0.5)], abs=1e-6)     # [2, -3.5]
    assert LEAKY_SLOPE == 0.01


def test_lstm_step_by_hand():
    """Gates i, f, g, o in PyTorch's order: c' = σ(f)·c + σ(i)·tanh(g), h' = σ(o)·tanh(c')."""
    lay = layer(Cell.lstm, input_size=1, hidden=1)
    w_ih, b_ih = [[0.5], [-0.3], [0.8], [0.2]], [0.1, 0.2, -0.1, 0.0]
    w_hh, b_hh = [[0.4], [0.6], [-0.5], [0.3]], [0.0, 0.1, 0.0, -0.2]
    set_weights(lay, w_ih, b_ih, w_hh, b_hh)
    x, h, c = 1.5, -0.5, 2.0
    i, f, g, o = (w_ih[k][0] * x + b_ih[k] + w_hh[k][0] * h + b_hh[k] for k in range(4))
    c_new = sig(f) * c + sig(i) * math.tanh(g)
    h_new = sig(o) * math.tanh(c_new)
    got_h, got_c = one_step(lay, [x], ([h], [c]))
    assert got_c.item() == pytest.approx(c_new, abs=1e-6) and got_h.item() == pytest.approx(h_new, abs=1e-6)


def test_gru_step_by_hand():
    """Gates r, z, n: n = tanh(W_in x + b_in + r·(W_hn h + b_hn)), h' = (1 − z)·n + z·h."""
    lay = layer(Cell.gru, input_size=1, hidden=1)
    w_ih, b_ih = [[0.7], [-0.4], [1.1]], [0.1, 0.0, -0.2]
    w_hh, b_hh = [[0.3], [0.9], [-0.6]], [0.05, -0.1, 0.4]
    set_weights(lay, w_ih, b_ih, w_hh, b_hh)
    x, h = -1.2, 0.8
    r = sig(w_ih[0][0] * x + b_ih[0] + w_hh[0][0] * h + b_hh[0])
    z = sig(w_ih[1][0] * x + b_ih[1] + w_hh[1][0] * h + b_hh[1])
    n = math.tanh(w_ih[2][0] * x + b_ih[2] + r * (w_hh[2][0] * h + b_hh[2]))
    (got,) = one_step(lay, [x], ([h],))
    assert got.item() == pytest.approx((1 - z) * n + z * h, abs=1e-6)


def test_esn_is_fixed_and_leaky():
    """h' = (1 − a)·h + a·f(W_in x + W h), no bias, no trainable weight."""
    lay = layer(Cell.esn, input_size=1, hidden=1, leak=0.3)
    assert not any(p.requires_grad for p in lay.parameters())
    assert not lay.core.bias_ih_l0.any() and not lay.core.bias_hh_l0.any()
    with torch.no_grad():
        lay.core.weight_ih_l0.fill_(0.9)
        lay.core.weight_hh_l0.fill_(0.5)
    x, h = 1.0, -0.4
    (got,) = one_step(lay, [x], ([h],))
    assert got.item() == pytest.approx(0.7 * h + 0.3 * math.tanh(0.9 * x + 0.5 * h), abs=1e-6)
    full = layer(Cell.esn, input_size=1, hidden=1, leak=1.0)
    with torch.no_grad():
        full.core.weight_ih_l0.fill_(0.9)
        full.core.weight_hh_l0.fill_(0.5)
    assert one_step(full, [x], ([h],))[0].item() == pytest.approx(math.tanh(0.9 * x + 0.5 * h), abs=1e-6)
