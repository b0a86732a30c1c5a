"""Per-trial overhead of a study: trials of negligible compute (wrec_phase, 2 training steps, T = 10, hidden 8),
2 Ray workers, with MLflow tracking on and off, in one process on this machine.

    .venv/bin/python bench/bench_per_trial.py [--trials 100] [--profile driver.prof]

Wall time per trial = the study's wall time (after a warm-up study that starts Ray and its workers) over
the number of trials; the trials' own compute is ~10 ms, so this is the framework's cost per trial:
Optuna ask/tell, the Ray task, the worker's storage and MLflow calls, the driver's bookkeeping.
Goal (issue 11): ≤ 0.15 s per trial with tracking on. `--profile F` writes the driver's cProfile of the
tracked study to F (`python -m pstats F`).
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

    from study import placement
    from study.compose import compose_root
    from study.runner import StudyRunner

    def study(name: str, n: int, tracking: bool, profile: str = "") -> float:
        composed = compose_root(BASE + [f"study.name={name}", f"study.n_trials={n}",
                                        f"tracking.enabled={str(tracking).lower()}"])
        runner = StudyRunner(composed)
        profiler = cProfile.Profile() if profile else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        outcome = runner.run()
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
    off = study("off", args.trials, False)
    on = study("on", args.trials, True, args.profile)
    print(f"{args.trials} trials, 2 workers, tracking off: {off:.1f} s = {off / args.trials:.3f} s/trial")
    print(f"{args.trials} trials, 2 workers, tracking on:  {on:.1f} s = {on / args.trials:.3f} s/trial "
          f"(goal ≤ 0.15)")
    placement.shutdown()


if __name__ == "__main__":
    main()
