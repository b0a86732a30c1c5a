"""Jaeger (2001)'s free-running test of a one-step predictor on Mackey-Glass (`task.free_run` = k > 0).

From each of `runs` evenly spaced starting points in one part of the series (the test part for the final
score; the validation part to choose an ESN's ridge λ, workers/forecast/esn_fit.py), the network is driven by the
true series for `teacher` steps (teacher forcing, which also washes its state in; `task.free_run_teacher`,
0 = `task.seq_len`), then runs on its own output: each prediction is fed back as the next input, k times.
The error of the k-th free-running prediction, over the runs, normalized by the standard deviation of
that part of the series, is NRMSE_k (Jaeger 2001, GMD Report 148 §6.4: NRMSE84 = 2.8e-4 with 400 reservoir
units after 3000 training steps; Jaeger & Haas 2004 about 10^-4.2 with 1000). Any cell can be run this
way; it is the ESN's classical figure. The teacher-forced pass does not depend on the readout, so it can
be run once (`teacher_pass`) and the free run repeated for several readouts (`free_run_from`).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from workers.model.network import RecurrentNet
from workers.tasks.mackey_glass import MackeyGlass

CHUNK = 100   # teacher-forced steps run at once (bounds the memory of long teacher runs)


def teacher_length(task: MackeyGlass, teacher: int = 0) -> int:
    """The teacher-forced steps of a free run: `teacher`, or the task's window length when 0."""
    return teacher or task.length


def free_run_starts(task: MackeyGlass, split: str, teacher: int, steps: int, runs: int) -> Optional[torch.Tensor]:
    """The starting points of the runs in `split` (None when a run does not fit in it)."""
    lo, hi = task.bounds[split]
    last_start = hi - teacher - steps
    if last_start <= lo:
        return None
    return torch.linspace(lo, last_start, min(runs, last_start - lo + 1)).long()


def free_run_truth(task: MackeyGlass, starts: torch.Tensor, teacher: int, steps: int) -> torch.Tensor:
    """The true value of each run's k-th free-running prediction, x[s + teacher + k − 1]."""
    return task.series[starts + teacher + steps - 1]


def free_run_spread(task: MackeyGlass, split: str) -> float:
    """The variance of the split's series, NRMSE's normalizer."""
    lo, hi = task.bounds[split]
    return task.series[lo:hi].double().var(unbiased=False).item()


@torch.no_grad()
def teacher_pass(net: RecurrentNet, task: MackeyGlass, split: str, teacher: int, steps: int, runs: int):
    """(starts, top output of the last teacher-forced step [R, 1, H], states) or None if no run fits."""
    starts = free_run_starts(task, split, teacher, steps, runs)
    if starts is None:
        return None
    device = next(net.parameters()).device
    series = task.series.to(device)
    starts_d = starts.to(device)
    was_training = net.training
    net.eval()
    states = None
    for begin in range(0, teacher, CHUNK):
        idx = starts_d.unsqueeze(1) + torch.arange(begin, min(begin + CHUNK, teacher), device=device)
        top, states = net.run(series[idx].unsqueeze(-1), states)
    net.train(was_training)
    return starts, top[:, -1:], states


@torch.no_grad()
def free_run_from(net: RecurrentNet, task: MackeyGlass, split: str, passed, teacher: int, steps: int) -> float:
    """NRMSE_k of the readout as it is, continuing a `teacher_pass` on the network's own output."""
    if passed is None:
        return math.nan
    starts, top, states = passed
    was_training = net.training
    net.eval()
    prediction = net.head(top)                                                    # predicts x[s+T]
    for _ in range(steps - 1):
        output = net(prediction, states)
        prediction, states = output.out[:, -1:], output.states
    net.train(was_training)
    truth = free_run_truth(task, starts, teacher, steps).to(prediction.device)
    error = ((prediction.reshape(-1).double() - truth.double()) ** 2).mean()
    return math.sqrt(error.item() / free_run_spread(task, split))


@torch.no_grad()
def free_run_nrmse(net: RecurrentNet, task: MackeyGlass, steps: int, runs: int, teacher: int = 0,
                   split: str = "test") -> float:
    teacher = teacher_length(task, teacher)
    return free_run_from(net, task, split, teacher_pass(net, task, split, teacher, steps, runs), teacher, steps)
