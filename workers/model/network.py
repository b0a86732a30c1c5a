"""The recurrent network of a trial: a stack of recurrent layers, the remedies from the literature as
options, and a linear readout.

    x ─> layer 1 ─> norm ─> layer 2 ─> norm (+ residual) ─> … ─> [attention] ─> readout

- `model.residual`: from the second layer on, a layer's output is added to its input (He et al. 2016's
  skip connections applied across depth); with one layer it changes nothing.
- `model.norm`: layer or batch normalization of each layer's output sequence over the hidden features
  (between layers, outside the recurrence, so the fused kernels still apply).
- `model.attention`: the readout at step t also sees a dot-product attention summary of the top layer's
  states h_1..h_t (Bahdanau et al. 2015), a direct gradient path to every earlier step.
Tasks scored at the last step only get the readout of the last step only (`per_step=False`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from workers.config import ModelConfig, Norm
from workers.model.init import initialize
from workers.model.layer import RecurrentLayer, State


class SequenceNorm(nn.Module):
    """Layer or batch normalization of [B, T, H] over the hidden features."""

    def __init__(self, kind: Norm, size: int):
        super().__init__()
        self.kind = kind
        self.norm = nn.LayerNorm(size) if kind == Norm.layer else nn.BatchNorm1d(size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.kind == Norm.layer:
            return self.norm(h)
        return self.norm(h.transpose(1, 2)).transpose(1, 2)


class Attention(nn.Module):
    """Causal scaled dot-product attention of each query step over the states up to it."""

    def __init__(self, size: int):
        super().__init__()
        self.query = nn.Linear(size, size, bias=False)
        self.scale = size ** -0.5

    def forward(self, h: torch.Tensor, last_only: bool) -> torch.Tensor:
        q = self.query(h[:, -1:] if last_only else h)                 # [B, Q, H]
        scores = q @ h.transpose(1, 2) * self.scale                  # [B, Q, T]
        if not last_only:
            steps = h.shape[1]
            future = torch.ones(steps, steps, dtype=torch.bool, device=h.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        return torch.softmax(scores, -1) @ h                          # [B, Q, H]


@dataclass
class NetOutput:
    out: torch.Tensor                          # [B, T, output] (per_step) or [B, 1, output]
    states: list[State]                        # last state of every layer
    hs: Optional[list[list[torch.Tensor]]]     # unrolled pass only: hs[layer][t] = h_t, [B, H]
    inputs: Optional[list[torch.Tensor]]       # unrolled pass only: each layer's input sequence


class RecurrentNet(nn.Module):
    def __init__(self, cfg: ModelConfig, input_size: int, output_size: int, per_step: bool, seed: int):
        super().__init__()
        self.cfg, self.per_step = cfg, per_step
        hidden = cfg.hidden_size
        self.layers = nn.ModuleList(
            RecurrentLayer(cfg.cell, input_size if i == 0 else hidden, hidden, cfg.activation, cfg.leak)
            for i in range(cfg.layers))
        self.norms = nn.ModuleList(
            SequenceNorm(cfg.norm, hidden) if cfg.norm != Norm.none else nn.Identity()
            for _ in range(cfg.layers))
        self.attention = Attention(hidden) if cfg.attention else None
        self.readout = nn.Linear(hidden * (2 if cfg.attention else 1), output_size)
        initialize(list(self.layers), cfg, seed)

    def forward(self, x: torch.Tensor, states: Optional[list[State]] = None,
                unrolled: bool = False) -> NetOutput:
        """Run the stack; `unrolled=True` keeps every h_t of every layer (an autograd node each, for the
        Ω penalty and for reference computations)."""
        h, new_states, hs, inputs = self._stack(x, states, unrolled)
        return NetOutput(self.head(h), new_states, hs, inputs)

    def _stack(self, x: torch.Tensor, states: Optional[list[State]], unrolled: bool):
        """The top sequence [B, T, H] after every layer, with each layer's last state (and with
        `unrolled`, every h_t and each layer's input sequence)."""
        if states is None:
            states = [layer.initial_state(x.shape[0], x) for layer in self.layers]
            if unrolled:   # make h_0 a graph leaf so that every h_t is a node even with frozen weights
                states = [tuple(s.requires_grad_() for s in st) for st in states]
        h, new_states = x, []
        hs, inputs = ([], []) if unrolled else (None, None)
        for i, layer in enumerate(self.layers):
            out, steps, state = layer(h, states[i], unrolled=unrolled)
            new_states.append(state)
            if unrolled:
                hs.append(steps)
                inputs.append(h)
            h = self.between(i, h, out)
        return h, new_states, hs, inputs

    def between(self, i: int, inputs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The input of layer i + 1 (or of the head) from layer i's input and output sequences [B, T, ·]:
        normalization, then the residual sum from the second layer on."""
        out = self.norms[i](out)
        return inputs + out if (self.cfg.residual and i > 0) else out

    @property
    def time_local(self) -> bool:
        """Whether `between` at step t reads step t alone (batch norm pools its statistics over time)."""
        return self.cfg.norm != Norm.batch

    def readout_input(self, h: torch.Tensor) -> torch.Tensor:
        """What the readout reads of the top sequence h [B, T, H]: [B, T or 1, H or 2H] (with attention)."""
        last_only = not self.per_step
        top = h[:, -1:] if last_only else h
        if self.attention is not None:
            top = torch.cat([top, self.attention(h, last_only)], -1)
        return top

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The readout of the top sequence h [B, T, H]: [B, T or 1, output]."""
        return self.readout(self.readout_input(h))

    def run(self, x: torch.Tensor, states: Optional[list[State]] = None) -> tuple[torch.Tensor, list[State]]:
        """The top sequence [B, T, H] and each layer's last state, from `states` (None: zero): a long
        sequence driven in chunks, each carrying the state of the one before (an ESN's fit run, the
        teacher-forced part of a free run)."""
        h, new_states, _, _ = self._stack(x, states, False)
        return h, new_states

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The readout's input for a batch x (the states an echo state network's readout is fit on)."""
        return self.readout_input(self.run(x)[0])

    def parameter_groups(self) -> dict[str, list[torch.Tensor]]:
        """Trainable parameters by role: input, recurrent, bias, readout, other (attention, norms)."""
        groups: dict[str, list[torch.Tensor]] = {
            "input": [], "recurrent": [], "bias": [], "readout": [], "other": []}
        for layer in self.layers:
            for name, p in layer.core.named_parameters():
                if not p.requires_grad:
                    continue
                key = "input" if name.startswith("weight_ih") else (
                    "recurrent" if name.startswith("weight_hh") else "bias")
                groups[key].append(p)
        groups["readout"].extend(self.readout.parameters())
        for module in [self.attention, *self.norms]:
            if module is not None:
                groups["other"].extend(module.parameters())
        return {k: v for k, v in groups.items() if v}
