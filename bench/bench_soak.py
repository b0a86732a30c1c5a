"""Soak: one long study of short trials with MLflow on, on a local Ray — is every trial accounted for, and
does the driver stay flat?

    .venv/bin/python bench/bench_soak.py [--trials 100] [--window 20] [--json]
    (the long version: --trials 1000 --window 100)

The driver runs in this process (StudyRunner), so its resident memory is this process's: sampled at every
progress update. Prints the trial states (COMPLETE + PRUNED + FAIL must equal --trials, nothing RUNNING or
WAITING), every MLflow child run closed, the driver's RSS after the first window of trials and at the end
(the growth), and the wall time per trial over the first and the last window (from the trials' completion
times: a driver that slows down as the study grows shows here). tests/study/driver/test_soak.py runs a small
version and checks the accounting.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def per_trial_s(trials: list, first: bool, window: int) -> float:
    """Mean wall seconds per finished trial over the first (or last) `window` completions: the span from
    the first to the last completion of the window over the number of gaps."""
    done = sorted(t.datetime_complete for t in trials if t.datetime_complete is not None)
    part = done[: window + 1] if first else done[-(window + 1):]
    if len(part) < 2:
        return float("nan")
    return (part[-1] - part[0]).total_seconds() / (len(part) - 1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--no-tracking", action="store_true", help="MLflow off (the 10,000-trial version: "
                    "--trials 10000 --window 1000 --no-tracking)")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = ap.parse_args(argv)
    os.environ.setdefault("GRADSTUDY_HOME", tempfile.mkdtemp(prefix="gradstudy-soak-"))

    from mlflow import MlflowClient
    from optuna.trial import TrialState

    from study.cli.main import quiet_libraries
    from study.cluster import placement

    quiet_libraries()       # as `gradstudy run` does: no Optuna INFO line (and best-trial scan) per trial
    from study.config.compose import compose_root
    from study.driver.hooks import StudyHook
    from study.driver.runner import StudyRunner
    from study.recording.hook import tracking_hooks
    from study.storage.paths import data_dir
    from tracking.runs.connection import resolve_uri

    overrides = ["experiment=demo", "train.steps=20", "train.probe_every=10", "task.seq_len=10",
                 "model.hidden_size=8", "cluster.num_cpus=2", "study.sampler=random", "study.name=soak",
                 f"study.n_trials={args.trials}", f"tracking.enabled={str(not args.no_tracking).lower()}"]
    samples: list[tuple[int, float]] = []

    class Sampling(StudyHook):
        def on_progress(self, p) -> None:
            samples.append((p.done, rss_mb()))

    composed = compose_root(overrides)
    runner = StudyRunner(composed)
    start = time.perf_counter()
    outcome = runner.run([*tracking_hooks(composed), Sampling()])
    wall = time.perf_counter() - start
    trials = outcome.study.get_trials(deepcopy=False)
    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    requeued = sum(bool(t.user_attrs.get("gradstudy.requeued")) for t in trials)
    finished = states["COMPLETE"] + states["PRUNED"] + states["FAIL"] - requeued

    from study.records import results
    from study.storage.backend import load_study

    started = time.perf_counter()
    results.status(load_study("soak", ""))          # what `gradstudy status soak` computes, storage opened anew
    status_s = time.perf_counter() - started

    client = MlflowClient(resolve_uri("", data_dir()))
    experiment = client.get_experiment_by_name("gradstudy/soak")
    runs = (client.search_runs([experiment.experiment_id], max_results=50000)
            if experiment and not args.no_tracking else [])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    open_runs = [r.info.run_id for r in children if r.info.status == "RUNNING"]

    window = min(args.window, max(1, len(trials) // 2))
    after_first = next((mb for done, mb in samples if done >= window), samples[0][1] if samples else float("nan"))
    last_running = samples[-1][1] if samples else float("nan")   # the last update: every trial told, no report yet
    result = {
        "trials": args.trials, "wall_s": round(wall, 1), "states": states, "requeued": requeued,
        "finished": finished,
        "accounted": finished == args.trials and states["RUNNING"] == 0 and states["WAITING"] == 0,
        "mlflow_child_runs": len(children), "mlflow_open_runs": len(open_runs),
        # the growth over the trials: the last sample taken while trials ran (after the run, the study report's
        # figures have been drawn: matplotlib's one-off ~150 MB, which is not per trial)
        "rss_mb_after_first_window": round(after_first, 1), "rss_mb_last_trial": round(last_running, 1),
        "rss_growth_mb": round(last_running - after_first, 1), "rss_mb_after_report": round(rss_mb(), 1),
        "s_per_trial_first_window": round(per_trial_s(trials, True, window), 3),
        "s_per_trial_last_window": round(per_trial_s(trials, False, window), 3), "window": window,
        "status_s": round(status_s, 2),
    }
    placement.shutdown()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value}")
    return result


if __name__ == "__main__":
    main()
