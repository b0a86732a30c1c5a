"""The exact log-space profile's own cost (`workers.gradients.log_profile.log_profile_and_loss`, what an init-phase
probe runs), per cell, at one T and batch, one thread: the best of `--reps` runs, so that the machine's noise
adds less.

    .venv/bin/python bench/bench_log_profile.py [--length 5000] [--batch 32] [--reps 5] [--code DIR]

`--code DIR` times the code of another tree (e.g. a `git worktree add /tmp/before REV`): run it beside a run of
this tree, alternated, to compare a change within one session of the machine.
"""
from __future__ import annotations

import argparse
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=5000, help="T")
    ap.add_argument("--batch", type=int, default=32, help="the probe's batch (init_phase: train.batch_size=32)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--code", default="", help="the root of another tree whose code is timed")
    args = ap.parse_args()
    if args.code:
        sys.path.insert(0, args.code)
    import torch

    from workers.config import Cell, Device, TaskConfig, TrialConfig
    from workers.gradients import log_profile
    from workers.trial import build

    torch.set_num_threads(1)            # as a Ray worker runs a 1-CPU trial
    print(f"{log_profile.__file__}: T = {args.length}, batch {args.batch}, best of {args.reps}")
    for cell in (Cell.rnn, Cell.lstm, Cell.gru):
        cfg = TrialConfig(task=TaskConfig(seq_len=args.length))
        cfg.model.cell, cfg.train.device = cell, Device.cpu
        task, net = build(cfg, torch.device("cpu"))
        batch = task.batch(args.batch, torch.Generator().manual_seed(0))
        times = []
        for _ in range(args.reps):
            start = time.perf_counter()
            log_profile.log_profile_and_loss(net, task, batch)
            times.append(time.perf_counter() - start)
        print(f"  {cell.value:5s} {min(times):.3f} s")


if __name__ == "__main__":
    main()
