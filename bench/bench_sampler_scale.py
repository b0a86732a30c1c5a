"""How a sampler's ask() time grows with the study: the study's own sampler (make_sampler, as `gradstudy run`
builds it) over the search space of an experiment, on a study already holding 1k, 5k and 10k finished
trials (added directly, with values from a smooth function of the parameters), in memory, no Ray.

    .venv/bin/python bench/bench_sampler_scale.py [--sampler tpe] [--sizes 1000,5000,10000] [--asks 5]

Prints the median ask() time at each size. The driver asks once per trial, so this is what a
10,000-trial study adds per trial on top of the framework's fixed cost (bench/bench_per_trial.py).
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import optuna
from optuna.trial import TrialState, create_trial


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sampler", default="tpe")
    ap.add_argument("--experiment", default="adding_cells")
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--asks", type=int, default=5)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    from study.config.compose import compose_root
    from study.driver.runner import StudyRunner, lookup
    from study.search.samplers import make_sampler

    composed = compose_root([f"experiment={args.experiment}", f"study.sampler={args.sampler}", "study.n_trials=10000"])
    runner = StudyRunner(composed)
    # the trials' parameters come from a random sampler over the same space (conditions included)
    source = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    pool = []
    for _ in range(max(int(s) for s in args.sizes.split(","))):
        t = source.ask()
        runner.space.sample(t, lambda key: lookup(runner.base_config, key))
        value = sum(math.sin(hash(str(v)) % 97) if isinstance(v, str) else math.sin(float(v))
                    for v in t.params.values())
        pool.append(create_trial(params=t.params, distributions=t.distributions, value=value,
                                 state=TrialState.COMPLETE))
        source.tell(t, value)
    print(f"sampler {args.sampler}, search space of experiment={args.experiment} ({len(pool[0].params)}+ keys)")
    for size in (int(s) for s in args.sizes.split(",")):
        study = optuna.create_study(sampler=make_sampler(composed.root.study, runner.space))
        study.add_trials(pool[:size])
        times = []
        for _ in range(args.asks):
            start = time.perf_counter()
            trial = study.ask()
            runner.space.sample(trial, lambda key: lookup(runner.base_config, key))
            times.append(time.perf_counter() - start)
            study.tell(trial, state=TrialState.FAIL)
        print(f"  {size:6d} finished trials: ask + sample {statistics.median(times) * 1e3:8.1f} ms (median of "
              f"{args.asks})")


if __name__ == "__main__":
    main()
