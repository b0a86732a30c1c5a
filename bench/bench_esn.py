"""Echo state networks on Mackey-Glass (τ = 17, one step ahead, T = 100): the ridge readout's accuracy and cost.

For the default ESN (conf/model/esn.yaml: 200 units, 1000 windows), a 400-unit one with λ = 1e-8 on the
same windows, and experiment paper_jaeger2001's trial (Jaeger's protocol: one long teacher-forced fit run,
λ chosen on a validation free run, 1000 teacher-forced steps before the free run), over 3 reservoir seeds:
test NRMSE one step ahead and the AR(30) baseline's (workers/forecast/ar_baseline.py), Jaeger's free-running NRMSE84
and the AR's, the λ used, and the wall time of the whole trial on one thread (reservoir runs, ridge
solves, probes, test, baseline).
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


PAPER_FILE = Path(__file__).resolve().parents[1] / "conf" / "experiment" / "paper_jaeger2001.yaml"
PAPER = yaml.safe_load(PAPER_FILE.read_text())


def config(seed: int, task: dict | None = None, train: dict | None = None, **model) -> TrialConfig:
    cfg = to_dict(TrialConfig())
    cfg["model"].update({**ESN, **model})
    cfg["task"].update({"name": "mackey_glass", "seq_len": 100, "free_run": 84, **(task or {})})
    cfg["train"].update({"device": "cpu", "seed": seed, **(train or {})})
    return from_dict(cfg)


def paper(seed: int) -> TrialConfig:
    """Experiment paper_jaeger2001's trial (Jaeger's protocol: one long fit run, λ chosen on validation)."""
    return config(seed, PAPER["task"], {k: v for k, v in PAPER.get("train", {}).items() if k != "seed"},
                  **PAPER["model"])


def main() -> None:
    torch.set_num_threads(1)
    run_trial(config(0, hidden_size=20))           # warm-up: imports, kernels
    print("| ESN | seed | test NRMSE (1 step) | AR(30) NRMSE (1 step) | NRMSE84 (free run) | AR(30) NRMSE84 | λ "
          "| wall s (1 thread) |")
    print("|---|---|---|---|---|---|---|---|")
    setups = (("default: 200 units, λ = 1e-6", lambda seed: config(seed)),
              ("400 units, λ = 1e-8", lambda seed: config(seed, hidden_size=400, ridge=1e-8)),
              ("paper_jaeger2001 (Jaeger's protocol)", paper))
    for label, make in setups:
        walls = []
        for seed in (0, 1, 2):
            start = time.perf_counter()
            final = run_trial(make(seed))["final"]
            walls.append(time.perf_counter() - start)
            print(f"| {label} | {seed} | {final['nrmse']:.2e} | {final['ar_nrmse']:.2e} "
                  f"| {final['free_run_nrmse']:.2e} "
                  f"| {final['ar_free_run_nrmse']:.2e} | {final['ridge']:.0e} | {walls[-1]:.2f} |")
        print(f"| {label} | median wall | | | | | | {statistics.median(walls):.2f} |")


if __name__ == "__main__":
    main()
