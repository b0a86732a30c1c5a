"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4; the form of Arjovsky et al. 2016).

Definition: two input channels over T steps. Channel 0 holds values drawn from U[0, 1]; channel 1 is a
mask with exactly two ones, the first at a step uniform in [0, T//2), the second uniform in [T//2, T).
The target, read at the last step, is the sum of the two marked values; the loss is the squared error.

Baseline: always predicting 1 (the mean of the sum) scores the variance of a sum of two U[0, 1] values,
MSE = 2/12 = 1/6 ≈ 0.167.

Solved (this project's rule): test MSE ≤ 0.01, i.e. 6% of the baseline.

Dependency span: the whole sequence, T. The first marked value can sit at step 1, so the target at the
last step may need information from any step back to the first.
"""
from __future__ import annotations

import torch

from ..config import TaskConfig
from .base import Batch, Task, squared_error


class Adding(Task):
    def __init__(self, cfg: TaskConfig, seed: int):
        self.name = "adding"
        self.length = cfg.seq_len
        self.input_size = 2
        self.output_size = 1
        self.classification = False
        self.per_step = False
        self.baseline_loss = 1 / 6
        self.baseline_accuracy = None
        self.seed = seed

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        T, half = self.length, self.length // 2
        values = torch.rand(size, T, generator=generator)
        first = torch.randint(0, half, (size,), generator=generator)
        second = torch.randint(half, T, (size,), generator=generator)
        rows = torch.arange(size)
        mask = torch.zeros(size, T)
        mask[rows, first] = 1.0
        mask[rows, second] = 1.0
        y = values[rows, first] + values[rows, second]
        return Batch(torch.stack((values, mask), dim=-1), y)

    def dependency_span(self) -> int:
        return self.length

    def pointwise(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return squared_error(pred, y)

    def solved(self, scores: dict) -> bool:
        return scores["loss"] <= 0.01
