"""What subnormal floats cost a vanishing-gradient trial on the CPU, and what flushing them saves
(workers/subnormals.py): the same training steps with flushing off and on, alternately, in one process.

    .venv/bin/python bench/bench_subnormals.py [--steps 300] [--pairs 2] [--seq-len 150]

Two nets on the adding problem, hidden 100, batch 64, Adam lr 3e-4, one thread: a default-init tanh RNN
(its gradient vanishes: the backward pass is full of subnormals) and an identity-initialized ReLU RNN
(IRNN: it does not vanish, a control that flushing should not change). Prints each time and the median
ratio off / on per net. The machine is shared and noisy: compare the ratios, not the seconds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from workers.config import from_dict
from workers.loop import train
from workers.reporter import Reporter
from workers.trial import build

NETS = {"tanh, default init (vanishing)": ("tanh", "default"), "relu, identity init (IRNN)": ("relu", "identity")}


def timed(activation: str, init: str, steps: int, seq_len: int, flush: bool) -> float:
    cfg = from_dict({"task": {"name": "adding", "seq_len": seq_len},
                     "model": {"cell": "rnn", "activation": activation, "init": init, "hidden_size": 100},
                     "train": {"steps": steps, "lr": 3e-4, "batch_size": 64, "probe_every": 10 ** 9, "seed": 2,
                               "clip": {"mode": "norm", "threshold": 1.0}}})
    task, net = build(cfg, torch.device("cpu"))
    torch.set_flush_denormal(flush)
    try:
        start = time.perf_counter()
        train(net, task, cfg, Reporter(), torch.device("cpu"))
        return time.perf_counter() - start
    finally:
        torch.set_flush_denormal(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, (activation, init) in NETS.items():
        ratios = []
        for _ in range(args.pairs):
            off = timed(activation, init, args.steps, args.seq_len, False)
            on = timed(activation, init, args.steps, args.seq_len, True)
            ratios.append(off / on)
            print(f"{name}: {args.steps} steps, subnormals kept {off:.1f} s, flushed {on:.1f} s")
        print(f"{name}: median ratio kept/flushed {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
