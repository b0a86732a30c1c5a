"""Gradient measurements taken on probe steps.

The temporal profile is exact: the network is run unrolled with the same weights (see
`workers/model/layer.py`), every hidden state h_t of every layer is an autograd node, and

    g_t = ∂L_T/∂h_t   (the total derivative, through the recurrence and the layers above)

is read with `torch.autograd.grad` for L_T, the loss at the final step. ‖g_t‖ is the Frobenius norm over
the batch and hidden units of the batch-mean loss's gradient. For an LSTM, h_t is the output state;
paths that run only through the cell state c_t do not pass through h_t and are not part of g_t.

Derived figures (top layer):
- vanishing_ratio = log10(‖g_1‖ / ‖g_T‖) (g_1 that underflowed to 0 counts as 1e-45): −3 means the gradient reaching step 1 is 1000× weaker,
  +3 that it is 1000× stronger (exploding).
- horizon = how many steps back from T the gradient stays ≥ 1e-3·‖g_T‖ (T means it never drops below).
"""
from __future__ import annotations

import math

import torch

from workers.model.init import largest_singular_value, spectral_radius
from workers.model.network import RecurrentNet

HORIZON_FRACTION = 1e-3
UNDERFLOW = 1e-45   # the smallest float32 magnitude: a gradient that underflowed to 0 counts as this


def hidden_gradient_norms(loss_final: torch.Tensor, hs: list[list[torch.Tensor]],
                          retain_graph: bool = True) -> list[list[float]]:
    """‖∂L_T/∂h_t‖ for t = 1..T, per layer (bottom first)."""
    flat = [h for layer in hs for h in layer]
    grads = torch.autograd.grad(loss_final, flat, retain_graph=retain_graph, allow_unused=True)
    return profile_from_grads(list(grads), hs)


def profile_from_grads(grads: list[torch.Tensor | None], hs: list[list[torch.Tensor]]) -> list[list[float]]:
    """The per-layer profile from gradients already computed for the flattened states (None = 0)."""
    norms = torch.stack([g.norm() if g is not None else hs[0][0].new_zeros(()) for g in grads])
    values = norms.double().cpu().tolist()
    steps = len(hs[0])
    return [values[i * steps:(i + 1) * steps] for i in range(len(hs))]


def _finite(v: float) -> bool:
    return math.isfinite(v)


def vanishing_ratio(profile: list[float]) -> float | None:
    """log10(‖g_1‖/‖g_T‖); None when the profile holds a non-finite value or g_T is zero."""
    first, last = profile[0], profile[-1]
    if not (_finite(first) and _finite(last)) or last <= 0.0:
        return None
    return math.log10(max(first, UNDERFLOW) / last)


def horizon(profile: list[float]) -> int | None:
    """Steps back from T over which ‖g_t‖ ≥ 1e-3·‖g_T‖ holds without a break."""
    last = profile[-1]
    if not all(_finite(v) for v in profile) or last <= 0.0:
        return None
    count = 0
    for value in reversed(profile):
        if value < HORIZON_FRACTION * last:
            break
        count += 1
    return count


def group_norms(groups: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """‖∂L/∂θ‖ per parameter group (input, recurrent, bias, readout, other)."""
    out = {}
    for name, params in groups.items():
        grads = [p.grad for p in params if p.grad is not None]
        out[name] = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item() if grads else 0.0
    return out


def nonfinite_count(params: list[torch.Tensor]) -> int:
    """How many gradient entries are NaN or ±Inf."""
    total = 0
    for p in params:
        if p.grad is not None:
            total += int((~torch.isfinite(p.grad)).sum().item())
    return total


def weight_spectra(net: RecurrentNet) -> tuple[list[float], list[float]]:
    """Per layer: the largest λ1 (singular value) and the largest spectral radius over the H×H gate
    blocks of W_hh (for rnn and esn W_hh is one block; for lstm and gru, one block per gate, the same
    blocks that `model.init_gain` sets)."""
    lambda1, radius = [], []
    for layer in net.layers:
        w = layer.w_hh.detach()
        if not torch.isfinite(w).all():
            lambda1.append(math.nan)
            radius.append(math.nan)
            continue
        blocks = layer.recurrent_blocks()
        lambda1.append(max(largest_singular_value(b) for b in blocks))
        radius.append(max(spectral_radius(b) for b in blocks))
    return lambda1, radius


def snapshot(groups: dict[str, list[torch.Tensor]]) -> dict[str, list[torch.Tensor]]:
    return {k: [p.detach().clone() for p in v] for k, v in groups.items()}


def update_ratios(before: dict[str, list[torch.Tensor]], groups: dict[str, list[torch.Tensor]]) -> dict:
    """‖θ_after − θ_before‖ / ‖θ_before‖ per group: the size of one optimizer step."""
    out = {}
    for name, params in groups.items():
        delta = torch.linalg.vector_norm(torch.stack(
            [(p.detach() - b).norm() for p, b in zip(params, before[name])]))
        size = torch.linalg.vector_norm(torch.stack([b.norm() for b in before[name]]))
        out[name] = (delta / size).item() if size > 0 else 0.0
    return out
