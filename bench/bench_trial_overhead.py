"""Wall time of a gradstudy trial (probes at the default cadence, reporter calls, validation scoring)
against the same training in a minimal plain-PyTorch loop: LSTM, hidden 64, adding T=50, batch 64.

    .venv/bin/python bench/bench_trial_overhead.py [--steps 2000] [--pairs 3]

Runs the two alternately (A B A B …) in one process on the same machine and prints each time and the
median ratio trial / plain. Goal: ≤ 1.10. The machine is shared and noisy: compare ratios, not seconds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from workers.config import Cell, TrialConfig
from workers.trial import run_trial

HIDDEN, T, BATCH = 64, 50, 64


def plain_loop(steps: int, seed: int = 0) -> float:
    torch.manual_seed(seed)
    lstm, readout = nn.LSTM(2, HIDDEN, batch_first=True), nn.Linear(HIDDEN, 1)
    opt = torch.optim.Adam([*lstm.parameters(), *readout.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    rows = torch.arange(BATCH)
    start = time.perf_counter()
    for _ in range(steps):
        values = torch.rand(BATCH, T, generator=g)
        mask = torch.zeros(BATCH, T)
        mask[rows, torch.randint(0, T // 2, (BATCH,), generator=g)] = 1.0
        mask[rows, torch.randint(T // 2, T, (BATCH,), generator=g)] = 1.0
        x, y = torch.stack([values, mask], -1), (values * mask).sum(1)
        out, _ = lstm(x)
        loss = ((readout(out[:, -1]).squeeze(-1) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def gradstudy_trial(steps: int, seed: int = 0) -> tuple[float, int]:
    cfg = TrialConfig()
    cfg.model.cell, cfg.model.hidden_size = Cell.lstm, HIDDEN
    cfg.task.seq_len, cfg.train.batch_size, cfg.train.steps, cfg.train.seed = T, BATCH, steps, seed
    cfg.train.device = cfg.train.device.cpu
    start = time.perf_counter()
    summary = run_trial(cfg)
    return time.perf_counter() - start, len(summary["probes"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    plain_loop(50), gradstudy_trial(50)            # warm-up: imports, allocator, oneDNN primitives
    ratios = []
    for i in range(args.pairs):
        base = plain_loop(args.steps)
        trial, n_probes = gradstudy_trial(args.steps)
        ratios.append(trial / base)
        print(f"pair {i + 1}: plain {base:.2f} s, trial {trial:.2f} s ({n_probes} probes), "
              f"ratio {trial / base:.3f}", flush=True)
    print(f"trial / plain loop, median of {args.pairs}: {statistics.median(ratios):.3f} (goal ≤ 1.10); "
          f"threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
