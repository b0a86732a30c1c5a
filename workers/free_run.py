"""Jaeger (2001)'s free-running test of a one-step predictor on Mackey-Glass (`task.free_run` = k > 0).

From each of `runs` starting points in the test part of the series, the network is driven by the true
series for `task.seq_len` steps (teacher forcing, which also washes its state in), then runs on its own
output: each prediction is fed back as the next input, k times. The error of the k-th free-running
prediction, over the runs, normalized by the test series' standard deviation, is NRMSE_k
(Jaeger 2001 reports NRMSE84 = 2.8e-4 with 400 reservoir units, Jaeger & Haas 2004 about 10^-4.2 with
1000). Any cell can be run this way; it is the ESN's classical figure.
"""
from __future__ import annotations

import math

import torch

from workers.model.network import RecurrentNet
from workers.tasks.mackey_glass import MackeyGlass


@torch.no_grad()
def free_run_nrmse(net: RecurrentNet, task: MackeyGlass, steps: int, runs: int) -> float:
    lo, hi = task.bounds["test"]
    teacher = task.length
    last_start = hi - teacher - steps
    if last_start <= lo:
        return math.nan
    starts = torch.linspace(lo, last_start, min(runs, last_start - lo + 1)).long()
    device = next(net.parameters()).device
    series = task.series.to(device)
    x = series[starts.unsqueeze(1) + torch.arange(teacher)].unsqueeze(-1).to(device)   # [R, T, 1]
    was_training = net.training
    net.eval()
    output = net(x)
    prediction, states = output.out[:, -1:], output.states                          # predicts x[s+T]
    for _ in range(steps - 1):
        output = net(prediction, states)
        prediction, states = output.out[:, -1:], output.states
    net.train(was_training)
    truth = series[starts + teacher + steps - 1].to(device)                              # x[s+T+k-1]
    error = ((prediction.reshape(-1).double() - truth.double()) ** 2).mean()
    spread = series[lo:hi].double().var(unbiased=False)
    return math.sqrt((error / spread).item())
