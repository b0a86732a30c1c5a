"""Composing a trial's config from conf/ (real Hydra composition, no mocks) and its error messages."""
from __future__ import annotations

import dataclasses
import importlib.resources

import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra

from study.config.compose import ConfigError, compose_trial, register_schema, resolved_yaml
from workers import config as wconfig
from workers.config import Cell, ClipMode, ModelConfig, TaskConfig, TaskName, TrainConfig, TrialConfig

TASKS = [t.value for t in TaskName]
SEQ_LEN = {"adding": 50, "copy_memory": 50, "temporal_order": 50, "digits": 64, "mackey_glass": 100}


def test_defaults_compose_and_validate(composed):
    cfg = composed.trial([])
    assert isinstance(cfg, TrialConfig)
    assert wconfig.validate(cfg) is cfg
    assert cfg.task.name == TaskName.adding and cfg.task.seq_len == 50
    assert cfg.model.cell == Cell.rnn and cfg.model.hidden_size == 64
    # conf/train/default.yaml writes out exactly the dataclass defaults
    assert cfg.train == TrainConfig()
    assert cfg.model == ModelConfig()


@pytest.mark.parametrize("task", TASKS)
def test_each_task_option_composes(composed, task):
    cfg = composed.trial([f"task={task}"])
    assert cfg.task.name == TaskName(task)
    assert cfg.task.seq_len == SEQ_LEN[task]


def test_task_group_lists_every_task():
    root = importlib.resources.files("conf")
    options = sorted(p.name[:-5] for p in root.joinpath("task").iterdir() if p.name.endswith(".yaml"))
    assert options == sorted(TASKS)


def test_esn_model_option(composed):
    cfg = composed.trial(["model=esn", "task=mackey_glass"])
    assert cfg.model.cell == Cell.esn
    assert (cfg.model.hidden_size, cfg.model.spectral_radius, cfg.model.leak, cfg.model.sparsity) == (
        200, 0.9, 0.3, 0.9)


def test_overrides_apply(composed):
    cfg = composed.trial(["model.cell=lstm", "train.clip.mode=norm", "train.clip.threshold=5",
                         "task.seq_len=200", "train.lr=3e-4", "model.forget_bias=1.0"])
    assert cfg.model.cell == Cell.lstm
    assert cfg.train.clip.mode == ClipMode.norm and cfg.train.clip.threshold == 5.0
    assert cfg.task.seq_len == 200
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.forget_bias == 1.0


def test_repeated_calls_and_last_override_wins():
    for _ in range(3):
        assert compose_trial(["model.cell=gru"]).model.cell == Cell.gru
    assert compose_trial(["model.cell=rnn", "model.cell=lstm"]).model.cell == Cell.lstm
    assert compose_trial([]).model.cell == Cell.rnn  # no state leaks between calls
    assert not GlobalHydra.instance().is_initialized()


def test_register_schema_is_idempotent():
    register_schema()
    register_schema()
    assert compose_trial([]).task.name == TaskName.adding


def _message(overrides):
    with pytest.raises(ConfigError) as info:
        compose_trial(overrides)
    assert isinstance(info.value, wconfig.ConfigError)  # one exception type for every failure
    return str(info.value)


@pytest.mark.parametrize("overrides, needles", [
    # a bad choice: key, value, the valid choices
    (["model.cell=foo"], ["model.cell", "foo", "rnn", "lstm", "gru", "esn"]),
    (["train.clip.mode=sometimes"], ["train.clip.mode", "sometimes", "norm", "value"]),
    (["task.name=bar"], ["task.name", "bar", "adding"]),
    # a config group option that does not exist
    (["task=nope"], ["task", "nope", "adding", "copy_memory", "digits", "mackey_glass", "temporal_order"]),
    (["model=nope"], ["model", "nope", "default", "esn"]),
    (["task=null"], ["task", "None", "adding"]),
    # the wrong type
    (["train.steps=abc"], ["train.steps", "abc", "integer"]),
    (["train.steps=1.5"], ["train.steps", "1.5", "integer"]),
    (["task.permute=maybe"], ["task.permute", "maybe", "true or false"]),
    (["model.forget_bias=abc"], ["model.forget_bias", "abc", "number"]),
    (["train.clip=3"], ["train.clip", "3", "mode", "threshold"]),
    # value ranges (workers.config.validate)
    (["train.lr=-1"], ["train.lr", "-1", "> 0"]),
    (["model.leak=2"], ["model.leak", "2", "(0, 1]"]),
    (["task=digits", "task.seq_len=50"], ["task.seq_len", "50", "64"]),
    (["model.cell=lstm", "model.activation=relu"], ["model.activation", "relu", "tanh"]),
])
def test_bad_values_name_key_value_and_valid(overrides, needles):
    msg = _message(overrides)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_bad_choice_message_format():
    assert _message(["model.cell=foo"]) == "model.cell='foo' is invalid; valid: one of rnn, lstm, gru, esn"
    assert _message(["task=nope"]) == (
        "task='nope' is invalid; valid: one of adding, copy_memory, digits, mackey_glass, temporal_order")


def test_exception_carries_key_value_valid():
    with pytest.raises(ConfigError) as info:
        compose_trial(["model.cell=foo"])
    assert (info.value.key, info.value.value) == ("model.cell", "foo")
    assert "lstm" in info.value.valid


@pytest.mark.parametrize("override", ["model.foo=1", "+model.foo=1", "++model.foo=1"])
def test_unknown_key_lists_valid_keys(override):
    msg = _message([override])
    assert msg.startswith("model.foo is not a config key; valid keys under model: ")
    for name in (f.name for f in dataclasses.fields(ModelConfig)):
        assert name in msg


def test_unknown_nested_and_root_keys():
    msg = _message(["train.clip.foo=1"])
    assert "train.clip.foo is not a config key" in msg and "mode, threshold" in msg
    msg = _message(["foo=1"])
    assert "foo is not a config key" in msg and "task, model, train" in msg
    msg = _message(["task.epochs=3"])
    assert "task.epochs" in msg and all(f.name in msg for f in dataclasses.fields(TaskConfig))


@pytest.mark.parametrize("override, needle", [
    ("model.cell", "model.cell"),            # no '='
    ("model.cell=(a", "model.cell=(a"),      # unbalanced parenthesis
    ("=3", "key"),                           # no key
    ("a b=1", "a b=1"),                      # whitespace in the key
])
def test_malformed_override(override, needle):
    msg = _message([override])
    assert "malformed" in msg and repr(override) in msg and needle in msg


@pytest.mark.parametrize("override", ["model.cell=choice(rnn,lstm)", "model.cell=rnn,lstm",
                                      "train.steps=range(1,5)"])
def test_sweep_override_refused(override):
    msg = _message([override])
    assert "sweep" in msg and override in msg


def test_other_failures_are_config_errors():
    assert "model.cell" in _message(["~model.cell"])
    assert "model.cell" in _message(["+model.cell=lstm"])          # append to an existing key
    msg = _message(["train.steps=${oc.env:GRADSTUDY_SURELY_UNSET_VARIABLE}"])
    assert "train.steps" in msg and "GRADSTUDY_SURELY_UNSET_VARIABLE" in msg


def test_composes_from_another_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_trial(["task=copy_memory"])
    assert cfg.task.name == TaskName.copy_memory
    assert "task='nope'" in _message(["task=nope"])


def test_conf_is_a_package():
    root = importlib.resources.files("conf")
    assert root.joinpath("config.yaml").is_file()
    for group in ("task", "model", "train"):
        assert root.joinpath(group, "__init__.py").is_file()
        assert any(p.name.endswith(".yaml") for p in root.joinpath(group).iterdir())


def test_resolved_yaml_round_trips(composed):
    cfg = composed.trial(["model.cell=gru", "train.clip.mode=value"])
    text = resolved_yaml(cfg)
    data = yaml.safe_load(text)
    assert data["model"]["cell"] == "gru" and data["train"]["clip"]["mode"] == "value"
    assert wconfig.from_dict(data) == cfg


def test_leaves_an_initialized_hydra_alone():
    """Inside an app that already initialized Hydra (e.g. @hydra.main), composing a trial still works
    and the app's Hydra instance is back in place afterwards."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="conf", version_base="1.3"):
        outer = GlobalHydra.instance().hydra
        assert compose_trial(["model.cell=gru"]).model.cell == Cell.gru
        with pytest.raises(ConfigError):
            compose_trial(["model.cell=foo"])
        assert GlobalHydra.instance().hydra is outer
        assert compose("config").model.cell == Cell.rnn
    assert not GlobalHydra.instance().is_initialized()


def test_a_study_started_before_new_keys_existed_is_still_the_same_study():
    """`gradstudy resume` across an upgrade: keys added since, at their defaults, do not change the identity."""
    import yaml

    from study.driver.runner import same_identity

    old = {"study": {"name": "s"}, "task": {"seq_len": 10}, "model": {"cell": "esn"}}
    new = {"study": {"name": "s", "health_patience": 3}, "task": {"seq_len": 10, "free_run": 0},
           "model": {"cell": "esn", "washout": 50, "ridge": 1e-6}}
    assert same_identity(yaml.safe_dump(old), yaml.safe_dump(new))
    assert not same_identity(yaml.safe_dump(old), yaml.safe_dump({**new, "model": {"cell": "esn", "washout": 20}}))
    assert not same_identity(yaml.safe_dump(old), yaml.safe_dump({**new, "task": {"seq_len": 20}}))
