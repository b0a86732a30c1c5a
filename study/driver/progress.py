"""What a study run shows while it runs (Progress, drawn by study/cli/console.py) and what it returns (Outcome)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import optuna


@dataclass
class Progress:
    """What the live display shows; updated by the runner, drawn by study/cli/console.py."""
    total: int
    done: int = 0
    running: int = 0
    pruned: int = 0
    failed: int = 0
    best: Optional[float] = None
    started: float = field(default_factory=time.monotonic)
    done_here: int = 0          # finished by this run (for the ETA)

    def eta_s(self) -> Optional[float]:
        if self.done_here == 0:
            return None
        rate = (time.monotonic() - self.started) / self.done_here
        return rate * (self.total - self.done)


@dataclass
class Outcome:
    study: optuna.Study
    timed_out: bool = False
    code: Optional[int] = None      # what an `end` hook asked the command to exit with


__all__ = ["Progress", "Outcome"]
