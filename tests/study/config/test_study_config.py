"""Composing a whole study's config (conf/config.yaml against study.config.schema.RootConfig): the new config
groups, the experiment overlays, the search spaces as written, and the study/cluster range checks."""
from __future__ import annotations

import dataclasses
import importlib.resources
import math

import pytest
import yaml
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser

from study.config.compose import (
    OBJECTIVE_METRICS,
    SCHEMA_NAME,
    Composed,
    ConfigError,
    compose_root,
    compose_trial,
    register_schema,
    validate_root,
)
from study.config.schema import (
    ClusterConfig,
    Direction,
    Objective,
    Pruner,
    RootConfig,
    Sampler,
    StudyConfig,
    TrackingConfig,
)
from study.config.trial_composer import TrialComposer
from study.search.check import validate_keys
from study.search.space import SearchSpace
from workers import config as wconfig
from workers.config import Activation, Cell, Init, TaskName, TrialConfig

CONF = importlib.resources.files("conf")
GROUPS = ("task", "model", "train", "search", "study", "cluster", "tracking", "experiment")


def _options(group: str) -> list[str]:
    return sorted(p.name[:-5] for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml"))


OVERLAYS = _options("experiment")
# the published experiments; test_tiny is the test suite's tiny trial (tests/testkit/tiny.py), not a study
EXPERIMENTS = [name for name in OVERLAYS if not name.startswith("test_")]
SEARCHES = _options("search")


def _message(overrides) -> str:
    with pytest.raises(ConfigError) as info:
        compose_root(overrides)
    assert isinstance(info.value, wconfig.ConfigError)
    return str(info.value)


def _sweep_values(expression: str) -> list:
    """The values of a choice(...) expression, parsed by Hydra."""
    return list(OverridesParser.create().parse_override(f"k={expression}").value().list)


# ----------------------------------------------------------------------------------------------------
# The tree


def test_groups_are_packages_with_options():
    assert EXPERIMENTS == ["adding_cells", "copy_memory", "demo", "init_phase", "nightly", "paper_hochreiter1997",
                           "paper_jaeger2001", "paper_le2015", "paper_pascanu2013", "wrec_phase"]
    assert OVERLAYS == sorted(EXPERIMENTS + ["test_tiny"])
    assert SEARCHES == ["cells", "clipping", "esn", "init_phase", "none", "wrec_scale"]
    for group in GROUPS:
        assert CONF.joinpath(group, "__init__.py").is_file(), group
        assert _options(group), group


def test_defaults_list_order():
    defaults = yaml.safe_load(CONF.joinpath("config.yaml").read_text())["defaults"]
    assert defaults == ["root_schema", {"task": "adding"}, {"model": "default"}, {"train": "default"},
                        {"search": "none"}, {"study": "default"}, {"cluster": "local"},
                        {"tracking": "local"}, "_self_", {"experiment": None}]


def test_experiments_are_global_overlays():
    for name in OVERLAYS:
        text = CONF.joinpath("experiment", f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_\n"), name
        for entry in yaml.safe_load(text)["defaults"]:
            assert entry == "_self_" or next(iter(entry)).startswith("override /"), (name, entry)


def test_register_schema_stores_the_root_schema():
    register_schema()
    register_schema()
    node = ConfigStore.instance().load(f"{SCHEMA_NAME}.yaml").node
    assert SCHEMA_NAME == "root_schema"
    assert set(node.keys()) == {f.name for f in dataclasses.fields(RootConfig)}


# ----------------------------------------------------------------------------------------------------
# compose_root


def test_defaults_compose_root(composed):
    c = composed.root([])
    assert isinstance(c, Composed) and isinstance(c.root, RootConfig) and isinstance(c.trial, TrialConfig)
    assert c.trial == composed.trial([])
    assert (c.root.task, c.root.model, c.root.train) == (c.trial.task, c.trial.model, c.trial.train)
    # conf/study/default.yaml, cluster/local.yaml and tracking/local.yaml write out the dataclass defaults
    assert c.root.study == StudyConfig()
    assert c.root.cluster == ClusterConfig()
    assert c.root.tracking == TrackingConfig()
    assert c.root.search.params == {} and c.root.search.conditions == {}
    assert c.overrides == []


def test_root_is_typed(composed):
    c = composed.root(["experiment=adding_cells"])
    assert c.root.study.sampler is Sampler.tpe and c.root.study.pruner is Pruner.median
    assert c.root.study.objectives == [Objective("final.test_loss", Direction.minimize)]
    assert c.root.study.objectives[0].direction is Direction.minimize
    assert c.trial.model.cell is Cell.rnn
    for mapping in (c.root.search.params, c.root.search.conditions):
        assert type(mapping) is dict
        assert all(type(k) is str and type(v) is str for k, v in mapping.items())


def test_overrides_kept_as_given_and_yaml_is_the_resolved_config(composed):
    overrides = ["experiment=demo", "study.n_trials=3", "model.hidden_size=16"]
    c = composed.root(overrides)
    assert c.overrides == overrides and c.overrides is not overrides
    data = yaml.safe_load(c.yaml)
    assert set(data) == {f.name for f in dataclasses.fields(RootConfig)}
    assert data["study"]["n_trials"] == 3 and data["study"]["sampler"] == "grid"
    assert data["search"]["params"]["model.init_gain"] == "choice(0.5, 2.0, 4.0)"
    assert wconfig.from_dict({k: data[k] for k in ("task", "model", "train")}) == c.trial


def test_overrides_apply_to_study_keys(composed):
    c = composed.root(["study.name=my-study_1.v2", "study.n_trials=20", "study.sampler=random",
                      "study.pruner=none", "cluster.max_concurrent=4", "tracking.enabled=false",
                      "study.objectives=[{metric:final.accuracy,direction:maximize},"
                      "{metric:final.wall_s,direction:minimize}]"])
    s = c.root.study
    assert (s.name, s.n_trials, s.sampler, s.pruner) == ("my-study_1.v2", 20, Sampler.random, Pruner.none)
    assert [(o.metric, o.direction) for o in s.objectives] == [
        ("final.accuracy", Direction.maximize), ("final.wall_s", Direction.minimize)]
    assert c.root.cluster.max_concurrent == 4 and c.root.tracking.enabled is False


def test_search_params_can_be_added_from_the_command_line(composed):
    c = composed.root(["experiment=demo", "++search.params={model.hidden_size:'choice(16, 32)'}"])
    assert c.root.search.params["model.hidden_size"] == "choice(16, 32)"
    assert c.root.search.params["model.init"] == "scaled"   # merged, not replaced


def test_remote_cluster_and_tracking_read_the_environment(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    c = compose_root(["cluster=remote", "tracking=remote"])
    assert c.root.cluster.address == "auto" and c.root.cluster.trial_resources.gpu == 0.25
    assert c.root.tracking.uri == "http://127.0.0.1:5000"
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    c = compose_root(["cluster=remote", "tracking=remote"])
    assert c.root.cluster.address == "ray://head:10001" and c.root.tracking.uri == "http://mlflow:5000"


# ----------------------------------------------------------------------------------------------------
# Experiments


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(composed, name):
    c = composed.root([f"experiment={name}"])
    assert wconfig.validate(c.trial) is c.trial
    assert validate_root(c.root) is c.root
    assert c.trial == composed.trial([f"experiment={name}"])
    assert c.root.study.name == name
    assert c.root.search.params, "an experiment without a search space is one trial, not a study"
    # its search space parses, and every value it can sample composes into a valid trial
    space = SearchSpace.from_config(c.root.search.params, c.root.search.conditions)
    # (through the study's TrialComposer, as the driver checks: test_trial_composer.py holds it to Hydra's)
    validate_keys(space, TrialComposer([f"experiment={name}", *c.root.study.fixed]).from_overrides)


def test_demo_experiment(composed):
    assert composed.trial(["experiment=demo"]).task.seq_len == 30
    c = composed.root(["experiment=demo"])
    t, s = c.trial, c.root.study
    assert (t.task.name, t.task.seq_len) == (TaskName.adding, 30)
    assert (t.model.cell, t.model.hidden_size) == (Cell.rnn, 32)
    assert (t.train.steps, t.train.probe_every, t.train.batch_size) == (300, 50, 32)
    assert (s.name, s.sampler, s.pruner, s.n_trials) == ("demo", Sampler.grid, Pruner.none, 9)
    assert c.root.tracking.enabled is True
    params = c.root.search.params
    assert params["model.init"] == "scaled"
    gains, activations = _sweep_values(params["model.init_gain"]), _sweep_values(params["model.activation"])
    assert gains == [0.5, 2.0, 4.0] and activations == ["tanh", "relu", "linear"]
    assert s.n_trials == len(gains) * len(activations)   # the grid, each point once


@pytest.mark.parametrize("name, task, seq_len, search, n_trials, steps", [
    ("adding_cells", "adding", 100, "cells", 64, 2000),
    ("wrec_phase", "adding", 50, "wrec_scale", 48, 500),
    ("copy_memory", "copy_memory", 100, "cells", 32, 3000),
    ("nightly", "adding", 50, "cells", 16, 500),
])
def test_experiment_settings(composed, name, task, seq_len, search, n_trials, steps):
    c = composed.root([f"experiment={name}"])
    assert (c.trial.task.name.value, c.trial.task.seq_len) == (task, seq_len)
    assert c.root.search == composed.root([f"search={search}"]).root.search
    assert (c.root.study.n_trials, c.trial.train.steps) == (n_trials, steps)


def test_experiment_studies(composed):
    cells = composed.root(["experiment=adding_cells"]).root.study
    assert (cells.sampler, cells.pruner) == (Sampler.tpe, Pruner.median)
    phase = composed.root(["experiment=wrec_phase"])
    assert phase.root.study.sampler in (Sampler.qmc, Sampler.random) and phase.root.study.pruner is Pruner.none
    assert phase.trial.model.cell is Cell.rnn
    nightly = composed.root(["experiment=nightly"]).root.study
    assert (nightly.sampler, nightly.seed, nightly.timeout_s) == (Sampler.tpe, 0, 3600)


def test_command_line_wins_over_an_experiment(composed):
    c = composed.root(["experiment=demo", "task.seq_len=60", "study.n_trials=2", "task=copy_memory"])
    assert c.trial.task.name is TaskName.copy_memory and c.trial.task.seq_len == 60
    assert c.root.study.n_trials == 2 and c.root.study.name == "demo"


# ----------------------------------------------------------------------------------------------------
# Search spaces as written


@pytest.mark.parametrize("name", SEARCHES)
def test_search_yaml_params_are_strings(composed, name):
    raw = yaml.safe_load(CONF.joinpath("search", f"{name}.yaml").read_text())
    assert set(raw) <= {"params", "conditions"}
    for section in ("params", "conditions"):
        mapping = raw.get(section) or {}
        for key, value in mapping.items():
            assert isinstance(key, str) and isinstance(value, str), (section, key, value)
    assert set(raw.get("conditions") or {}) <= set(raw["params"])
    for key in raw["params"]:  # dotted keys of the trial config
        obj = TrialConfig()
        for part in key.split("."):
            assert dataclasses.is_dataclass(obj) and hasattr(obj, part), key
            obj = getattr(obj, part)
    c = composed.root([f"search={name}"] + (["model=esn"] if name == "esn" else []))
    assert c.root.search.params == raw["params"]
    assert c.root.search.conditions == (raw.get("conditions") or {})
    space = SearchSpace.from_config(c.root.search.params, c.root.search.conditions)
    validate_keys(space, TrialComposer([f"search={name}"]).from_overrides)


def test_search_space_contents(composed):
    def params(name):
        return composed.root([f"search={name}"]).root.search

    cells = params("cells")
    assert _sweep_values(cells.params["model.cell"]) == ["rnn", "lstm", "gru"]
    assert _sweep_values(cells.params["model.init"]) == [
        "default", "xavier_uniform", "kaiming", "orthogonal", "identity", "scaled"]
    assert cells.conditions == {}     # activation and threshold: the built-in conditions apply
    cell_space = SearchSpace.from_config(cells.params, cells.conditions)
    conditions = {p.key: p.condition.text for p in cell_space.params if p.condition}
    assert conditions == {"model.activation": "model.cell in [rnn, esn]",
                          "train.clip.threshold": "train.clip.mode != none"}
    wrec = params("wrec_scale")
    assert wrec.params["model.init"] == Init.scaled.value
    assert _sweep_values(wrec.params["model.activation"]) == [a.value for a in (
        Activation.tanh, Activation.sigmoid, Activation.relu, Activation.linear)]
    clipping = params("clipping")
    assert clipping.conditions["train.penalty.omega"] == "train.tbptt == 0"
    assert clipping.params["model.cell"] == "rnn"
    assert params("esn").params["model.cell"] == "esn"


# ----------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("overrides, key, needles", [
    (["study.n_trials=0"], "study.n_trials", ["0", "≥ 1"]),
    (["study.sampler=foo"], "study.sampler", ["foo", "tpe", "random", "grid", "cmaes", "gp", "qmc"]),
    (["study.pruner=sometimes"], "study.pruner", ["none", "median", "successive_halving", "hyperband"]),
    (["experiment=nope"], "experiment", ["nope"] + OVERLAYS),
    (["search=nope"], "search", SEARCHES),
    (["cluster=nope"], "cluster", ["local", "remote"]),
    (["cluster.trial_resources.gpu=-1"], "cluster.trial_resources.gpu", ["-1", "≥ 0"]),
    (["cluster.trial_resources.cpu=0"], "cluster.trial_resources.cpu", ["> 0"]),
    (["cluster.max_concurrent=-1"], "cluster.max_concurrent", ["-1"]),
    (["cluster.max_requeues=-2"], "cluster.max_requeues", ["-2"]),
    (["cluster.num_cpus=-1"], "cluster.num_cpus", ["-1"]),
    (["study.name='bad name'"], "study.name", ["'bad name'", "letters, digits"]),
    (["study.name=''"], "study.name", ["''", "non-empty"]),
    (["study.name=-x"], "study.name", ["'-x'"]),
    (["study.timeout_s=-1"], "study.timeout_s", ["-1"]),
    (["tracking.trial_figures_min_s=-1"], "tracking.trial_figures_min_s", ["-1"]),
    (["tracking.delivery_timeout_s=-5"], "tracking.delivery_timeout_s", ["-5", "≥ 0"]),
    (["study.pruner_warmup_steps=-1"], "study.pruner_warmup_steps", ["-1"]),
    (["study.pruner_startup_trials=-1"], "study.pruner_startup_trials", ["-1"]),
    (["study.objectives=[]"], "study.objectives", ["at least one"]),
    (["study.objectives=[{metric:final.foo,direction:minimize}]"], "study.objectives[0].metric",
     ["final.foo", *OBJECTIVE_METRICS, "summary.json"]),
    (["study.objectives=[{metric:final.test_loss,direction:down}]"], "direction", ["minimize", "maximize"]),
    (["study.objectives=[{metric:final.test_loss,direction:minimize},"
      "{metric:final.accuracy,direction:maximize}]"], "study.pruner",
     ["pruning needs a single objective; set study.pruner=none", "median"]),
    (["tracking.enabled=maybe"], "tracking.enabled", ["maybe", "true or false"]),
    (["+study.foo=1"], "study.foo", ["not a config key", "n_trials", "sampler", "objectives"]),
    (["cluster.trial_resources.tpu=1"], "cluster.trial_resources.tpu", ["cpu, gpu"]),
    (["search.params.model.lr=1"], "search.params.model.lr", ["++search.params={model.lr: ...}"]),
    (["model.leak=2"], "model.leak", ["(0, 1]"]),   # the trial part is range-checked too
    (["+experiment=demo"], "experiment", ["experiment=demo", "already in the defaults list"]),
])
def test_compose_root_errors_name_the_key(overrides, key, needles):
    with pytest.raises(ConfigError) as info:
        compose_root(overrides)
    assert key in info.value.key
    msg = str(info.value)
    assert key.split("[")[0].split(".")[-1] in msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_study_errors_do_not_stop_a_trial(composed):
    """compose_trial checks types everywhere but ranges only for task/model/train (the study's runner
    composes each trial with the study's overrides)."""
    assert composed.trial(["study.n_trials=0"]).task.name is TaskName.adding
    with pytest.raises(ConfigError):
        compose_trial(["study.sampler=foo"])
    assert "experiment" in _message(["experiment=nope"])


def test_multi_objective_without_pruner_is_fine(composed):
    c = composed.root(["study.pruner=none", "study.objectives=[{metric:final.test_loss,direction:minimize},"
                      "{metric:final.seq_per_s,direction:maximize}]"])
    assert len(c.root.study.objectives) == 2


def test_validate_root_on_a_hand_built_root():
    root = RootConfig()
    assert validate_root(root) is root
    for metric in OBJECTIVE_METRICS:
        validate_root(dataclasses.replace(root, study=StudyConfig(objectives=[Objective(metric)])))
    bad = dataclasses.replace(root, study=StudyConfig(timeout_s=math.inf))
    with pytest.raises(ConfigError, match="study.timeout_s"):
        validate_root(bad)
    bad = dataclasses.replace(root, study=StudyConfig(name="nightly 2025"))
    with pytest.raises(ConfigError, match="study.name"):
        validate_root(bad)
    bad = dataclasses.replace(root, model=dataclasses.replace(root.model, hidden_size=0))
    with pytest.raises(ConfigError, match="model.hidden_size"):
        validate_root(bad)
