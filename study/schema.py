"""Typed configuration of a study: the keys beyond one trial's `task`, `model`, `train`.

    search.*    the search space (conf/search/*.yaml): key → Hydra sweep expression, plus conditions
    study.*     name, trial count, Optuna storage, sampler, pruner, objective(s), wall-clock budget
    cluster.*   Ray address, resources per trial, concurrency, re-queues of lost trials
    tracking.*  MLflow tracking URI (empty = the local SQLite store under the data directory)

`RootConfig` is registered in Hydra's ConfigStore (see study/compose.py) as the schema of
`conf/config.yaml`, so a typo in any of these keys is an error naming the valid keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, List

from workers.config import TaskConfig, ModelConfig, TrainConfig


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
    pruner_warmup_steps: int = 0          # median: do not prune before this training step
    pruner_startup_trials: int = 2        # median: trials to finish before pruning starts
    objectives: List[Objective] = field(default_factory=lambda: [Objective()])
    timeout_s: float = 0.0                # wall-clock budget for the run; 0 = none
    fixed: List[str] = field(default_factory=list)   # extra overrides every trial gets


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


@dataclass
class NightlyConfig:
    # a regression (exit 5) is: a cell's best objective worse by more than tolerance × |previous|,
    tolerance: float = 0.10
    failure_tolerance: int = 0            # or more new final failures than this,
    diverged_tolerance: float = 0.20      # or the diverged fraction up by more than this (absolute)


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
