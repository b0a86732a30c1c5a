"""`gradstudy status` and `gradstudy report` on a 10,000-trial study: do they answer in seconds?

    .venv/bin/python bench/bench_report_scale.py [--trials 10000]     (~2 min)

A real study of 2 tiny trials is run first (`gradstudy run`, MLflow on, the local store), so the study has
everything a real one has (its attributes, an MLflow parent run, two real trial folders). Then trials are
added to it directly (Optuna's add_trials; parameters over the same search space, objective values from
a smooth function of them, healths in the proportions of a real sweep, MLflow records marked synced), each
with its trial folder (summary.json and config.yaml, the real trial's files with the new values), up to
--trials. Then the two commands run as a user runs them, each a fresh process, timed whole (interpreter start
and imports included): `gradstudy status NAME` (counts, best, health mix, expectations) and
`gradstudy report NAME` (reads every summary, draws the figures, writes report.html, attaches it to the MLflow
parent run, rewrites the run's description).

`--mixed-lengths`: the added trials' `task.seq_len` cycles over 10, 100, 1000 and their decay rates spread
over [−0.5, 0.1], so the report takes its mixed-length path (ranked and coloured by the decay rate,
study/report/length_mix.py), as `experiment=init_phase` does.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "scale"
BASE = ["experiment=demo", "train.steps=20", "train.probe_every=5", "task.seq_len=10", "model.hidden_size=8",
        "cluster.num_cpus=2", "study.n_trials=2", f"study.name={NAME}"]


def gradstudy(*args: str) -> tuple[float, str]:
    cmd = [str(Path(sys.executable).parent / "gradstudy"), *args]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    took = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"`gradstudy {' '.join(args)}` exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10000)
    ap.add_argument("--mixed-lengths", action="store_true",
                    help="trials of T = 10, 100, 1000 (the report's mixed path)")
    args = ap.parse_args()
    os.environ["GRADSTUDY_HOME"] = tempfile.mkdtemp(prefix="gradstudy-scale-")

    took, _ = gradstudy("run", *BASE)
    print(f"a real 2-trial study (Ray start included): {took:.1f} s")

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from study.storage.backend import load_study
    from study.storage.paths import trial_dir
    from workers.summary import write_trial_folder

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(NAME, "")
    real = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE][0]
    summary = json.loads((trial_dir(NAME, real.number) / "summary.json").read_text())
    rng = random.Random(0)
    healths = ["healthy"] * 5 + ["vanishing"] * 3 + ["exploding", "diverged"]
    start = time.perf_counter()
    batch = []
    for number in range(2, args.trials):
        params = {k: (rng.uniform(d.low, d.high) if isinstance(d, FloatDistribution) and not d.log
                      else math.exp(rng.uniform(math.log(d.low), math.log(d.high))) if isinstance(d, FloatDistribution)
                      else d.choices[rng.randrange(len(d.choices))])
                  for k, d in real.distributions.items()}
        value = 0.05 + abs(math.log(params.get("model.init_gain", 1.0))) * 0.1 + rng.random() * 0.02
        health = healths[number % len(healths)]
        attrs = {**real.user_attrs, "gradstudy.health": health}
        if args.mixed_lengths:
            attrs.update({"gradstudy.seq_len": (10, 100, 1000)[number % 3],
                          "gradstudy.decay_rate": rng.uniform(-0.5, 0.1)})
        batch.append(create_trial(params=params, distributions=real.distributions, values=[value],
                                  user_attrs=attrs, state=TrialState.COMPLETE))
        copy = {**summary, "health": health, "final": {**summary["final"], "test_loss": value}}
        write_trial_folder(trial_dir(NAME, number), copy)
        if len(batch) == 1000:
            study.add_trials(batch)
            batch = []
    study.add_trials(batch)
    print(f"{args.trials - 2} trials added with their folders in {time.perf_counter() - start:.1f} s")

    took, out = gradstudy("status", NAME, "--json")
    states = json.loads(out.strip().splitlines()[-1])["states"]
    print(f"gradstudy status on {args.trials} trials: {took:.1f} s ({states['COMPLETE']} COMPLETE)")
    took, out = gradstudy("report", NAME)
    print(f"gradstudy report on {args.trials} trials: {took:.1f} s ({out.strip().splitlines()[-1][:100]})")


if __name__ == "__main__":
    main()
