"""A linear autoregressive baseline for Mackey-Glass (`task.ar_order` = k > 0): the yardstick any
nonlinear model on this series must be read against.

AR(k) predicts the series `horizon` steps ahead as an affine function of its last k values,

    x̂[t + h] = c + Σ_{i<k} a_i · x[t − i],

with (a, c) the ordinary least-squares fit (float64, `numpy.linalg.lstsq`) over every position of the
training part of the series (the split a model is fit on; validation and test are never read). Mackey-Glass
one step ahead is nearly linear: AR(30) reaches a one-step NRMSE near 5e-4 on the project's series.

Scores, made exactly like the model's (workers/trial.py):
- `one_step_scores`: the same held-out windows and positions as the model's test score (the first `skip`
  steps of each window left out, as an ESN's washout is), the task's own `evaluate` (same normalization);
  the k values before a position are read from the series, so they may precede the window's start.
- `free_run_nrmse`: Jaeger's free-running test from the same starting points and teacher-forced context
  as the model's (workers/forecast/free_run.py): its last k true values, then k-step predictions fed back as inputs.
Pure numpy/torch: no Ray, Optuna or MLflow.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from workers.forecast.free_run import free_run_spread, free_run_starts, free_run_truth


def lagged(series: np.ndarray, order: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Design rows [x[t], x[t−1], …, x[t−k+1]] and targets x[t+h] for every t with all of them in `series`."""
    n = len(series) - order - horizon + 1
    if n < 1:
        raise ValueError(f"a series of {len(series)} samples is too short for AR({order}) at horizon {horizon}")
    rows = np.stack([series[order - 1 - i:order - 1 - i + n] for i in range(order)], 1)
    return rows, series[order - 1 + horizon:order - 1 + horizon + n]


def fit_ar(series, order: int, horizon: int = 1) -> np.ndarray:
    """Least-squares AR(order) coefficients [a_0 … a_{k−1}, c] (a_0 weighs the latest value), in float64."""
    series = np.asarray(series, dtype=np.float64)
    rows, target = lagged(series, order, horizon)
    design = np.hstack([rows, np.ones((len(rows), 1))])
    return np.linalg.lstsq(design, target, rcond=None)[0]


def predict(coef: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Predictions from histories [..., k] in time order (the latest value last)."""
    return history[..., ::-1] @ coef[:-1] + coef[-1]


def one_step_scores(coef: np.ndarray, task, windows, skip: int) -> dict:
    """The task's scores ("loss", "nrmse") of the AR on held-out windows (a Batch: x [B, L, 1], y [B, L] and
    the windows' `starts` in the series), at the positions a model is scored on (from step `skip` on)."""
    order = len(coef) - 1
    series = task.series.double().numpy()
    x, y, starts = windows.x, windows.y, windows.starts.numpy()
    positions = starts[:, None] + np.arange(skip, x.shape[1])                 # absolute t of each scored step
    if positions.min() - order + 1 < 0:
        raise ValueError(f"AR({order}) needs {order} samples before the first scored step")
    history = series[positions[..., None] + np.arange(-order + 1, 1)]        # [B, L − skip, k]
    prediction = torch.tensor(predict(coef, history), dtype=y.dtype).unsqueeze(-1)
    return task.evaluate(prediction, y[:, skip:])


def free_run_nrmse(coef: np.ndarray, task, steps: int, runs: int, teacher: int, split: str = "test") -> float:
    """NRMSE_k of the AR run on its own output for `steps` steps after the same teacher-forced context as
    a model's free run (workers/forecast/free_run.py): the last k true values of each teacher window."""
    order = len(coef) - 1
    starts = free_run_starts(task, split, teacher, steps, runs)
    if starts is None:
        return math.nan
    series = task.series.double().numpy()
    begin = starts.numpy() + teacher                                           # the first predicted index
    if (begin - order).min() < 0:
        return math.nan
    history = series[begin[:, None] + np.arange(-order, 0)]                    # [R, k], time order
    for _ in range(steps):
        step = predict(coef, history)
        history = np.concatenate([history[:, 1:], step[:, None]], 1)
    truth = free_run_truth(task, starts, teacher, steps).double().numpy()
    error = np.mean((history[:, -1] - truth) ** 2)
    return math.sqrt(error / free_run_spread(task, split))


def ar_baseline(task, order: int, test, skip: int, free_run: int, runs: int, teacher: int) -> dict:
    """The `final` entries of the AR(order) baseline: ar_order, ar_nrmse and (free_run > 0) ar_free_run_nrmse."""
    lo, hi = task.bounds["train"]
    coef = fit_ar(task.series[lo:hi].double().numpy(), order, task.horizon)
    out = {"ar_order": order, "ar_nrmse": one_step_scores(coef, task, test, skip)["nrmse"]}
    if free_run:
        out["ar_free_run_nrmse"] = free_run_nrmse(coef, task, free_run, runs, teacher)
    return out
