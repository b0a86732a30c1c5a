"""Each cell's transposed one-step Jacobian, for the log-space probe (`workers/gradients/log_profile.py`).

`trajectory(layer, u)` runs a layer over its input sequence u [B, T, I] without an autograd graph and
precomputes, for every step at once, the coefficients of the linear map that takes the adjoint of the
state at step t back one step:

    a_t = ∂L/∂state_t  ↦  (∂L/∂state_{t−1},  ∂L/∂p_t)        p_t = W_ih u_t + b_ih (the projected input)

`back(t, a)` applies it: a few elementwise products and one product with W_hh, the whole per-step cost of
the reverse pass. The state adjoint is one tensor [B, S]: S = H, or 2H for lstm ([∂L/∂h | ∂L/∂c]).
Every tensor is time-major ([T, B, ·], contiguous), so step t is one contiguous slice.

The states come from the fused kernel where one exists (nn.RNN tanh/relu, nn.LSTM, nn.GRU: the same
equations as `RecurrentLayer.step`); the gates are then recomputed for all steps with one matrix product.

Derivatives (⊙ elementwise; W = W_hh with its gate blocks; pre = p_t + W h_{t−1} + b_hh):
- rnn / esn, h_t = (1−λ) h_{t−1} + λ f(pre):        ∂pre = λ f′(pre) ⊙ a;   a_{t−1} = (1−λ) a + ∂pre W
  (λ = model.leak for esn, 1 otherwise).
- lstm, c_t = f⊙c_{t−1} + i⊙g, h_t = o⊙tanh(c_t), a = [a_h | a_c]:
      dc = a_c + a_h ⊙ o ⊙ (1 − tanh² c_t)
      ∂pre = [dc⊙g⊙i(1−i), dc⊙c_{t−1}⊙f(1−f), dc⊙i⊙(1−g²), a_h⊙tanh(c_t)⊙o(1−o)]   (gates i, f, g, o)
      a_{t−1} = [∂pre W | dc ⊙ f]
- gru, n = tanh(p_n + r⊙(W_n h + b_n)), h_t = (1−z)⊙n + z⊙h_{t−1}:
      ∂n_pre = (1−z)(1−n²) ⊙ a,  ∂r_pre = ∂n_pre ⊙ (W_n h + b_n) ⊙ r(1−r),  ∂z_pre = (h_{t−1} − n) ⊙ z(1−z) ⊙ a
      a_{t−1} = z⊙a + [∂r_pre, ∂z_pre, ∂n_pre⊙r] W;   ∂p = [∂r_pre, ∂z_pre, ∂n_pre]
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.nn import functional as F

from workers.config import Activation, Cell
from workers.model.layer import LEAKY_SLOPE, RecurrentLayer


def _derivative(activation: Activation, pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """f′(pre), given out = f(pre)."""
    if activation == Activation.tanh:
        return 1 - out * out
    if activation == Activation.sigmoid:
        return out * (1 - out)
    if activation == Activation.relu:
        return (pre > 0).to(pre.dtype)
    if activation == Activation.leaky_relu:
        return torch.where(pre > 0, torch.ones_like(pre), torch.full_like(pre, LEAKY_SLOPE))   # pre's dtype
    return torch.ones_like(pre)


def _shifted(seq: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
    """Steps t0−1 .. t1−2 of a time-major sequence [T, B, ·] whose step −1 is zero: the previous states."""
    if t0 > 0:
        return seq[t0 - 1:t1 - 1]
    return torch.cat([seq.new_zeros(1, *seq.shape[1:]), seq[:t1 - 1]])


class Trajectory:
    """One layer's run over one input sequence, ready to be walked backwards.

    The coefficients of every step are computed at construction, CHUNK steps at a time (vectorized, so
    the temporaries stay small) and kept: O(T·B·H) memory, a few numbers per hidden unit and step.
    """

    CHUNK = 64      # steps at a time: a chunk's temporaries stay in cache (lstm, gru ~5 % faster than at 256)
    state_size: int         # S, the width of the state adjoint
    outputs: torch.Tensor   # h_1..h_T, [B, T, H] (batch-first, as the layer above reads them)

    def __init__(self, layer: RecurrentLayer, u: torch.Tensor):
        self.layer, self.hidden = layer, layer.hidden_size
        self.w_hh = layer.w_hh.detach()
        self.w_ih = layer.w_ih.detach()
        self.outputs = layer(u)[0]          # h_1..h_T from a zero state, by the fused kernel where one exists
        self.h = self.outputs.transpose(0, 1)                                 # [T, B, H], a view
        self.steps = self.h.shape[0]

    def projections(self, u: torch.Tensor, t0: int, t1: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(p_t, W_hh h_{t−1} + b_hh) for t in [t0, t1), time-major."""
        xp = self.layer.input_projection(u[:, t0:t1]).transpose(0, 1)
        hp = F.linear(_shifted(self.h, t0, t1), self.w_hh, self.layer.core.bias_hh_l0.detach())
        return xp, hp

    def chunks(self):
        for t0 in range(0, self.steps, self.CHUNK):
            yield t0, min(t0 + self.CHUNK, self.steps)

    def back(self, t: int, a: torch.Tensor, want_input: bool) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(adjoint of the state at t − 1, adjoint of p_t — where `want_input`, else it may be None),
        both linear in `a`."""
        raise NotImplementedError

    def hidden_part(self, a: torch.Tensor) -> torch.Tensor:
        """The ∂L/∂h part of a state adjoint (or of a stack of them)."""
        return a


class SimpleTrajectory(Trajectory):
    def __init__(self, layer: RecurrentLayer, u: torch.Tensor):
        super().__init__(layer, u)
        self.state_size = self.hidden
        self.leak = layer.leak if layer.cell == Cell.esn else 1.0
        self.gain = torch.empty_like(self.h)
        for t0, t1 in self.chunks():
            if self.leak == 1.0:        # h_t = f(pre) itself, and f′(pre) follows from it: no projection needed
                h = self.h[t0:t1]       # (relu's and leaky relu's pre > 0 exactly where h > 0)
                self.gain[t0:t1] = _derivative(layer.activation, h, h)
                continue
            xp, hp = self.projections(u, t0, t1)
            pre = xp.add_(hp)           # h_t = (1−λ) h_{t−1} + λ f(pre)
            torch.mul(_derivative(layer.activation, pre, layer.f(pre)), self.leak, out=self.gain[t0:t1])
        self.gains = self.gain.unbind(0)        # step t's coefficients as a list: no indexing op per step

    def back(self, t, a, want_input):
        grad_pre = a * self.gains[t]
        prev = grad_pre @ self.w_hh
        if self.leak != 1.0:
            prev = prev + (1 - self.leak) * a
        return prev, grad_pre


class LSTMTrajectory(Trajectory):
    def __init__(self, layer: RecurrentLayer, u: torch.Tensor):
        super().__init__(layer, u)
        H = self.hidden
        self.state_size = 2 * H
        self.carry = torch.empty_like(self.h)                                # ∂c_t/∂c_{t−1} = f
        self.cell_gain = torch.empty_like(self.h)                            # ∂h_t/∂c_t
        self.gates = self.h.new_empty(self.steps, self.h.shape[1], 4 * H)   # onto W_hh's and W_ih's blocks
        cells = self.h.new_zeros(self.CHUNK + 1, *self.h.shape[1:])         # c_{t0−1} .. c_{t1−1}
        for t0, t1 in self.chunks():
            n = t1 - t0
            xp, hp = self.projections(u, t0, t1)
            pre = xp.add_(hp)
            pre[..., 2 * H:3 * H] *= 2
            act = pre.sigmoid_()                    # i, f, o; and g = tanh(x) = 2σ(2x) − 1
            i, f, o = act[..., :H], act[..., H:2 * H], act[..., 3 * H:]
            g = act[..., 2 * H:3 * H].mul_(2).sub_(1)
            ig = i * g
            for k in range(n):                      # c_t = f ⊙ c_{t−1} + i ⊙ g: one op per step
                torch.addcmul(ig[k], f[k], cells[k], out=cells[k + 1])
            c_prev, c_now = cells[:n], cells[1:n + 1]
            tc = torch.tanh(c_now)
            # each block's coefficient contiguous, then one copy into the step-major gates (strided writes
            # into four column blocks cost more than the copy); σ′ = σ(1 − σ) only where it is used
            blocks = [i * (1 - i) * g, f * (1 - f) * c_prev, i * (1 - g * g), o * (1 - o) * tc]
            torch.cat(blocks, -1, out=self.gates[t0:t1])
            self.carry[t0:t1] = f
            torch.mul(o, 1 - tc * tc, out=self.cell_gain[t0:t1])
            cells[0] = cells[n]
        self.steps_of = list(zip(self.cell_gain.unbind(0), self.gates.unbind(0), self.carry.unbind(0)))

    def back(self, t, a, want_input):
        cell_gain, gates, carry = self.steps_of[t]
        a_h, a_c = a.split(self.hidden, 1)
        dc = torch.addcmul(a_c, cell_gain, a_h)
        grad_pre = torch.cat([dc, dc, dc, a_h], 1).mul_(gates)
        return torch.cat([grad_pre @ self.w_hh, dc * carry], 1), grad_pre

    def hidden_part(self, a):
        return a[..., :self.hidden]


class GRUTrajectory(Trajectory):
    def __init__(self, layer: RecurrentLayer, u: torch.Tensor):
        super().__init__(layer, u)
        H = self.hidden
        self.state_size = H
        self.keep = torch.empty_like(self.h)                                         # z
        self.hidden_gates = self.h.new_empty(self.steps, self.h.shape[1], 3 * H)    # onto W_hh's blocks
        self.new_gain = torch.empty_like(self.h)              # ∂h_t/∂(n's pre-activation), onto p_t's n block
        for t0, t1 in self.chunks():
            xp, hp = self.projections(u, t0, t1)
            r = torch.sigmoid(xp[..., :H] + hp[..., :H])
            z = torch.sigmoid(xp[..., H:2 * H] + hp[..., H:2 * H])
            n = torch.tanh(xp[..., 2 * H:] + r * hp[..., 2 * H:])
            k_n = (1 - z) * (1 - n * n)
            k_r = k_n * hp[..., 2 * H:] * r * (1 - r)
            k_z = (_shifted(self.h, t0, t1) - n) * z * (1 - z)
            self.keep[t0:t1] = z
            self.new_gain[t0:t1] = k_n
            torch.cat([k_r, k_z, k_n * r], -1, out=self.hidden_gates[t0:t1])
        self.steps_of = list(zip(self.hidden_gates.unbind(0), self.keep.unbind(0), self.new_gain.unbind(0)))

    def back(self, t, a, want_input):
        hidden_gates, keep, new_gain = self.steps_of[t]
        grad_hidden = a.repeat(1, 3).mul_(hidden_gates)
        prev = torch.addmm(a * keep, grad_hidden, self.w_hh)
        if not want_input:
            return prev, None
        H = self.hidden   # p_t's r and z blocks get what W_hh's do; its n block is not gated by r
        return prev, torch.cat([grad_hidden[:, :2 * H], a * new_gain], 1)


def trajectory(layer: RecurrentLayer, u: torch.Tensor) -> Trajectory:
    """The layer run over u [B, T, I] (no autograd graph), ready for `back(t, a)` from t = T − 1 down."""
    with torch.no_grad():
        if layer.cell == Cell.lstm:
            return LSTMTrajectory(layer, u)
        if layer.cell == Cell.gru:
            return GRUTrajectory(layer, u)
        return SimpleTrajectory(layer, u)
