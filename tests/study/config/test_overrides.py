"""study/config/overrides.py: overrides parsed by Hydra's grammar, each refusal a ConfigError naming the
override and what is valid (a non-string, a malformed override, a missing key, a sweep, an unquoted sweep
inside {...}/[...], `+group=x` for a group of the defaults list, `group=null`); the config groups of `conf/`
and their options; `first_line`."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.override_parser.types import OverrideType

import conf
from study.config import overrides
from study.config.overrides import config_groups, first_line, group_options, parse_overrides
from workers.config import ConfigError

CONF = Path(conf.__file__).parent
TASKS = ["adding", "copy_memory", "digits", "mackey_glass", "temporal_order"]


def refused(override) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_overrides(["model.cell=lstm", override])     # a good override first: each is checked
    return info.value


def test_good_overrides_are_parsed_in_order():
    parsed = parse_overrides(["model.cell=lstm", "++search.params={train.lr: 'choice(1e-3, 1e-2)'}",
                              "~model.forget_bias", "task=copy_memory", "+nightly.previous=x"])
    assert [o.key_or_group for o in parsed] == ["model.cell", "search.params", "model.forget_bias", "task",
                                                "nightly.previous"]
    assert [o.type for o in parsed] == [OverrideType.CHANGE, OverrideType.FORCE_ADD, OverrideType.DEL,
                                        OverrideType.CHANGE, OverrideType.ADD]
    assert parsed[1].value() == {"train.lr": "choice(1e-3, 1e-2)"}     # quoted: a plain string
    assert parse_overrides([]) == []


def test_a_non_string_is_refused():
    err = refused(3)
    assert (err.key, err.value, err.valid) == ("3", 3, "a string key=value")
    assert "override 3 is not a string" in str(err)


@pytest.mark.parametrize("line, detail", [("model.cell=(", "extraneous input '('"),
                                          ("model.cell", "missing EQUAL")])
def test_a_malformed_override_is_refused_with_hydras_reason(line, detail):
    err = refused(line)
    assert (err.key, err.value) == (line, line)
    assert err.valid.startswith("key=value")
    assert str(err).startswith(f"override {line!r} is malformed: {detail}")
    assert "\n" not in str(err)     # one line: Hydra's first only


def test_a_missing_key_is_refused():
    err = refused("=lstm")
    assert (err.key, err.value, err.valid) == ("=lstm", "=lstm", "key=value")
    assert "the key before '=' is missing" in str(err)


@pytest.mark.parametrize("line", ["model.cell=rnn,lstm", "train.lr=choice(1e-3,1e-2)", "train.steps=range(1,5)"])
def test_a_sweep_is_refused_it_belongs_in_a_search_space(line):
    err = refused(line)
    key = line.split("=")[0]
    assert (err.key, err.value, err.valid) == (key, line, "a single value")
    assert "is a sweep" in str(err) and "search space" in str(err)


@pytest.mark.parametrize("line, key", [
    ("++search.params={train.lr: choice(1e-3, 1e-2)}", "search.params.train.lr"),
    ("++search.params={a: {b: [1, range(1,3)]}}", "search.params.a.b[1]"),
    ("++expect=[1, choice(1,2)]", "expect[1]")])
def test_an_unquoted_sweep_inside_a_mapping_or_list_is_refused_at_its_path(line, key):
    err = refused(line)
    assert (err.key, err.value, err.valid) == (key, line, "a quoted string")
    assert f"{key} is a sweep inside" in str(err) and "quote the expression" in str(err)


def test_adding_a_group_of_the_defaults_list_is_refused_with_the_override_to_use():
    err = refused("+task=copy_memory")
    assert (err.key, err.value, err.valid) == ("task", "copy_memory", "one of " + ", ".join(TASKS))
    assert "choose its option with task=copy_memory" in str(err)


def test_a_group_set_to_null_is_refused_with_its_options():
    err = refused("task=null")
    assert (err.key, err.value, err.valid) == ("task", None, "one of " + ", ".join(TASKS))
    assert parse_overrides(["~task"])[0].type == OverrideType.DEL       # deleting is Hydra's business
    assert parse_overrides(["model.forget_bias=null"])[0].value() is None   # a key, not a group: fine


def test_config_groups_are_the_folders_of_conf_that_hold_yaml():
    groups = config_groups()
    assert groups == sorted(p.name for p in CONF.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    assert {"task", "model", "train", "search", "study", "cluster", "tracking", "experiment"} <= set(groups)
    assert groups == sorted(groups)
    assert "__pycache__" not in groups


def test_a_folder_without_yaml_is_no_group_and_only_yaml_files_are_options(tmp_path, monkeypatch):
    tree = tmp_path / "gradstudy_conf_probe"
    for path in ("__init__.py", "config.yaml", "task/b.yaml", "task/a.yaml", "task/README.md",
                 "task/deep/x.yaml", "notes/README.md", "model/default.yaml"):
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(overrides, "CONFIG_MODULE", "gradstudy_conf_probe")
    assert config_groups() == ["model", "task"]
    assert group_options("task") == ["a", "b"]
    assert group_options("task/deep") == ["x"]


def test_group_options_are_the_yaml_names_sorted():
    assert group_options("task") == TASKS
    experiments = group_options("experiment")
    assert experiments == sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert "demo" in experiments and "__init__" not in experiments


def test_first_line_is_the_first_non_blank_line_stripped():
    assert first_line("\n  \n  Error merging override \nmore detail\n") == "Error merging override"
    assert first_line("one") == "one"
    assert first_line("   ") == ""
    assert first_line(ValueError("  a\nb")) == "a"       # anything str() takes
