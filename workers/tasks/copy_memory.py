"""The copy-memory task (Arjovsky, Shah & Bengio 2016, "Unitary evolution recurrent neural networks").

Definition: symbols 1..K (K = n_symbols, default 8), blank 0, delimiter K+1, fed one-hot (input_size
K+2). An input sequence of length L = T + 2·n is n random symbols (n = n_copy, default 10), T−1 blanks,
the delimiter, then n blanks. The target is T+n blanks followed by the n symbols, so the network must
recall them T steps later. Output classes: blank and the K symbols (output_size K+1); the loss is the
cross-entropy averaged over all L steps.

Baseline: the memoryless predictor (blank for the first T+n steps, uniform over the K symbols for the
last n) scores n·ln K / L, i.e. 10·ln 8 / (T+20) with the defaults.

Solved (this project's rule): accuracy over the n recalled symbols (the last n steps) ≥ 0.99;
`accuracy()` reports exactly that recall accuracy.

Dependency span: T + n + 1 steps (T + 11 with the defaults), from a symbol's step to its recall, both
included: symbol i enters at step i and is recalled at step T + n + i, for every i, so each recall, the
final step's included, reaches back exactly that far. The probes differentiate the loss at the final step,
the recall of the n-th symbol (entered at step n): the n − 1 steps before it hold the other symbols, which
that loss does not need, so the span is the sequence L = T + 2n less n − 1 steps, not the whole of it.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..config import TaskConfig
from .base import Batch, Task, cross_entropy


class CopyMemory(Task):
    def __init__(self, cfg: TaskConfig, seed: int):
        self.name = "copy_memory"
        self.T, self.n_symbols, self.n_copy = cfg.seq_len, cfg.n_symbols, cfg.n_copy
        self.length = self.T + 2 * self.n_copy
        self.input_size = self.n_symbols + 2
        self.output_size = self.n_symbols + 1
        self.classification = True
        self.per_step = True
        self.baseline_loss = self.n_copy * math.log(self.n_symbols) / self.length
        self.baseline_accuracy = 1 / self.n_symbols  # recall accuracy of guessing a symbol
        self.seed = seed

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        n = self.n_copy
        symbols = torch.randint(1, self.n_symbols + 1, (size, n), generator=generator)
        tokens = torch.zeros(size, self.length, dtype=torch.long)
        tokens[:, :n] = symbols
        tokens[:, self.T + n - 1] = self.n_symbols + 1  # the delimiter
        y = torch.zeros(size, self.length, dtype=torch.long)
        y[:, -n:] = symbols
        return Batch(F.one_hot(tokens, self.input_size).float(), y)

    def dependency_span(self) -> int:
        return self.T + self.n_copy + 1

    def pointwise(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cross_entropy(pred, y)

    def accuracy(self, out: torch.Tensor, y: torch.Tensor) -> Optional[float]:
        n = self.n_copy
        recalled = self.outputs(out)[:, -n:].argmax(-1)
        return (recalled == y[:, -n:]).float().mean().item()

    def solved(self, scores: dict) -> bool:
        return scores["accuracy"] is not None and scores["accuracy"] >= 0.99
