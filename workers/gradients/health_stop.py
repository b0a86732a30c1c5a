"""The gradient-health pruning rule (`study.pruner=health`, or `median_health` with the median pruner):
a trial whose gradients are broken is stopped without waiting for its loss to say so.

After `warmup_steps` training steps, a trial whose last `patience` probes (`study.health_patience`,
default 3) are all unhealthy — each `vanishing`, `exploding` or `diverged` by the probe rule of
workers/gradients/health.py — is pruned, with the reason (which verdicts, which steps). One healthy probe among
them spares it; for an echo state network a vanishing probe does not count (fading memory is its design).
Never at the last probe (workers/loop.py): a trial that ran to the end is not pruned. A Reporter, so it runs
inside the trial like the Optuna one (workers/reporter.py FanOut:
either may stop the trial).
"""
from __future__ import annotations

from typing import Any, Optional

from workers.reporter import Reporter

UNHEALTHY = frozenset({"vanishing", "exploding", "diverged"})


class HealthStop(Reporter):
    def __init__(self, patience: int = 3, warmup_steps: int = 0, fading_is_design: bool = False):
        """`fading_is_design`: an echo state network, whose vanishing profile is its echo state property:
        only exploding and diverged probes count against it."""
        if patience < 1:
            raise ValueError(f"patience={patience!r}; valid: an integer ≥ 1")
        self.patience, self.warmup_steps = patience, warmup_steps
        self.unhealthy = UNHEALTHY - {"vanishing"} if fading_is_design else UNHEALTHY
        self.seen: list[tuple[int, str]] = []      # (step, verdict) of every probe
        self.reason: Optional[str] = None

    def on_probe(self, probe: dict[str, Any]) -> None:
        self.seen.append((int(probe["step"]), str(probe.get("health"))))

    def should_stop(self, step: int) -> bool:
        last = self.seen[-self.patience:]
        if step < self.warmup_steps or len(last) < self.patience or any(v not in self.unhealthy for _, v in last):
            return False
        verdicts = sorted({v for _, v in last})
        self.reason = (f"health: the last {self.patience} probes (steps {last[0][0]}–{last[-1][0]}) were "
                       f"{' / '.join(verdicts)}")
        return True

    def stop_reason(self) -> Optional[str]:
        return self.reason
