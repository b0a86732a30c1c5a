"""study/search/syntax.py: what the search grammar shares: SearchError (a ConfigError naming the search key,
the bad expression and what is valid, with an optional reason), Hydra's override parser, and the plain forms
of values (`plain`, `scalar_ok`, `exact_decimal`)."""
from __future__ import annotations

import decimal
import pickle
from enum import Enum

import pytest
from hydra.core.override_parser.types import ChoiceSweep, OverrideType
from hydra.errors import HydraException

from study.search.syntax import SearchError, exact_decimal, parse_override, plain, scalar_ok
from workers.config import Cell, ConfigError


def test_search_error_names_key_value_and_what_is_valid():
    err = SearchError("search.params.train.lr", "loguniform(0, 1)", "a positive low bound")
    assert isinstance(err, ConfigError) and isinstance(err, ValueError)
    assert (err.key, err.value, err.valid, err.reason) == (
        "search.params.train.lr", "loguniform(0, 1)", "a positive low bound", None)
    assert str(err) == "search.params.train.lr='loguniform(0, 1)' is invalid; valid: a positive low bound"


def test_search_error_with_a_reason_says_it_between_value_and_valid():
    err = SearchError("search.conditions.model.forget_bias", "model.cell == lstm", "a known key",
                      reason="model.cel is not a config key")
    assert err.reason == "model.cel is not a config key"
    assert str(err) == ("search.conditions.model.forget_bias='model.cell == lstm' is invalid "
                        "(model.cel is not a config key); valid: a known key")
    with pytest.raises(ConfigError, match=r"\(model.cel is not a config key\)"):
        raise err


def test_search_error_survives_pickling():
    """Ray sends a worker's exceptions back pickled: the key, value, valid text and reason come back as they were."""
    err = pickle.loads(pickle.dumps(SearchError("search.params.x", 3, "a string")))
    assert isinstance(err, SearchError)
    assert (err.key, err.value, err.valid, err.reason) == ("search.params.x", 3, "a string", None)
    assert str(err) == "search.params.x=3 is invalid; valid: a string"
    err = pickle.loads(pickle.dumps(SearchError("search.params.x", 3, "a string", reason="not text")))
    assert err.reason == "not text"
    assert str(err) == "search.params.x=3 is invalid (not text); valid: a string"


def test_parse_override_is_hydras_grammar():
    ov = parse_override("train.lr=choice(1e-3, 1e-2)")
    assert ov.key_or_group == "train.lr" and ov.type == OverrideType.CHANGE
    assert isinstance(ov.value(), ChoiceSweep) and ov.value().list == [0.001, 0.01]
    ov = parse_override("++search.params={model.cell: lstm}")
    assert ov.type == OverrideType.FORCE_ADD and ov.value() == {"model.cell": "lstm"}
    assert parse_override("model.hidden_size=64").value() == 64
    with pytest.raises(HydraException):          # Hydra's own exception, not translated here
        parse_override("model.cell=(")


def test_plain_turns_enums_into_their_value_and_leaves_the_rest():
    class Colour(Enum):
        red = "r"

    assert plain(Cell.lstm) == "lstm" and type(plain(Cell.lstm)) is str
    assert plain(Colour.red) == "r"
    for value in ("lstm", 3, 0.5, None, [Cell.lstm], {"a": 1}):
        assert plain(value) is value


def test_scalar_ok_accepts_scalars_and_null_only():
    for value in (None, "x", "", 0, 3, 1.5, float("nan"), True, False):
        assert scalar_ok(value), value
    for value in ([1], (1,), {"a": 1}, {1}, object(), Cell):
        assert not scalar_ok(value), value


def test_exact_decimal_is_the_number_as_written_not_its_binary_expansion():
    assert exact_decimal(0.1) == decimal.Decimal("0.1") != decimal.Decimal(0.1)
    assert exact_decimal(1e-05) == decimal.Decimal("0.00001")
    assert exact_decimal(3.0) == 3 and exact_decimal(7) == 7
    # the point of it: steps and bounds compare exactly (0.1 * 3 != 0.3 in floats)
    assert exact_decimal(0.1) * 3 == exact_decimal(0.3)
