"""How a running trial talks to the outside world without importing it.

The training loop calls these methods; `study/` plugs in reporters that forward intermediate values to
Optuna (and answer `should_stop` with its pruner), log to MLflow, or draw a progress bar. `workers/`
itself knows none of them.

Call order: on_start once; on_step every `train.log_every` steps; on_probe at step 0, every
`train.probe_every` steps and at the last step, each followed by one should_stop (pruning is decided
only there, where a validation score exists); on_end once with the summary, whatever happened. A
pruned trial's summary holds `prune_reason`, from the reporter that stopped it (`stop_reason`).
"""
from __future__ import annotations

from typing import Any, Optional


class Reporter:
    """The hooks of a running trial. Every hook does nothing here: a reporter overrides the ones it
    needs. Used as it is, it records nothing and never stops a trial."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Once, before training: config, device, task length, parameter count, baseline loss."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        """Every `train.log_every` steps: the window's mean loss, clipped fraction, global norm."""

    def on_probe(self, probe: dict[str, Any]) -> None:
        """At every probe: the probe record (see workers/gradients/probes.py)."""

    def should_stop(self, step: int) -> bool:
        """After each probe: True stops the trial as pruned."""
        return False

    def stop_reason(self) -> Optional[str]:
        """Why this reporter stopped the trial (after should_stop said True), else None."""
        return None

    def on_end(self, summary: dict[str, Any]) -> None:
        """Once, with the summary, whatever happened."""


class FanOut(Reporter):
    """Several reporters as one; the trial stops if any of them asks to."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def on_start(self, info):
        for r in self.reporters:
            r.on_start(info)

    def on_step(self, step, metrics):
        for r in self.reporters:
            r.on_step(step, metrics)

    def on_probe(self, probe):
        for r in self.reporters:
            r.on_probe(probe)

    def should_stop(self, step):
        return any([r.should_stop(step) for r in self.reporters])   # a list: every reporter decides

    def stop_reason(self):
        return next((reason for r in self.reporters if (reason := getattr(r, "stop_reason", lambda: None)())), None)

    def on_end(self, summary):
        for r in self.reporters:
            r.on_end(summary)
