"""Mackey-Glass series prediction (Mackey & Glass 1977; the echo-state benchmark of Jaeger 2001,
"The 'echo state' approach to analysing and training recurrent neural networks", τ = 17).

Series: dx/dt = 0.2·x(t−τ) / (1 + x(t−τ)^10) − 0.1·x(t), integrated by Euler with dt = 0.1 (10
substeps per time unit) and sampled every time unit, from a history x = 1.2 + 0.2·(U[0,1] − 0.5) per
history point (numpy Generator seeded by the task seed); the first 1000 samples are discarded as
transient. The series (`task.series_length` samples; 0, the default: max(20000, 20·(T + horizon)), so that
each split holds many windows; a longer series gives a longer training part, e.g. for an ESN's
`model.fit_run`) is z-scored with the mean and std of its first 70% (training part); the next 15% is the validation
part,
the last 15% the test part.

Definition: an input window of T consecutive samples (input_size 1) from a random position of a split;
the target at each step is the series `horizon` steps ahead (y: [B, T]), all inside the split; the loss
is the squared error averaged over all steps.

Baseline: predicting the training mean (0 after z-scoring), whose MSE on the test windows is measured
once (≈ 1). `evaluate()` adds "nrmse" = sqrt(MSE / var(y)), 1 for that baseline.

Solved (this project's rule): test NRMSE ≤ 0.1.

Dependency span: 3τ steps (51 for τ = 17), capped at T. The series is a delay-differential system: its
next value is determined by its history back to about τ time units (the state of such a system is the
whole segment x[t − τ, t], not x(t) alone), and a delay embedding that reconstructs its attractor takes
a few delays, so a few τ of input carry what a prediction needs; samples further back add nothing that
the recent history does not already determine. 3τ is that "few". A gradient that fades over a whole long
window (T ≫ 3τ) is no failure for this task.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..config import TaskConfig, mackey_glass_parts, mackey_glass_samples
from .base import Batch, Task, squared_error

SUBSTEPS = 10          # Euler steps per time unit (dt = 0.1)
TRANSIENT = 1000       # samples discarded at the start
SPAN_DELAYS = 3        # the dependency span, in delays τ (see the docstring)


@lru_cache(maxsize=8)
def mackey_glass_series(n: int, tau: int, seed: int) -> np.ndarray:
    """n raw samples (float64) of the Mackey-Glass series, after the transient (do not modify).

    The Euler recurrence x[k] = a·x[k−1] + dt·f(x[k−1−D]), a = 1 − 0.1·dt, D = τ/dt, is linear in x
    once the delayed term is known, and the delayed term of the next D substeps is always already
    computed; so each block of D substeps is solved at once in closed form:
    x[s+j] = a^j · (a·x[s−1] + Σ_{i≤j} a^{−i}·dt·f_i).
    """
    dt, D = 1.0 / SUBSTEPS, tau * SUBSTEPS
    a = 1.0 - 0.1 * dt
    rng = np.random.default_rng(seed)
    total = D + 1 + (n + TRANSIENT) * SUBSTEPS
    total += -(total - D - 1) % D  # whole blocks
    x = np.empty(total)
    x[:D + 1] = 1.2 + 0.2 * (rng.random(D + 1) - 0.5)
    powers, inverse = a ** np.arange(D), a ** -np.arange(D)
    for s in range(D + 1, total, D):
        delayed = x[s - 1 - D:s - 1]
        forcing = dt * 0.2 * delayed / (1.0 + delayed ** 10)
        x[s:s + D] = powers * (a * x[s - 1] + np.cumsum(inverse * forcing))
    samples = x[D + SUBSTEPS::SUBSTEPS]
    return samples[TRANSIENT:TRANSIENT + n]


class MackeyGlass(Task):
    def __init__(self, cfg: TaskConfig, seed: int):
        self.name = "mackey_glass"
        self.length = cfg.seq_len
        self.horizon = cfg.horizon
        self.tau = cfg.tau
        self.input_size = 1
        self.output_size = 1
        self.classification = False
        self.per_step = True
        self.baseline_accuracy = None
        self.seed = seed

        n = mackey_glass_samples(cfg)
        raw = mackey_glass_series(n, cfg.tau, seed)
        parts = mackey_glass_parts(cfg)
        n_train, n_val = parts["train"], parts["val"]
        train = raw[:n_train]
        self.series = torch.tensor((raw - train.mean()) / train.std(), dtype=torch.float32)
        self.bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
        y_test = self.held_out("test", cfg.test_size).y
        self.baseline_loss = (y_test ** 2).mean().item()

    def _windows(self, split: str, size: int, generator: torch.Generator) -> Batch:
        lo, hi = self.bounds[split]
        span = self.length + self.horizon
        starts = torch.randint(lo, hi - span + 1, (size, 1), generator=generator)
        idx = starts + torch.arange(self.length)
        return Batch(self.series[idx].unsqueeze(-1), self.series[idx + self.horizon], starts.squeeze(1))

    def batch(self, size: int, generator: torch.Generator) -> Batch:
        return self._windows("train", size, generator)

    def dependency_span(self) -> int:
        return SPAN_DELAYS * self.tau

    def draw_held_out(self, split: str, size: int, generator: torch.Generator) -> Batch:
        return self._windows(split, size, generator)

    def pointwise(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return squared_error(pred, y)

    def evaluate(self, out: torch.Tensor, y: torch.Tensor) -> dict:
        scores = super().evaluate(out, y)
        scores["nrmse"] = (scores["loss"] / y.var(unbiased=False).item()) ** 0.5
        return scores

    def solved(self, scores: dict) -> bool:
        return scores.get("nrmse", float("inf")) <= 0.1
