"""One recurrent layer that runs two ways with the same weights.

`fused()` calls PyTorch's fused kernel (cuDNN / oneDNN) for ordinary training steps. `unrolled()` runs the
same equations one step at a time in Python and returns every hidden state h_t as its own autograd node
(for Pascanu's Ω penalty, for cells without a fused kernel, and as the autograd reference of the tests;
the fused kernels only expose the top layer's outputs, whose gradient is the direct path alone). The
gradient probes walk the cells' one-step Jacobians instead (`workers/model/jacobians.py`). The weights
always live in an `nn.RNN` / `nn.LSTM` / `nn.GRU` module, so every path reads the very same tensors.

Cells (PyTorch's own equations, gates in PyTorch's order):
- rnn:  h' = f(W_ih x + b_ih + W_hh h + b_hh), f = model.activation
- lstm: i, f, g, o = σ, σ, tanh, σ of (W_ih x + b_ih + W_hh h + b_hh); c' = f⊙c + i⊙g; h' = o⊙tanh(c')
- gru:  r, z = σ(...), n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn)); h' = (1 − z)⊙n + z⊙h
- esn:  h' = (1 − a) h + a f(W_in x + b + W h), with W, W_in, b fixed (Jaeger 2001); only the readout learns.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from workers.config import Activation, Cell

LEAKY_SLOPE = 0.01   # leaky_relu's slope for negative inputs

ACTIVATIONS = {
    Activation.tanh: torch.tanh,
    Activation.sigmoid: torch.sigmoid,
    Activation.relu: torch.relu,
    Activation.leaky_relu: lambda v: F.leaky_relu(v, LEAKY_SLOPE),
    Activation.linear: lambda v: v,
}

State = tuple[torch.Tensor, ...]   # (h,) or (h, c) for lstm, each [B, H]


class RecurrentLayer(nn.Module):
    def __init__(self, cell: Cell, input_size: int, hidden_size: int, activation: Activation,
                 leak: float = 1.0):
        super().__init__()
        self.cell, self.hidden_size, self.leak = cell, hidden_size, leak
        self.activation = activation
        self.f = ACTIVATIONS[activation]
        if cell == Cell.lstm:
            self.core = nn.LSTM(input_size, hidden_size, batch_first=True)
        elif cell == Cell.gru:
            self.core = nn.GRU(input_size, hidden_size, batch_first=True)
        else:
            fused = "relu" if activation == Activation.relu else "tanh"
            self.core = nn.RNN(input_size, hidden_size, nonlinearity=fused, batch_first=True)
        if cell == Cell.esn:
            self.core.bias_ih_l0.data.zero_()
            self.core.bias_hh_l0.data.zero_()
            self.core.requires_grad_(False)

    # --- weights -------------------------------------------------------------------------------------
    @property
    def w_ih(self) -> torch.Tensor:
        return self.core.weight_ih_l0

    @property
    def w_hh(self) -> torch.Tensor:
        return self.core.weight_hh_l0

    @property
    def gates(self) -> int:
        return {Cell.lstm: 4, Cell.gru: 3}.get(self.cell, 1)

    def recurrent_blocks(self) -> list[torch.Tensor]:
        """The H×H recurrent matrices, one per gate (W_hi, W_hf, W_hg, W_ho for lstm)."""
        return list(self.w_hh.detach().chunk(self.gates, 0))

    @property
    def has_fused_kernel(self) -> bool:
        return self.cell in (Cell.lstm, Cell.gru) or (
            self.cell == Cell.rnn and self.activation in (Activation.tanh, Activation.relu))

    # --- running ---------------------------------------------------------------------------------------
    def initial_state(self, batch: int, like: torch.Tensor) -> State:
        h = like.new_zeros(batch, self.hidden_size)
        return (h, h.clone()) if self.cell == Cell.lstm else (h,)

    def fused(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Outputs [B, T, H] and the last state, by the fused kernel."""
        if self.cell == Cell.lstm:
            out, (h, c) = self.core(x, (state[0].unsqueeze(0), state[1].unsqueeze(0)))
            return out, (h[0], c[0])
        out, h = self.core(x, state[0].unsqueeze(0))
        return out, (h[0],)

    def input_projection(self, x: torch.Tensor) -> torch.Tensor:
        """W_ih x_t + b_ih for every step at once: [B, T, gates·H]."""
        return F.linear(x, self.w_ih, self.core.bias_ih_l0)

    def step(self, xp: torch.Tensor, state: State) -> State:
        """One step of the cell from the projected input xp = W_ih x_t + b_ih."""
        h = state[0]
        hp = F.linear(h, self.w_hh, self.core.bias_hh_l0)
        if self.cell == Cell.lstm:
            i, f, g, o = (xp + hp).chunk(4, -1)
            c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        if self.cell == Cell.gru:
            xr, xz, xn = xp.chunk(3, -1)
            hr, hz, hn = hp.chunk(3, -1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            return ((1 - z) * n + z * h,)
        new = self.f(xp + hp)
        if self.cell == Cell.esn and self.leak != 1.0:
            new = (1 - self.leak) * h + self.leak * new
        return (new,)

    def unrolled(self, x: torch.Tensor, state: State) -> tuple[list[torch.Tensor], State]:
        """Every h_t (t = 1..T) as a separate tensor, and the last state."""
        hs = []
        for xp in self.input_projection(x).unbind(1):   # unbind: one backward for all steps (O(T))
            state = self.step(xp, state)
            hs.append(state[0])
        return hs, state

    def forward(self, x: torch.Tensor, state: Optional[State] = None, unrolled: bool = False):
        """(outputs [B, T, H], per-step states or None, last state)."""
        if state is None:
            state = self.initial_state(x.shape[0], x)
        if unrolled or not self.has_fused_kernel:
            hs, state = self.unrolled(x, state)
            return torch.stack(hs, 1), (hs if unrolled else None), state
        out, state = self.fused(x, state)
        return out, None, state
