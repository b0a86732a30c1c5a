"""Typed configuration of a study: the keys beyond one trial's `task`, `model`, `train`, and their ranges.

    search.*    the search space (conf/search/*.yaml): key → Hydra sweep expression, plus conditions
    study.*     name, trial count, Optuna storage, sampler, pruner, objective(s), wall-clock budget
    cluster.*   Ray address, resources per trial, concurrency, re-queues of lost trials
    tracking.*  MLflow tracking URI (empty = the local SQLite store under the data directory)

`RootConfig` is registered in Hydra's ConfigStore (see study/config/compose.py) as the schema of
`conf/config.yaml`, so a typo in any of these keys is an error naming the valid keys. `validate_root`
checks the ranges that the types cannot express (as `workers.config.validate` does for a trial).
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Dict, List

from study.records.expectations import RuleError, check_rule
from workers import config as wconfig
from workers.config import ConfigError, ModelConfig, TaskConfig, TrainConfig, TrialConfig, check

# The numbers of summary.json's `final` section that a study can optimize (study.objectives[].metric).
OBJECTIVE_METRICS = ("final.test_loss", "final.baseline_ratio", "final.accuracy", "final.wall_s",
                     "final.seq_per_s", "final.steps_to_solve", "final.nrmse", "final.free_run_nrmse")
# study.name: used in Optuna storage names, MLflow experiment names and directory names.
STUDY_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class Sampler(str, Enum):
    tpe = "tpe"
    random = "random"
    grid = "grid"
    cmaes = "cmaes"
    gp = "gp"
    qmc = "qmc"


class Pruner(str, Enum):
    none = "none"
    median = "median"
    successive_halving = "successive_halving"
    hyperband = "hyperband"
    health = "health"                     # gradient health alone (workers/gradients/health_stop.py)
    median_health = "median_health"       # the median pruner or gradient health: prune on either


class Direction(str, Enum):
    minimize = "minimize"
    maximize = "maximize"


@dataclass
class SearchConfig:
    # config key → Hydra sweep expression: choice(a, b), range(a, b[, step]) (b excluded, as in Hydra),
    # interval(a, b), int(interval(a, b)), tag(log, interval(a, b)), or a plain value (fixed).
    params: Dict[str, str] = field(default_factory=dict)
    # config key → condition under which it is sampled: "<key> in [a, b]", "<key> == v", "<key> != v".
    # Built-in conditions (activation only for rnn/esn, …) apply where none is written.
    conditions: Dict[str, str] = field(default_factory=dict)


@dataclass
class Objective:
    metric: str = "final.test_loss"       # a number of summary.json, dotted
    direction: Direction = Direction.minimize


@dataclass
class StudyConfig:
    name: str = "default"
    n_trials: int = 8
    storage: str = ""                     # Optuna storage URL; empty = the journal file in the data dir
    sampler: Sampler = Sampler.tpe
    seed: int = 0                         # the sampler's seed
    pruner: Pruner = Pruner.median
    pruner_warmup_steps: int = 0          # median, health: do not prune before this training step
    health_patience: int = 3              # health: prune after this many unhealthy probes in a row
    pruner_startup_trials: int = 2        # median: trials to finish before pruning starts
    objectives: List[Objective] = field(default_factory=lambda: [Objective()])
    timeout_s: float = 0.0                # wall-clock budget for the run; 0 = none
    fixed: List[str] = field(default_factory=list)   # extra overrides every trial gets
    storage_retry_s: float = 600.0        # a storage outage is waited out this long, then exit 6 (resumable)


@dataclass
class TrialResources:
    cpu: float = 1.0
    gpu: float = 0.0                      # fractions share a GPU (Ray does not isolate their memory)


@dataclass
class ClusterConfig:
    address: str = ""                     # "" = a local Ray started here (or RAY_ADDRESS); else ray://… or host:port
    trial_resources: TrialResources = field(default_factory=TrialResources)
    max_concurrent: int = 0               # trials in flight at once; 0 = as many as the resources allow
    max_requeues: int = 1                 # a trial lost with its worker is re-queued this many times
    num_cpus: int = 0                     # local Ray only: CPUs to give it; 0 = all of this machine


@dataclass
class TrackingConfig:
    uri: str = ""                         # MLflow tracking URI; empty = the local SQLite store
    enabled: bool = True
    # per-trial figures (gradient profile, heatmap PNGs) for trials that trained at least this long; 0 = every
    # trial. Drawing them costs ~1.5 s of CPU, most of a short trial's overhead.
    trial_figures_min_s: float = 20.0
    # at a trial's end its worker waits this long for the metrics still queued (MLflow slow or down), then
    # leaves them to the back-fill (`gradstudy report`) from the trial's history.json
    delivery_timeout_s: float = 30.0
    # false: a new connection for each request to an MLflow server (uvicorn with several workers, mlflow
    # server's default, stalls ~40 ms on every request of a kept-alive one: tracking/runs/fresh_connections.py)
    keep_alive: bool = False


@dataclass
class NightlyConfig:
    # a regression (exit 5) is: a cell's best objective worse by more than tolerance × |previous|,
    tolerance: float = 0.10
    failure_tolerance: int = 0            # or more new final failures than this,
    diverged_tolerance: float = 0.20      # or the diverged fraction up by more than this (absolute)


@dataclass
class Expectation:
    """A published claim checked on the study's trials (study/records/expectations.py)."""
    claim: str = ""                       # the claim, in words
    where: str = ""                       # the trials it is about: "model.cell == lstm and …"; "" = all
    metric: str = "final.test_loss"       # final.<key> of the summary, or vanishing_ratio / decay_rate
    stat: str = "max"                     # over the matching trials: min, max, median, mean; or all (each trial)
    op: str = "<"                         # <, <=, >, >=
    value: Any = 0.0                      # a number; with stat all also a per-trial expression
    min_trials: int = 1                   # fewer matching trials: the rule fails
    states: List[str] = field(default_factory=lambda: ["complete", "pruned"])   # trial states counted
    group_by: List[str] = field(default_factory=list)   # judged per group of these config keys
    source: str = ""                      # the paper, its table or figure


@dataclass
class RootConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    nightly: NightlyConfig = field(default_factory=NightlyConfig)
    expect: List[Expectation] = field(default_factory=list)


def validate_root(root: RootConfig) -> RootConfig:
    """Check the ranges that the schema's types cannot express; raise ConfigError on the first bad key.

    The trial part is checked by workers.config.validate, the rest here.
    """
    wconfig.validate(TrialConfig(task=root.task, model=root.model, train=root.train))
    s, c = root.study, root.cluster
    check(isinstance(s.name, str) and STUDY_NAME_PATTERN.fullmatch(s.name) is not None, "study.name",
          s.name, "a non-empty name of letters, digits, '_', '.' and '-' that starts with a letter or digit")
    check(s.n_trials >= 1, "study.n_trials", s.n_trials, "an integer ≥ 1")
    check(s.health_patience >= 1, "study.health_patience", s.health_patience, "an integer ≥ 1")
    for i, rule in enumerate(root.expect):
        try:
            check_rule(asdict(rule))
        except RuleError as exc:
            raise ConfigError(f"expect[{i}].{exc.field}", exc.value, exc.valid) from None
    check(len(s.objectives) >= 1, "study.objectives", [], "at least one {metric, direction}")
    for i, objective in enumerate(s.objectives):
        check(objective.metric in OBJECTIVE_METRICS, f"study.objectives[{i}].metric", objective.metric,
              "one of " + ", ".join(OBJECTIVE_METRICS) + " (the numbers of summary.json's final section)")
    if len(s.objectives) > 1 and s.pruner not in (Pruner.none, Pruner.health):
        raise ConfigError("study.pruner", s.pruner.value, "none with several objectives",
                          f"study.pruner={s.pruner.value!r} with {len(s.objectives)} objectives: pruning "
                          "needs a single objective; set study.pruner=none")
    check(math.isfinite(s.timeout_s) and s.timeout_s >= 0, "study.timeout_s", s.timeout_s,
          "a number of seconds ≥ 0 (0 = no limit)")
    check(math.isfinite(s.storage_retry_s) and s.storage_retry_s >= 0, "study.storage_retry_s",
          s.storage_retry_s, "a number of seconds ≥ 0 (0 = fail at the first storage error)")
    check(s.pruner_warmup_steps >= 0, "study.pruner_warmup_steps", s.pruner_warmup_steps, "an integer ≥ 0")
    check(s.pruner_startup_trials >= 0, "study.pruner_startup_trials", s.pruner_startup_trials,
          "an integer ≥ 0")

    f = root.tracking.trial_figures_min_s
    check(math.isfinite(f) and f >= 0, "tracking.trial_figures_min_s", f,
          "a number of seconds ≥ 0 (0 = figures for every trial)")
    d = root.tracking.delivery_timeout_s
    check(math.isfinite(d) and d >= 0, "tracking.delivery_timeout_s", d,
          "a number of seconds ≥ 0 (0 = do not wait: what is queued goes to the back-fill)")

    cpu, gpu = c.trial_resources.cpu, c.trial_resources.gpu
    check(math.isfinite(cpu) and cpu > 0, "cluster.trial_resources.cpu", cpu, "a number > 0")
    check(math.isfinite(gpu) and gpu >= 0, "cluster.trial_resources.gpu", gpu,
          "a number ≥ 0 (a fraction shares a GPU)")
    check(c.max_concurrent >= 0, "cluster.max_concurrent", c.max_concurrent,
          "an integer ≥ 0 (0 = as many as the resources allow)")
    check(c.max_requeues >= 0, "cluster.max_requeues", c.max_requeues, "an integer ≥ 0")
    check(c.num_cpus >= 0, "cluster.num_cpus", c.num_cpus, "an integer ≥ 0 (0 = all of this machine)")
    return root
