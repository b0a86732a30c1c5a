"""The health verdict of a probe and of a trial: the rule, written down once.

A probe is
- `diverged`  if the loss or any gradient entry is NaN/Inf;
- `vanishing` if the gradient shrinks by at least 10^3 going back through time:
              vanishing_ratio = log10(‖∂L_T/∂h_1‖ / ‖∂L_T/∂h_T‖) ≤ −3 (equivalently horizon < T when
              the decay is monotone);
- `exploding` if it grows by at least 10^3 going back: vanishing_ratio ≥ +3, or overflows to Inf/NaN
              while the loss stays finite (possible on the full profile under truncated BPTT);
- `healthy`   otherwise.
The ratio is read on the top layer's exact log profile, for the loss at the final step (see
`workers/probes.py`): it is finite at any T, far below the float range. An exactly zero gradient at t = 1
(ratio None) counts as vanishing; a profile that is NaN or +Inf (non-finite states) as exploding.
Three decades is the threshold: long enough that a smooth decay over T steps is not flagged for short
sequences, and it matches the 1e-3 fraction that defines the horizon.

A trial is `diverged` if it ever diverged (it is stopped there); otherwise its verdict is the most common
probe verdict, ties broken towards the more severe (exploding > vanishing > healthy).
"""
from __future__ import annotations

from collections import Counter

DECADES = 3.0
SEVERITY = ["healthy", "vanishing", "exploding", "diverged"]


def probe_verdict(ratio: float | None, nonfinite: int, loss_finite: bool, profile_finite: bool = True) -> str:
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
