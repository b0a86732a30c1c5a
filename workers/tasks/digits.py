"""Sequential (optionally permuted) digits: scikit-learn's bundled 8×8 handwritten digits
(`sklearn.datasets.load_digits`, 1797 images from the UCI optical-recognition data), read one pixel per
step — a small, offline cousin of sequential / permuted MNIST (Le, Jaitly & Hinton 2015).

Definition: each image is a sequence of L = T = 64 pixels (input_size 1, values 0..16 scaled to [0, 1]),
in row-major order, or, with `permute`, in a fixed random order drawn from the seed. The target, read at
the last step, is the digit 0..9; the loss is the cross-entropy.

Splits: a seeded shuffle of the 1797 samples; the last min(test_size, 300) are the test split, the
min(val_size, 200) before them the validation split, the rest (≥ 1297) the training pool, from which
`batch()` draws with replacement. `held_out(split, size)` returns the whole split; `size` is ignored,
the split sizes come from the config (capped as above). The split does not depend on `permute`.

Baseline: a constant (uniform) prediction scores ln 10 and accuracy 0.1.

Solved (this project's rule): test accuracy ≥ 0.9.

Dependency span: 64, the whole image. The class is read at the last pixel and depends on strokes anywhere
in the image (in row-major order the top rows as much as the bottom ones; permuted, any pixel).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from ..config import TaskConfig
from .base import Batch, Task, cross_entropy

N_PIXELS = 64
MAX_TEST, MAX_VAL = 300, 200


@lru_cache(maxsize=1)
def digits_data() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 images as float32 [N, 64] in [0, 1] and their int64 labels [N] (do not modify)."""
    from sklearn.datasets import load_digits  # only digits trials pay for scikit-learn's import

    data = load_digits()
    return torch.tensor(data.data / 16.0, dtype=torch.float32), torch.tensor(data.target, dtype=torch.long)


class Digits(Task):
    def __init__(self, cfg: TaskConfig, seed: int):
        if cfg.seq_len != N_PIXELS:
            raise ValueError(f"task.seq_len={cfg.seq_len} is invalid for digits; it must be 64")
        self.name = "digits"
        self.length = N_PIXELS
        self.input_size = 1
        self.output_size = 10
        self.classification = True
        self.per_step = False
        self.baseline_loss = math.log(10)
        self.baseline_accuracy = 0.1
        self.seed = seed

        pixels, labels = digits_data()
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(labels), generator=g)
        pixel_order = torch.randperm(N_PIXELS, generator=g) if cfg.permute else torch.arange(N_PIXELS)
        x = pixels[:, pixel_order].unsqueeze(-1)

        n_test, n_val = min(cfg.test_size, MAX_TEST), min(cfg.val_size, MAX_VAL)
        n_train = len(labels) - n_test - n_val
        self.indices = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                        "test": order[n_train + n_val:]}
        self._splits = {name: Batch(x[idx], labels[idx]) for name, idx in self.indices.items()}

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        train = self._splits["train"]
        idx = torch.randint(0, len(train.y), (size,), generator=generator)
        return Batch(train.x[idx], train.y[idx])

    def held_out(self, split: str, size: int) -> Batch:
        if split not in ("val", "test"):
            raise ValueError(f"unknown split {split!r}; valid: 'val', 'test'")
        return self._splits[split]

    def dependency_span(self) -> int:
        return N_PIXELS

    def pointwise(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return cross_entropy(pred, y)

    def solved(self, scores: dict) -> bool:
        return scores["accuracy"] is not None and scores["accuracy"] >= 0.9
