"""Echo state networks on Mackey-Glass (τ = 17, one step ahead, T = 100): the ridge readout's accuracy and cost.

For the default ESN (conf/model/esn.yaml: 200 units, 1000 windows) and a 400-unit one with λ = 1e-8
(experiment paper_jaeger2001), over 3 reservoir seeds: test NRMSE one step ahead, Jaeger's free-running
NRMSE84, and the wall time of the whole trial on one thread (reservoir runs, ridge solves, probes, test).
Figures before the ridge readout (an Adam-trained readout, issue 12): NRMSE 0.112 after 1000 steps (45 s),
0.078 after 4000 (185 s). Reference: Jaeger 2001, NRMSE84 = 2.8e-4 with 400 units.

    .venv/bin/python bench/bench_esn.py
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.config import TrialConfig, from_dict, to_dict  # noqa: E402
from workers.trial import run_trial  # noqa: E402

ESN = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "model" / "esn.yaml").read_text())


def config(seed: int, **model) -> TrialConfig:
    cfg = to_dict(TrialConfig())
    cfg["model"].update(ESN, **model)
    cfg["task"].update(name="mackey_glass", seq_len=100, free_run=84)
    cfg["train"].update(device="cpu", seed=seed)
    return from_dict(cfg)


def main() -> None:
    torch.set_num_threads(1)
    run_trial(config(0, hidden_size=20))           # warm-up: imports, kernels
    print("| ESN | seed | test NRMSE (1 step) | NRMSE84 (free run) | wall s (1 thread) |")
    print("|---|---|---|---|---|")
    for label, model in (("default: 200 units, λ = 1e-6", {}), ("400 units, λ = 1e-8", {"hidden_size": 400, "ridge": 1e-8})):
        walls = []
        for seed in (0, 1, 2):
            start = time.perf_counter()
            final = run_trial(config(seed, **model))["final"]
            walls.append(time.perf_counter() - start)
            print(f"| {label} | {seed} | {final['nrmse']:.2e} | {final['free_run_nrmse']:.2e} | {walls[-1]:.2f} |")
        print(f"| {label} | median wall | | | {statistics.median(walls):.2f} |")


if __name__ == "__main__":
    main()
