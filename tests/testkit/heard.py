"""A Reporter that keeps what a trial reported (its steps and probes), for tests that read them."""
from __future__ import annotations

from workers.reporter import Reporter


class Heard(Reporter):
    def __init__(self):
        self.steps, self.probes = [], []

    def on_step(self, step, metrics):
        self.steps.append((step, metrics))

    def on_probe(self, probe):
        self.probes.append(probe)
