"""What every long-memory task provides to the training loop.

A task generates batches `x` of shape [B, L, input_size] (float32, on the CPU, deterministic from a
`torch.Generator`) with targets `y`, and scores the model's output sequence `out` of shape
[B, L, output_size]. `per_step` tasks have a target at every step (y: [B, L]); the others only at the
last step (y: [B]). Classification targets are int64 class indices, regression targets float32.

Each task also declares its dependency span (`span()`): how many steps back from the final step the
target of the final step needs information from. The health verdict (workers/gradients/health.py) judges the
gradient's attenuation over that span, not over the whole sequence.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

import torch
from torch.nn import functional as F

SPLIT_OFFSETS = {"val": 1, "test": 2}   # held-out sets are drawn from seed·1000 + offset


def squared_error(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Regression: pred [..., 1] or [...] against y [...]."""
    if pred.dim() > y.dim():
        pred = pred.squeeze(-1)
    return (pred - y) ** 2


def cross_entropy(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Classification: logits [..., C] against class indices [...], per element."""
    flat = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), y.reshape(-1), reduction="none")
    return flat.reshape(y.shape)


@dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor
    starts: Optional[torch.Tensor] = None   # [B]: where each window starts in its task's series (series tasks)

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.x.to(device, non_blocking=True), self.y.to(device, non_blocking=True), self.starts)


class Task(ABC):
    name: str
    input_size: int
    output_size: int
    classification: bool
    per_step: bool
    length: int            # L, the number of input steps (T for most tasks, T + 20 for copy_memory)
    baseline_loss: float   # loss of the trivial memoryless predictor (see each task's docstring)
    baseline_accuracy: Optional[float] = None

    @abstractmethod
    def batch(self, size: int, generator: torch.Generator) -> Batch:
        """Fresh random sequences (synthetic tasks) or a random draw from the training split."""

    def held_out(self, split: str, size: int) -> Batch:
        """A fixed set, `split` ∈ {'val', 'test'}, never used for training, the same for a given seed
        (drawn once by `draw_held_out`, then cached)."""
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"unknown split {split!r}; valid: 'val', 'test'")
        cache = self.__dict__.setdefault("_held", {})
        if (split, size) not in cache:
            g = torch.Generator().manual_seed(self.seed * 1000 + SPLIT_OFFSETS[split])
            cache[split, size] = self.draw_held_out(split, size, g)
        return cache[split, size]

    def draw_held_out(self, split: str, size: int, generator: torch.Generator) -> Batch:
        """Synthetic tasks draw held-out sequences like training ones, from their own generator."""
        return self.batch(size, generator)

    def outputs(self, out: torch.Tensor) -> torch.Tensor:
        """The part of the output sequence that the targets score."""
        return out if self.per_step else out[:, -1]

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of a whole output sequence [B, L, output_size]."""
        return self.pointwise(self.outputs(out), y).mean()

    def final_step_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss at the last step only: what the gradient probes differentiate."""
        if not self.per_step:
            return self.loss(out, y)
        return self.pointwise(out[:, -1], y[:, -1]).mean()

    @abstractmethod
    def dependency_span(self) -> int:
        """Steps back from the final step, that one included, that the final step's target depends on
        (each task's docstring says why); `span()` caps it at the sequence length."""

    def span(self) -> int:
        """The dependency span in steps, between 1 and the sequence length L: the health verdict reads
        the gradient's attenuation from step L − span + 1 to step L."""
        return max(1, min(int(self.dependency_span()), self.length))

    @abstractmethod
    def pointwise(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-element loss; pred has the target's shape plus a class dimension for classification."""

    def accuracy(self, out: torch.Tensor, y: torch.Tensor) -> Optional[float]:
        """Fraction of scored positions classified right, None for regression."""
        if not self.classification:
            return None
        return (self.outputs(out).argmax(-1) == y).float().mean().item()

    def evaluate(self, out: torch.Tensor, y: torch.Tensor) -> dict:
        """Scores of a held-out set: `loss`, `accuracy` (None for regression) and task extras."""
        return {"loss": self.loss(out, y).item(), "accuracy": self.accuracy(out, y)}

    @abstractmethod
    def solved(self, scores: dict) -> bool:
        """The task's documented success rule applied to `evaluate()`'s scores."""
