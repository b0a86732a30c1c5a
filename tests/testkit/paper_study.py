"""A paper experiment's trials run in this process and recorded in a real Optuna storage as the driver
records them, so `gradstudy check` judges them: how the tests plant a defect in the trial engine (a
monkeypatch the Ray workers would not see) and show that the experiment's claims catch it.

    record_experiment(home, "paper_pascanu2013", name="planted")   # then: gradstudy check planted

Every trial of the experiment's grid is run (its fixed search values and each combination of its choices),
`overrides` first changing the experiment (fewer steps, an untrained net, …). Trials run with
`workers.trial.run_trial`, exactly as a worker runs them; their summaries are written to the data folder
and each trial gets the user attributes of `study.records.attrs.TrialRecord`.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.config.compose import compose_root
from study.config.objectives import objective_values
from study.config.trial_composer import TrialComposer
from study.records.attrs import StudyAttr, TrialRecord
from study.search.space import SearchSpace
from study.storage.backend import open_storage
from workers.summary import write_summary
from workers.trial import run_trial

STATES = {"completed": TrialState.COMPLETE, "diverged": TrialState.COMPLETE, "pruned": TrialState.PRUNED}


def experiment_trials(experiment: str, overrides: Sequence[str] = ()) -> tuple[list, list[dict], list[dict]]:
    """(the experiment's rules, each trial's sampled values, each trial's TrialConfig)."""
    base = [f"experiment={experiment}", *overrides]
    composed = compose_root(base)
    space = SearchSpace.from_config(composed.root.search.params, composed.root.search.conditions)
    fixed = {p.key: p.fixed for p in space.params if p.is_fixed}
    grid = space.grid()
    composer = TrialComposer(base)
    sampled, configs = [], []
    for combination in itertools.product(*grid.values()):
        values = {**fixed, **dict(zip(grid, combination))}
        sampled.append(dict(zip(grid, combination)))
        configs.append(composer(values, space.overrides(values)))
    return [asdict(rule) for rule in composed.root.expect], sampled, configs


def record_experiment(home: Path, experiment: str, name: str, overrides: Sequence[str] = ()) -> list[dict]:
    """Run the experiment's trials here, record them in the data folder's journal storage under `name`;
    returns their summaries."""
    rules, sampled, configs = experiment_trials(experiment, overrides)
    study = optuna.create_study(study_name=name, storage=open_storage(""))
    study.set_user_attr(StudyAttr.EXPECT, rules)
    summaries = []
    for number, (values, cfg) in enumerate(zip(sampled, configs)):
        summary = run_trial(cfg)
        path = write_summary(summary, Path(home) / "planted" / name / f"{number}.json")
        distributions = {k: CategoricalDistribution([value]) for k, value in values.items()}
        study.add_trial(create_trial(
            state=STATES[summary["status"]],
            value=(None if summary["status"] == "pruned"
                   else objective_values(summary, ["final.test_loss"], ["minimize"])[0]),
            params=values, distributions=distributions,
            user_attrs=TrialRecord.from_summary(summary, str(path)).to_user_attrs()))
        summaries.append(summary)
    return summaries
