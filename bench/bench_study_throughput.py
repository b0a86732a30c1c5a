"""Study throughput with 1 vs 2 Ray workers, and the framework's overhead per trial.

    .venv/bin/python bench/bench_study_throughput.py [--trials 8] [--steps 300] [--tracking]

Equal trials (adding T=50, rnn, hidden 64, one CPU thread each) are run three ways in one process on
this machine, after a warm-up study that starts Ray and its two worker processes:
  A. in-process, one after another (`run_trial`, no Ray, no Optuna);
  B. a study with cluster.max_concurrent=1;
  C. a study with cluster.max_concurrent=2.
Prints B/C (goal ≥ 1.8 on 2 cores) and (B − A)/trials, the overhead per trial (goal ≤ 1 s): Optuna
ask/tell on the journal file, Hydra composition, Ray scheduling, result transfer, summary writing
(and with --tracking: MLflow runs, batched metrics, per-trial plots and the study report).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--tracking", action="store_true", help="with MLflow records (local SQLite store)")
    args = ap.parse_args()
    os.environ["GRADSTUDY_HOME"] = tempfile.mkdtemp(prefix="gradstudy-bench-")

    from study.cluster import placement
    from study.config.compose import compose_root
    from study.driver.runner import StudyRunner
    from study.recording.hook import tracking_hooks
    from workers.trial import run_trial

    base = ["task.seq_len=50", "model.cell=rnn", "model.hidden_size=64", f"train.steps={args.steps}",
            "train.probe_every=100", "study.sampler=random", "study.pruner=none", "cluster.num_cpus=2",
            "train.device=cpu", f"tracking.enabled={str(args.tracking).lower()}"]

    def study(name: str, n: int, concurrent: int) -> float:
        composed = compose_root(base + [f"study.name={name}", f"study.n_trials={n}",
                                        f"cluster.max_concurrent={concurrent}"])
        start = time.perf_counter()
        StudyRunner(composed).run(tracking_hooks(composed))
        return time.perf_counter() - start

    t0 = time.perf_counter()
    placement.connect(compose_root(base).root.cluster)
    print(f"Ray start: {time.perf_counter() - t0:.1f} s (once per driver)")
    warm = study("warmup", 2, 2)
    print(f"warm-up study (2 trials, cold workers): {warm:.1f} s")

    torch.set_num_threads(1)
    cfg = compose_root(base).trial
    start = time.perf_counter()
    for _ in range(args.trials):
        run_trial(cfg)
    inproc = time.perf_counter() - start
    one = study("one_worker", args.trials, 1)
    two = study("two_workers", args.trials, 2)
    print(f"A in-process sequential: {inproc:.2f} s ({inproc / args.trials:.2f} s/trial)")
    print(f"B study, 1 worker:       {one:.2f} s")
    print(f"C study, 2 workers:      {two:.2f} s")
    print(f"throughput 2 vs 1 workers (B/C): {one / two:.2f}× (goal ≥ 1.8)")
    print(f"overhead per trial ((B−A)/n): {(one - inproc) / args.trials:.3f} s (goal ≤ 1 s)")
    placement.shutdown()


if __name__ == "__main__":
    main()
