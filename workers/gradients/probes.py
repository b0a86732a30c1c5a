"""Gradient measurements taken on probe steps.

The temporal profile is exact and lives in log space: `workers/gradients/log_profile.py` walks the chain rule
backwards with renormalized adjoints and gives, per layer and t = 1..T,

    grad_h_log10[t] = log10 ‖∂L_T/∂h_t‖   (the total derivative, through the recurrence and the layers above)

for L_T, the loss at the final step, at any T (no float underflow). ‖·‖ is the Frobenius norm over the
batch and hidden units of the batch-mean loss's gradient. For an LSTM, h_t is the output state; paths
that run only through the cell state c_t do not pass through h_t and are not part of the norm (they are
walked, as ∂L/∂c_t, all the same). `grad_h_norms` = 10^grad_h_log10 (0 below the float range).

Derived figures, read from the log profile of the top layer:
- vanishing_ratio = log10(‖g_1‖ / ‖g_T‖): −3 means the gradient reaching step 1 is 1000× weaker, +3 that it
  is 1000× stronger (exploding). None where g_1 or g_T is exactly zero or not finite.
- span_ratio = log10(‖g_{T−s+1}‖ / ‖g_T‖) over the task's dependency span s (`Task.span()`): the same
  figure as vanishing_ratio, over the steps the task's final target depends on; equal to it when s = T.
  The health verdict (workers/gradients/health.py) judges this one.
- horizon = how many steps back from T the gradient stays ≥ 1e-3·‖g_T‖ (T means it never drops below).
- decay_rate = the least-squares slope of log10 ‖g_{T−k}‖ against k = 0..T−1, in decades per step back
  (negative when vanishing): it does not depend on T, and × (T − 1) it is the ratio of a pure geometric
  decay, so studies that mix sequence lengths compare like with like.
"""
from __future__ import annotations

import math

import torch

from workers.model.network import RecurrentNet
from workers.optim import global_norm

HORIZON_DECADES = 3.0   # the horizon's fraction 1e-3, in decades


MAX_LOG10 = math.log10(torch.finfo(torch.float64).max)


def _power(v: float) -> float:
    if math.isnan(v):
        return math.nan
    return math.inf if v > MAX_LOG10 else float(f"{10.0 ** v:.7g}")


def norms_from_log10(profile: list[float]) -> list[float]:
    """10^v, to 7 significant digits (0 below the float64 range, inf above it)."""
    return [_power(v) for v in profile]


def _broken(log10: list[float]) -> bool:
    """A NaN or +Inf anywhere (non-finite states); −inf is an exactly zero gradient, a measurement."""
    return any(math.isnan(v) or v == math.inf for v in log10)


def vanishing_ratio(log10: list[float]) -> float | None:
    """log10(‖g_1‖/‖g_T‖) from the log profile; None when either end is not a finite number."""
    first, last = log10[0], log10[-1]
    if not (math.isfinite(first) and math.isfinite(last)):
        return None
    return first - last


def span_ratio(log10: list[float], span: int) -> float | None:
    """log10(‖g_{T−span+1}‖/‖g_T‖) from the log profile (span capped to 1..T); None when either end is
    not a finite number. `span_ratio(p, len(p)) == vanishing_ratio(p)`."""
    span = max(1, min(int(span), len(log10)))
    return vanishing_ratio(log10[len(log10) - span:])


def horizon(log10: list[float]) -> int | None:
    """Steps back from T over which ‖g_t‖ ≥ 1e-3·‖g_T‖ holds without a break."""
    last = log10[-1]
    if not math.isfinite(last) or _broken(log10):
        return None
    count = 0
    for value in reversed(log10):
        if value < last - HORIZON_DECADES:
            break
        count += 1
    return count


def decay_rate(log10: list[float]) -> float | None:
    """Least-squares slope of log10 ‖g_{T−k}‖ over k (decades per step back); None under two finite points.
    Steps whose gradient is exactly zero (−inf) are left out of the fit."""
    points = [(k, v) for k, v in enumerate(reversed(log10)) if math.isfinite(v)]
    if len(points) < 2 or _broken(log10):
        return None
    n = len(points)
    mean_k = sum(k for k, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((k - mean_k) ** 2 for k, _ in points)
    return sum((k - mean_k) * (v - mean_v) for k, v in points) / spread


def profile_finite(log10s: list[list[float]]) -> bool:
    """No NaN and no +Inf (an exact zero, −inf, is a finite measurement)."""
    return not any(_broken(layer) for layer in log10s)


def profile_peak(log10s: list[list[float]]) -> float:
    """The largest log10 ‖∂L_T/∂h_t‖ over every layer and step (−inf when none is finite)."""
    return max((v for layer in log10s for v in layer if math.isfinite(v)), default=-math.inf)


def group_norms(groups: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """‖∂L/∂θ‖ per parameter group (input, recurrent, bias, readout, other)."""
    out = {}
    for name, params in groups.items():
        out[name] = global_norm(params).item()          # in float64, as the global norm (workers/optim.py)
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
        blocks = torch.stack(layer.recurrent_blocks()).double()   # [gates, H, H]: one batched call each
        lambda1.append(torch.linalg.matrix_norm(blocks, ord=2).max().item())
        radius.append(torch.linalg.eigvals(blocks).abs().max().item())
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
