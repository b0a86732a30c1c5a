"""Where the time of `gradstudy run experiment=init_phase` goes (issue #29 point 3): 120 trials measured at
initialization (train.steps=0), T up to 5000, MLflow on, local store.

    .venv/bin/python bench/bench_init_phase.py [--gains 0.5 2] [--run] [--before REV [--after REV2]]

(the in-process part ~1 min; each whole run 1–2 min, four of them with --before)

1. In-process, one thread, as a Ray worker runs a trial (`study/cluster/trial_task.execute`: the Optuna feed
   and the MLflow recorder included, a journal file and a SQLite MLflow store in a fresh GRADSTUDY_HOME): a
   grid of the study's space (T ∈ {100, 1000, 5000} × rnn tanh/sigmoid/relu, lstm, gru × `--gains`) with the
   time of each phase of a trial, exclusive (a phase's time leaves out the phases inside it): building the
   task and network, data (the probe's batch, the validation and test sets), the probe (exact log-space
   profile and λ1), the loss gradient (global norm, group norms), validation and test scoring, the MLflow
   recorder (metrics, the delivery wait, the artifact files, the run's closing), and the rest.
2. `--run`: the whole `gradstudy run experiment=init_phase` (Ray, pre-flight, the study report included),
   wall time. `--before REV` also runs it from a git worktree of REV (the code before a change), and
   `--after REV2` the change from another worktree (else this tree, with whatever else is being edited in
   it); the two are alternated twice in this one run of the script, each in a fresh GRADSTUDY_HOME, so that
   the machine's drift hits both alike.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = (100, 1000, 5000)
CELLS = (("rnn", "tanh"), ("rnn", "sigmoid"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh"))


class Phases:
    """Exclusive wall time per phase: entering a phase pauses the one it runs inside."""

    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []          # [name, started]

    @contextmanager
    def __call__(self, name: str):
        now = time.perf_counter()
        if self.stack:
            outer = self.stack[-1]
            self.total[outer[0]] += now - outer[1]
        self.stack.append([name, now])
        try:
            yield
        finally:
            now = time.perf_counter()
            inner = self.stack.pop()
            self.total[inner[0]] += now - inner[1]
            if self.stack:
                self.stack[-1][1] = now

    def wrap(self, owner, attr: str, name):
        """Time `owner.attr` (a function or method) as phase `name` (or `name(*args)` when callable); an
        attribute the code no longer has is left out."""
        original = getattr(owner, attr, None)
        if original is None:
            print(f"(not timed: {getattr(owner, '__name__', owner)}.{attr} is gone)")
            return

        def timed(*args, **kwargs):
            with self(name(*args, **kwargs) if callable(name) else name):
                return original(*args, **kwargs)

        setattr(owner, attr, timed)


def in_process(gains: list[float], base: list[str], lengths=LENGTHS) -> None:
    home = Path(tempfile.mkdtemp(prefix="gradstudy-bench-init-"))
    os.environ["GRADSTUDY_HOME"] = str(home)
    import optuna
    import torch
    from mlflow import MlflowClient

    from study.cluster import trial_task
    from study.config.trial_composer import TrialComposer
    from study.storage.backend import open_storage, resolve_url
    from tracking.runs import trial_recorder
    from tracking.runs.batch_logger import BatchLogger
    from tracking.runs.connection import resolve_uri
    from workers import loop, trial
    from workers.tasks.base import Task

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    phases = Phases()
    # the phases of a trial (workers/trial.py, workers/loop.py) and of its MLflow recorder
    phases.wrap(trial, "build", "build task + network")
    phases.wrap(Task, "held_out", lambda self, split, size: f"data: {split} set ({size})")
    phases.wrap(loop.Trainer, "measure", "probe: log profile + λ1")
    phases.wrap(loop.Trainer, "backward", "probe: loss gradient")
    phases.wrap(loop, "evaluate", "validation scoring")
    phases.wrap(trial, "evaluate", "test scoring")
    phases.wrap(trial, "json_safe", "summary")
    rec = trial_recorder.TrialRecorder
    phases.wrap(rec, "on_start", "mlflow: metrics")
    phases.wrap(rec, "on_probe", "mlflow: metrics")
    phases.wrap(rec, "on_step", "mlflow: metrics")
    phases.wrap(rec, "on_end", "mlflow: run closing (tags, note)")
    phases.wrap(BatchLogger, "close", "mlflow: metrics delivery wait")
    phases.wrap(trial_recorder, "write_artifacts", "artifact files (svg, csv, json; figures)")
    phases.wrap(trial_recorder, "log_task_input", "mlflow: task input dataset")
    phases.wrap(MlflowClient, "log_artifacts", "mlflow: artifact upload")

    torch.set_num_threads(1)
    composer = TrialComposer(["experiment=init_phase", *base])
    storage_url = resolve_url("")
    optuna_study = optuna.create_study(study_name="bench", storage=open_storage(storage_url))
    uri = resolve_uri("", home)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("bench")
    by_length: dict[int, dict[str, float]] = {}
    wall: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    for length in lengths:
        before = dict(phases.total)
        for cell, activation in CELLS:
            for gain in gains:
                values = {"model.init": "scaled", "model.cell": cell, "model.activation": activation,
                          "model.init_gain": gain, "task.seq_len": length}
                cfg = composer(values, [f"{k}={v}" for k, v in values.items()])
                ask = optuna_study.ask()
                run = client.create_run(experiment)
                job = trial_task.TrialJob(storage_url, "bench", ask._trial_id, ask.number, cfg, "final.test_loss",
                                          False, tracking_uri=uri, run_id=run.info.run_id, figures_min_s=20.0)
                start = time.perf_counter()
                with phases("other (reporters, optuna feed, …)"):
                    out = trial_task.execute(job)
                wall[length] += time.perf_counter() - start
                counts[length] += 1
                optuna_study.tell(ask, out["summary"]["final"]["test_loss"])
        by_length[length] = {k: v - before.get(k, 0.0) for k, v in phases.total.items()}
    names = sorted(phases.total, key=lambda k: -phases.total[k])
    print(f"\nper trial, in-process, 1 thread, mean seconds ({len(CELLS) * len(gains)} trials per T; "
          f"test_size={cfg.task.test_size}, val_size={cfg.task.val_size}):")
    print(f"{'phase':44s}" + "".join(f"{'T=' + str(t):>10s}" for t in lengths))
    for name in names:
        print(f"{name:44s}" + "".join(f"{by_length[t].get(name, 0.0) / counts[t]:10.3f}" for t in lengths))
    print(f"{'whole trial (execute)':44s}" + "".join(f"{wall[t] / counts[t]:10.3f}" for t in lengths))
    # the study's 120 trials are ~1/3 of each T: what its trials cost on one core, summed
    per_study = sum(wall[t] / counts[t] * 40 for t in lengths)
    print(f"the study's 120 trials (40 per T) summed, one core: {per_study:.1f} s "
          f"(≈ {per_study / 2:.1f} s of wall on 2 workers)")


def whole_run(code: Path, extra: list[str]) -> float:
    """Wall time of `gradstudy run experiment=init_phase` run from the checkout `code`, fresh home."""
    env = dict(os.environ, GRADSTUDY_HOME=tempfile.mkdtemp(prefix="gradstudy-bench-run-"), PYTHONPATH=str(code))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "study.cli", "run", "experiment=init_phase", *extra], cwd=code,
                          env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"gradstudy run failed in {code} ({done.returncode}):\n{done.stdout[-2000:]}"
                         f"\n{done.stderr[-2000:]}")
    first = json.loads(next(Path(env["GRADSTUDY_HOME"]).glob("studies/init_phase/trials/*/summary.json")).read_text())
    sizes = {k: first["config"]["task"][k] for k in ("test_size", "val_size")}
    print(f"  {code}: {took:.1f} s {sizes}", flush=True)   # which code ran: the sizes its config gave
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gains", type=float, nargs="+", default=[0.5, 2.0])
    ap.add_argument("--run", action="store_true", help="also time the whole `gradstudy run experiment=init_phase`")
    ap.add_argument("--before", default="", help="a git revision to time against, alternated (implies --run)")
    ap.add_argument("--after", default="", help="with --before: a git revision to time instead of this tree "
                                                "(a tree others are editing is not the change alone)")
    ap.add_argument("--set", nargs="*", default=[], help="overrides of the in-process trials' config")
    ap.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    ap.add_argument("--skip-trials", action="store_true", help="leave out the in-process breakdown")
    ap.add_argument("overrides", nargs="*", help="extra overrides for the whole runs")
    args = ap.parse_args()
    if not args.skip_trials:
        in_process(args.gains, args.set, tuple(args.lengths))
    if not (args.run or args.before):
        return
    if not args.before:
        print(f"gradstudy run experiment=init_phase: {whole_run(ROOT, args.overrides):.1f} s")
        return
    trees: dict[str, Path] = {}
    for label, rev in (("before", args.before), ("after", args.after)):
        if rev:
            trees[label] = Path(tempfile.mkdtemp(prefix=f"gradstudy-{label}-")) / "tree"
            subprocess.run(["git", "worktree", "add", "--detach", str(trees[label]), rev], cwd=ROOT, check=True,
                           capture_output=True)
    code = {"before": trees["before"], "after": trees.get("after", ROOT)}
    try:
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(2):
            for label in ("before", "after"):
                times[label].append(whole_run(code[label], args.overrides))
        for label, ts in times.items():
            what = args.before if label == "before" else (args.after or "this tree")
            print(f"gradstudy run experiment=init_phase, {label} ({what}): {', '.join(f'{t:.1f}' for t in ts)} s")
    finally:
        for tree in trees.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
