"""Per-trial overhead of a study: trials of negligible compute (wrec_phase, 2 training steps, T = 10, hidden 8),
2 Ray workers, with MLflow tracking on and off, in one process on this machine.

    .venv/bin/python bench/bench_per_trial.py [--trials 100] [--profile driver.prof]   (~3 min)

Each setting runs a study of n and one of 2n trials (after a warm-up study that starts Ray and its
workers): wall time over trials, and the cost of each further trial, (T(2n) − T(n)) / n, in which a
study's fixed costs (pre-flight checks, the MLflow parent run, the study report) cancel out. The trials'
own compute is ~10 ms, so this is the framework's cost per trial: Optuna ask/tell, the Ray task, the
worker's storage and MLflow calls, the driver's bookkeeping.
Goal (issue 11): ≤ 0.15 s per trial with tracking on. `--profile F` writes the driver's cProfile of the
tracked 2n-trial study to F (`python -m pstats F`).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import tempfile
import time

BASE = ["experiment=wrec_phase", "train.steps=2", "task.seq_len=10", "model.hidden_size=8", "cluster.num_cpus=2",
        "study.sampler=random", "study.pruner=none"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--profile", default="", help="write the driver's cProfile of the tracked study here")
    args = ap.parse_args()
    os.environ["GRADSTUDY_HOME"] = tempfile.mkdtemp(prefix="gradstudy-bench-")

    from study.cli.main import quiet_libraries
    from study.cluster import placement

    quiet_libraries()       # as `gradstudy run` does: no Optuna INFO line (and best-trial scan) per trial
    from study.config.compose import compose_root
    from study.driver.runner import StudyRunner
    from study.recording.hook import tracking_hooks

    def study(name: str, n: int, tracking: bool, profile: str = "") -> float:
        composed = compose_root(BASE + [f"study.name={name}", f"study.n_trials={n}",
                                        f"tracking.enabled={str(tracking).lower()}"])
        runner = StudyRunner(composed)
        profiler = cProfile.Profile() if profile else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        outcome = runner.run(tracking_hooks(composed))
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        took = time.perf_counter() - start
        assert not outcome.timed_out and outcome.code in (None, 0), outcome
        return took

    t0 = time.perf_counter()
    placement.connect(compose_root(BASE).root.cluster)
    print(f"Ray start: {time.perf_counter() - t0:.1f} s (once per driver)")
    print(f"warm-up (4 trials, tracking on): {study('warmup', 4, True):.1f} s")
    n = args.trials
    for tracking in (False, True):
        label = "on " if tracking else "off"
        one = study(f"{label.strip()}-n", n, tracking)
        two = study(f"{label.strip()}-2n", 2 * n, tracking, args.profile if tracking else "")
        # a study's fixed costs (pre-flight checks, opening MLflow, the study report) cancel out in the
        # difference: what each further trial costs
        print(f"tracking {label}: {n} trials {one:.1f} s ({one / n:.3f} s/trial), {2 * n} trials {two:.1f} s; "
              f"each further trial {(two - one) / n:.3f} s" + ("  (goal ≤ 0.15)" if tracking else ""))
    placement.shutdown()


if __name__ == "__main__":
    main()
