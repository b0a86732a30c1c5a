"""study/config/hydra_errors.py: every kind of Hydra / OmegaConf failure becomes one ConfigError that names the
key, the bad value and what is valid (read from the exceptions' attributes and the parsed overrides, the
message only as the last resort); `check_known_keys` refuses keys outside the schema.

The exceptions are real: Hydra composing conf/ with a bad override (study.config.compose.compose_config), or
OmegaConf refusing a value, inside `hydra_errors`. A few kinds that conf/ cannot produce (a group with no
options, a missing primary config) are Hydra's own exception raised by hand."""
from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf import errors as oc_errors

from study.config.compose import compose_config
from study.config.hydra_errors import check_known_keys, hydra_errors
from study.config.overrides import config_groups, parse_overrides
from study.config.schema import RootConfig
from workers.config import ConfigError, ModelConfig

TASKS = "adding, copy_memory, digits, mackey_glass, temporal_order"
MODEL_KEYS = ", ".join(ModelConfig.__dataclass_fields__)


def refused(*overrides: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compose_config(list(overrides))
    err = info.value
    assert "\n" not in str(err)          # one line, whatever Hydra said
    return err


def inside(exc: Exception, overrides=()) -> ConfigError:
    """`exc` raised inside hydra_errors, as it is translated."""
    with pytest.raises(ConfigError) as info:
        with hydra_errors(list(overrides), parse_overrides(list(overrides))):
            raise exc
    assert info.value.__cause__ is exc
    return info.value


def test_an_option_not_in_the_group_names_the_group_and_its_options():
    err = refused("task=nope")
    assert isinstance(err.__cause__, MissingConfigException)
    assert (err.key, err.value, err.valid) == ("task", "nope", "one of " + TASKS)
    assert str(err) == f"task='nope' is invalid; valid: one of {TASKS}"


def test_a_group_that_is_not_a_group_lists_the_groups():
    err = inside(MissingConfigException("Could not find 'nogroup/x'", missing_cfg_file="nogroup/x", options=None))
    groups = ", ".join(config_groups())
    assert (err.key, err.value, err.valid) == ("nogroup", "x", "one of the config groups " + groups)
    assert str(err) == f"nogroup is not a config group; valid groups: {groups}"
    err = inside(MissingConfigException("?", missing_cfg_file="search/sub/x", options=["b", "a"]))
    assert (err.key, err.value, err.valid) == ("search.sub", "x", "one of a, b")     # a nested group, dotted


def test_a_missing_primary_config_names_it():
    err = inside(MissingConfigException("Cannot find primary config 'nope'", missing_cfg_file="nope",
                                        options=["config", "other"]))
    assert (err.key, err.value, err.valid) == ("nope", "nope", "one of config, other")
    err = inside(MissingConfigException("Cannot find primary config 'nope'\nmore", missing_cfg_file="nope"))
    assert (err.key, err.value, err.valid) == ("nope", "nope", "an existing config")
    assert str(err) == "Cannot find primary config 'nope' (no such config or config group)"


@pytest.mark.parametrize("override, value, valid", [
    ("model.hidden_size=abc", "abc", "an integer"),
    ("train.lr=fast", "fast", "a number"),
    ("model.residual=maybe", "maybe", "true or false"),
    ("model.cell=foo", "foo", "one of rnn, lstm, gru, esn"),
    ("train.clip.mode=sideways", "sideways", "one of none, norm, value"),
    ("model.forget_bias=abc", "abc", "a number or null"),
    ("train.clip=3", 3, "a mapping with keys mode, threshold")])
def test_a_value_of_the_wrong_type_names_key_value_and_the_type(override, value, valid):
    err = refused(override)
    key = override.split("=")[0]
    assert isinstance(err.__cause__, ConfigCompositionException)
    assert isinstance(err.__cause__.__cause__, oc_errors.ValidationError)
    assert (err.key, err.value, err.valid) == (key, value, valid)
    assert str(err) == f"{key}={value!r} is invalid; valid: {valid}"


def test_of_several_overrides_of_a_key_the_one_refused_is_named():
    assert refused("model.hidden_size=abc", "model.hidden_size=5").value == "abc"
    assert refused("model.hidden_size=5", "model.hidden_size=abc").value == "abc"


def test_a_bad_value_from_a_yaml_file_is_read_from_omegaconfs_message():
    node = OmegaConf.structured(ModelConfig)
    with pytest.raises(ConfigError) as info:
        with hydra_errors([], []):               # no override gave it: the value came from a file
            node.hidden_size = "sixty-four"
    assert (info.value.key, info.value.value, info.value.valid) == ("hidden_size", "sixty-four", "an integer")
    with pytest.raises(ConfigError) as info:
        with hydra_errors([], []):
            node.residual = "maybe"
    assert (info.value.value, info.value.valid) == ("maybe", "true or false")


def test_an_unknown_key_lists_the_valid_keys_where_it_was_given():
    err = refused("model.nope=1")
    assert (err.key, err.value, err.valid) == ("model.nope", 1, "keys " + MODEL_KEYS)
    assert str(err) == f"model.nope is not a config key; valid keys under model: {MODEL_KEYS}"
    err = refused("nogroup=x")                  # top level: no "under"
    top = ", ".join(RootConfig.__dataclass_fields__)
    assert (err.key, err.value, err.valid) == ("nogroup", "x", "keys " + top)
    assert str(err) == f"nogroup is not a config key; valid keys: {top}"


def test_a_new_key_of_a_free_mapping_says_how_to_add_it():
    err = refused("search.params.model.lr=1e-3")
    assert (err.key, err.value, err.valid) == ("search.params.model.lr", 1e-3, "++search.params={...}")
    assert "search.params has no key 'model.lr' to override" in str(err)
    assert "'++search.params={model.lr: ...}'" in str(err)


def test_deleting_a_schema_field_is_refused():
    err = refused("~model.cell")
    assert (err.key, err.value, err.valid) == ("model.cell", None, "set it to a value instead")
    assert str(err).startswith("model.cell cannot be deleted: it is a field of the schema (ModelConfig)")


def test_an_interpolation_that_fails_names_key_value_and_omegaconfs_reason(monkeypatch):
    monkeypatch.delenv("GRADSTUDY_TEST_UNSET", raising=False)
    err = refused("train.steps=${oc.env:GRADSTUDY_TEST_UNSET}")
    assert (err.key, err.value) == ("train.steps", "${oc.env:GRADSTUDY_TEST_UNSET}")
    assert "GRADSTUDY_TEST_UNSET" in err.valid and "not found" in err.valid
    assert str(err) == f"train.steps='${{oc.env:GRADSTUDY_TEST_UNSET}}' is invalid: {err.valid}"
    # given twice: the last value is the one composed, and named
    assert refused("train.steps=5", "train.steps=${oc.env:GRADSTUDY_TEST_UNSET}").value == \
        "${oc.env:GRADSTUDY_TEST_UNSET}"


def test_a_composition_failure_without_omegaconf_cause_names_the_overrides():
    err = refused("+model.cell=lstm")
    assert (err.key, err.value) == ("+model.cell=lstm", ["+model.cell=lstm"])
    assert err.valid.startswith("Could not append to config. An item is already at 'model.cell'.")
    assert str(err) == f"cannot compose the config with +model.cell=lstm: {err.valid}"
    err = inside(ValueError("line one\n  line two"))
    assert (err.key, err.value, err.valid) == ("(no overrides)", [], "line one line two")


def test_a_config_error_passes_through_as_it_is():
    mine = ConfigError("model.layers", 0, "an integer ≥ 1")
    with pytest.raises(ConfigError) as info:
        with hydra_errors(["model.layers=0"], parse_overrides(["model.layers=0"])):
            raise mine
    assert info.value is mine


def test_check_known_keys_refuses_keys_outside_the_schema_at_any_depth():
    err = refused("+study.nope=1")       # Hydra lets `+` add it; the schema does not
    assert (err.key, err.value) == ("study.nope", 1)
    assert err.valid.startswith("keys name, n_trials, storage")
    with pytest.raises(ConfigError) as info:
        check_known_keys({"model": {"cell": "rnn"}, "train": {"clip": {"mode": "norm", "bogus": 2}}},
                         RootConfig, "", [])
    assert (info.value.key, info.value.valid) == ("train.clip.bogus", "keys mode, threshold")
    # the keys of a free-form mapping are the user's: not checked
    check_known_keys({"search": {"params": {"model.anything": "choice(1, 2)"}}}, RootConfig, "", [])
