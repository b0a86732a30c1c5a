"""How much MLflow logging slows training: the same trial with no reporter and with the MLflow
reporter (metrics every `train.log_every` steps and at every probe, sent in batches by a background
thread to a real local SQLite store), LSTM hidden 64, adding T=50, batch 64.

    .venv/bin/python bench/bench_tracking_overhead.py [--steps 1000] [--pairs 3] [--log-every 10]

Compares the training loop's own wall time (`final.wall_s`; artifacts are written after it) in A/B
pairs in one process, and prints the median ratio (goal: a few percent at most).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from mlflow import MlflowClient

from tracking.runs.connection import resolve_uri
from tracking.runs.trial_recorder import TrialRecorder
from workers.config import Cell, TrialConfig
from workers.trial import run_trial


def config(steps: int, log_every: int) -> TrialConfig:
    cfg = TrialConfig()
    cfg.model.cell, cfg.model.hidden_size = Cell.lstm, 64
    cfg.task.seq_len, cfg.train.batch_size, cfg.train.steps = 50, 64, steps
    cfg.train.log_every, cfg.train.device = log_every, cfg.train.device.cpu
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--log-every", type=int, default=10)
    args = ap.parse_args()
    uri = resolve_uri("", Path(tempfile.mkdtemp(prefix="gradstudy-bench-")))
    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    cfg = config(args.steps, args.log_every)
    run_trial(config(30, args.log_every))          # warm-up
    ratios = []
    for i in range(args.pairs):
        plain = run_trial(cfg)["final"]["wall_s"]
        run = client.create_run(experiment)
        reporter = TrialRecorder(uri, run.info.run_id)
        logged = run_trial(cfg, reporter)["final"]["wall_s"]
        n = len(client.get_metric_history(run.info.run_id, "train/loss"))
        ratios.append(logged / plain)
        print(f"pair {i + 1}: plain {plain:.2f} s, with MLflow {logged:.2f} s, ratio {logged / plain:.3f}; "
              f"train/loss points logged {n}, delivered={reporter.result['delivered']}", flush=True)
    print(f"training time with MLflow / without, median of {args.pairs}: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
