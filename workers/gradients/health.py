"""The health verdict of a probe and of a trial: the rule, written down once.

The verdict judges the gradient over the task's dependency span s (`Task.span()`, in steps, capped at
the profile's length T): how far back the final step's target needs information from. The span of each
task, with its reason in the task's docstring: adding, temporal_order: T (the whole sequence);
copy_memory: T + n_copy + 1 (a symbol's step to its recall); digits: 64 (the whole image);
mackey_glass: 3τ (51 for τ = 17; a delay system's next value depends on its history back to about τ, and
an embedding needs a few delays). The figure judged is

    span_ratio = log10(‖∂L_T/∂h_{T−s+1}‖ / ‖∂L_T/∂h_T‖)

which equals the whole-sequence vanishing_ratio = log10(‖∂L_T/∂h_1‖ / ‖∂L_T/∂h_T‖) when s = T. A probe is
- `diverged`  if the loss or any gradient entry is NaN/Inf;
- `vanishing` if the gradient shrinks by at least 10^3 going back over the span: span_ratio ≤ −3;
- `exploding` if it grows by at least 10^3 going back over the span: span_ratio ≥ +3, or the profile
              overflows to Inf/NaN anywhere while the loss stays finite (possible on the full profile
              under truncated BPTT);
- `healthy`   otherwise.
The ratio is read on the top layer's exact log profile, for the loss at the final step (see
`workers/gradients/probes.py`): it is finite at any T, far below the float range. An exactly zero gradient at
t = T − s + 1 (ratio None) counts as vanishing; a profile that is NaN or +Inf (non-finite states) as
exploding. Three decades is the threshold: long enough that a smooth decay over the span is not flagged
for short spans, and it matches the 1e-3 fraction that defines the horizon.

Why the span, not T: the same orthogonal tanh net (a steady decay of ≈ −0.03 decades per step) has a
whole-sequence ratio of −0.9 at T = 30, −3.3 at T = 100 and −31 at T = 1000. That is a failure for the
adding problem, whose target spans the whole sequence, and none for Mackey-Glass one step ahead, whose
target needs only a few τ. The whole-sequence `vanishing_ratio` and the T-free `decay_rate` are still
recorded in every probe; the summary states the span beside the verdict (`health_span`).

A trial is `diverged` if it ever diverged (it is stopped there); otherwise its verdict is the most common
probe verdict, ties broken towards the more severe (exploding > vanishing > healthy).
"""
from __future__ import annotations

from collections import Counter

DECADES = 3.0
SEVERITY = ["healthy", "vanishing", "exploding", "diverged"]


def probe_verdict(ratio: float | None, nonfinite: int, loss_finite: bool, profile_finite: bool = True) -> str:
    """`ratio`: the probe's span_ratio (the whole-sequence vanishing_ratio where the span is T)."""
    if nonfinite > 0 or not loss_finite:
        return "diverged"
    if not profile_finite:   # ∂L/∂h_t overflowed going back while the loss stayed finite
        return "exploding"
    if ratio is None:   # finite values but no gradient at all reaches the final step's state
        return "vanishing"
    if ratio <= -DECADES:
        return "vanishing"
    if ratio >= DECADES:
        return "exploding"
    return "healthy"


def trial_verdict(probe_verdicts: list[str], diverged: bool) -> str:
    if diverged or "diverged" in probe_verdicts:
        return "diverged"
    if not probe_verdicts:
        return "healthy"
    counts = Counter(probe_verdicts)
    return max(counts, key=lambda v: (counts[v], SEVERITY.index(v)))
