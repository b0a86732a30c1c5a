"""The temporal-order problem (Hochreiter & Schmidhuber 1997, task 6a; as used by Pascanu, Mikolov &
Bengio 2013, "On the difficulty of training recurrent neural networks").

Definition: one-hot inputs over four symbols A, B, C, D (input_size 4). Every step holds a random
distractor C or D, except two positions t1 ∈ [⌊0.1T⌋, ⌊0.2T⌋) and t2 ∈ [⌊0.5T⌋, ⌊0.6T⌋) (each interval
widened to at least one step), which hold A or B at random. The target, read at the last step, is the
order of the two relevant symbols: AA → 0, AB → 1, BA → 2, BB → 3; the loss is the cross-entropy.

Baseline: a constant (uniform) prediction scores ln 4 and accuracy 0.25.

Solved (Pascanu et al. 2013's success criterion): test accuracy ≥ 0.99, i.e. under 1% errors.

Dependency span: the whole sequence, T. The first relevant symbol lies in the first fifth of the sequence,
so the target at the last step needs information from (nearly) its start. (Strictly, the steps before
⌊0.1T⌋ hold distractors only, so T − ⌊0.1T⌋ would do; the project judges the whole sequence, as the task's
literature states its difficulty by T.)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import TaskConfig
from .base import Batch, Task, cross_entropy

A, B, C, D = range(4)


def intervals(T: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The [low, high) ranges of t1 and t2 (integer arithmetic: ⌊0.1T⌋ without float rounding)."""
    lo1, lo2 = T // 10, T * 5 // 10
    return (lo1, max(T * 2 // 10, lo1 + 1)), (lo2, max(T * 6 // 10, lo2 + 1))


class TemporalOrder(Task):
    def __init__(self, cfg: TaskConfig, seed: int):
        self.name = "temporal_order"
        self.length = cfg.seq_len
        self.input_size = 4
        self.output_size = 4
        self.classification = True
        self.per_step = False
        self.baseline_loss = math.log(4)
        self.baseline_accuracy = 0.25
        self.seed = seed

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        (lo1, hi1), (lo2, hi2) = intervals(self.length)
        tokens = torch.randint(C, D + 1, (size, self.length), generator=generator)
        t1 = torch.randint(lo1, hi1, (size,), generator=generator)
        t2 = torch.randint(lo2, hi2, (size,), generator=generator)
        ab = torch.randint(A, B + 1, (size, 2), generator=generator)
        rows = torch.arange(size)
        tokens[rows, t1] = ab[:, 0]
        tokens[rows, t2] = ab[:, 1]
        y = 2 * ab[:, 0] + ab[:, 1]
        return Batch(F.one_hot(tokens, 4).float(), y)

    def dependency_span(self) -> int:
        return self.length

    def pointwise(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cross_entropy(pred, y)

    def solved(self, scores: dict) -> bool:
        return scores["accuracy"] is not None and scores["accuracy"] >= 0.99
