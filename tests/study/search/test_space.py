"""study/search/space.py and its search_* modules: Hydra sweep grammar → Optuna distributions, conditional sampling,
overrides, grid, pre-flight checks."""
from __future__ import annotations

import collections
import itertools
import math
import warnings

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from study.search.check import validate_keys
from study.search.conditions import DEFAULT_CONDITIONS
from study.search.grammar import SearchError
from study.search.space import SearchSpace
from workers.config import ConfigError, TrialConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space(params: dict, conditions: dict | None = None) -> SearchSpace:
    return SearchSpace.from_config(params, conditions or {})


def dist(expr: str, key: str = "k"):
    (p,) = space({key: expr}).params
    return p.distribution


def new_study(sampler=None) -> optuna.Study:
    return optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=0))


BASE = {"model.cell": "rnn", "model.init": "default", "train.clip.mode": "none",
        "train.optimizer": "adam", "task.seq_len": 50}


def base(key):
    return BASE[key]


def run(sp: SearchSpace, n: int, base_fn=base, sampler=None):
    """n trials; returns [(sampled values, trial.params)]."""
    study = new_study(sampler)
    out = []
    for _ in range(n):
        trial = study.ask()
        values = sp.sample(trial, base_fn)
        out.append((values, dict(trial.params)))
        study.tell(trial, 0.0)
    return out


# ----------------------------------------------------------------------------------------------------
# grammar → distributions


def test_choice_keeps_types():
    d = dist("choice(adam, 1, 2.5, true, 'a b', '3')")
    assert isinstance(d, CategoricalDistribution)
    assert d.choices == ("adam", 1, 2.5, True, "a b", "3")
    assert [type(c) for c in d.choices] == [str, int, float, bool, str, str]


def test_simple_choice_form():
    assert dist("rnn,lstm").choices == ("rnn", "lstm")


def test_range_int_excludes_stop():
    assert dist("range(1,10,3)") == IntDistribution(1, 7, step=3)
    assert dist("range(1,4)") == IntDistribution(1, 3)
    assert dist("range(0, 10, 5)") == IntDistribution(0, 5, step=5)
    assert dist("range(3, 4)") == IntDistribution(3, 3)


def test_range_float_last_value():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "range not divisible by step" adjustment by Optuna
        d = dist("range(0.1,1.0,0.2)")
        assert isinstance(d, FloatDistribution)
        assert d.low == 0.1 and d.step == 0.2 and not d.log
        assert abs(d.high - 0.9) < 1e-9
        assert abs(dist("range(0, 1, 0.1)").high - 0.9) < 1e-9      # int start, float step
        assert abs(dist("range(0, 0.7, 0.1)").high - 0.6) < 1e-9    # 0.7 itself excluded
        assert dist("range(0, 0.02, 0.02)").high == 0.0             # Hydra's float rounding would give 0.02
        assert abs(dist("range(0.5, 2.01, 0.5)").high - 2.0) < 1e-9


def test_interval_float_and_int():
    assert dist("interval(0.1, 1)") == FloatDistribution(0.1, 1.0)
    assert dist("interval(1, 2)") == FloatDistribution(1.0, 2.0)   # Hydra's interval is float
    d = dist("int(interval(1, 10))")
    assert d == IntDistribution(1, 10)


def test_log_tags():
    assert dist("tag(log, interval(1e-5, 1e-1))") == FloatDistribution(1e-5, 0.1, log=True)
    assert dist("tag(log, int(interval(1,1000)))") == IntDistribution(1, 1000, log=True)


def test_plain_value_is_fixed():
    sp = space({"train.steps": "2000", "train.optimizer": "adam", "model.forget_bias": "null",
                "train.lr": 0.01})
    fixed = {p.key: p.fixed for p in sp.params}
    assert all(p.distribution is None and p.kind == "fixed" for p in sp.params)
    assert fixed == {"train.steps": 2000, "train.optimizer": "adam", "model.forget_bias": None,
                     "train.lr": 0.01}
    assert type(fixed["train.steps"]) is int


@pytest.mark.parametrize("expr", [
    "tag(log, range(1,5))",
    "interval(5,1)",
    "interval(1,1)",
    "tag(log, interval(0, 1))",
    "tag(log, int(interval(0, 10)))",
    "choice()",
    "choice(a,",
    "tag(foo, interval(1,2))",
    "tag(log, choice(1, 10))",
    "shuffle(choice(a,b))",
    "range(5,1)",
    "range(1,5,-1)",
    "range(1,5,0)",
    "choice(a, a)",
    "choice([1,2], 3)",
    "glob(*)",
    "[1, 2]",
    "",
])
def test_bad_expressions(expr):
    with pytest.raises(SearchError) as info:
        space({"model.hidden_size": expr})
    msg = str(info.value)
    assert "search.params.model.hidden_size" in msg
    assert repr(expr.strip()) in msg
    assert "valid:" in msg
    assert info.value.key == "search.params.model.hidden_size"
    assert isinstance(info.value, ConfigError)


def test_bad_key_forms():
    for key in ("+model.cell", "~model.cell", "model/cell@pkg"):
        with pytest.raises(SearchError):
            space({key: "choice(rnn, lstm)"})


# ----------------------------------------------------------------------------------------------------
# sampling


def test_sampled_values_stay_in_range():
    sp = space({
        "train.lr": "tag(log, interval(1e-5, 1e-1))",
        "model.hidden_size": "range(16, 129, 16)",
        "model.layers": "int(interval(1, 3))",
        "train.momentum2": "range(0.1, 1.0, 0.2)",
        "model.width": "tag(log, int(interval(1, 1000)))",
        "train.optimizer": "choice(sgd, adam, rmsprop)",
        "train.steps": "500",
    })
    rows = run(sp, 200)
    for values, params in rows:
        assert 1e-5 <= values["train.lr"] <= 1e-1
        assert values["model.hidden_size"] in range(16, 129, 16)
        assert values["model.layers"] in (1, 2, 3)
        assert 0.1 - 1e-9 <= values["train.momentum2"] <= 0.9 + 1e-9
        assert min(abs(values["train.momentum2"] - v) for v in (0.1, 0.3, 0.5, 0.7, 0.9)) < 1e-9
        assert 1 <= values["model.width"] <= 1000 and isinstance(values["model.width"], int)
        assert values["train.optimizer"] in ("sgd", "adam", "rmsprop")
        assert values["train.steps"] == 500
        assert "train.steps" not in params          # fixed: set, not suggested
        assert params == {k: v for k, v in values.items() if k != "train.steps"}
    assert {v["model.hidden_size"] for v, _ in rows} == set(range(16, 129, 16))
    assert {v["model.layers"] for v, _ in rows} == {1, 2, 3}


def test_range_end_never_sampled():
    counts = collections.Counter(v["x"] for v, _ in run(space({"x": "range(1,4)"}), 200))
    assert set(counts) == {1, 2, 3}


def test_float_range_end_never_sampled():
    seen = {round(v["x"], 9) for v, _ in run(space({"x": "range(0.1, 1.0, 0.2)"}), 200)}
    assert seen == {0.1, 0.3, 0.5, 0.7, 0.9}


# ----------------------------------------------------------------------------------------------------
# conditions


def test_builtin_condition_activation_only_for_rnn():
    sp = space({"model.cell": "choice(rnn, lstm)", "model.activation": "choice(tanh, relu)"})
    rows = run(sp, 50)
    cells = collections.Counter(v["model.cell"] for v, _ in rows)
    assert cells["rnn"] > 0 and cells["lstm"] > 0
    for values, params in rows:
        assert ("model.activation" in values) == (values["model.cell"] == "rnn")
        assert ("model.activation" in params) == (values["model.cell"] == "rnn")
    assert sp.params[1].condition.text == DEFAULT_CONDITIONS["model.activation"]


def test_order_independent_of_yaml_order():
    sp = space({"model.activation": "choice(tanh, relu)", "model.cell": "choice(rnn, lstm)"})
    assert [p.key for p in sp.params] == ["model.cell", "model.activation"]
    for values, _ in run(sp, 50):
        assert ("model.activation" in values) == (values["model.cell"] == "rnn")


def test_stable_order_keeps_yaml_order_otherwise():
    sp = space({"train.lr": "interval(0.1, 1)", "model.activation": "choice(tanh, relu)",
                "train.steps": "10", "model.cell": "choice(rnn, lstm)", "task.seq_len": "range(10, 20)"})
    assert [p.key for p in sp.params] == ["train.lr", "train.steps", "model.cell", "model.activation",
                                          "task.seq_len"]


def test_explicit_condition_overrides_builtin():
    sp = space({"model.cell": "choice(rnn, lstm)", "model.activation": "choice(tanh, relu)"},
               {"model.activation": "model.cell == lstm"})
    rows = run(sp, 50)
    assert {v["model.cell"] for v, _ in rows} == {"rnn", "lstm"}
    for values, params in rows:
        assert ("model.activation" in params) == (values["model.cell"] == "lstm")


def test_always_switches_builtin_off():
    sp = space({"model.cell": "choice(rnn, lstm)", "model.activation": "choice(tanh, relu)"},
               {"model.activation": "always"})
    assert all("model.activation" in v for v, _ in run(sp, 20))


def test_condition_on_non_param_uses_base():
    sp = space({"train.clip.threshold": "tag(log, interval(0.1, 10))", "train.lr": "interval(0.1, 1)"})
    rows = run(sp, 10, base_fn=base)                 # base clip.mode is none → never sampled
    assert all("train.clip.threshold" not in p for _, p in rows)
    rows = run(sp, 10, base_fn=lambda k: {**BASE, "train.clip.mode": "norm"}[k])
    assert all("train.clip.threshold" in p for _, p in rows)

    sp = space({"train.lr": "interval(0.1, 1)"}, {"train.lr": "task.seq_len in [50, 100]"})
    assert all("train.lr" in v for v, _ in run(sp, 5))        # base seq_len 50 (an int) matches
    assert not any("train.lr" in v for v, _ in run(sp, 5, base_fn=lambda k: {**BASE, "task.seq_len": 200}[k]))


def test_conditions_compare_enums_by_value():
    from workers.config import Cell, ClipMode
    sp = space({"model.activation": "choice(tanh, relu)", "train.clip.threshold": "interval(0.1, 10)"})
    enum_base = {"model.cell": Cell.esn, "train.clip.mode": ClipMode.norm}
    (values, _), = run(sp, 1, base_fn=enum_base.__getitem__)
    assert set(values) == {"model.activation", "train.clip.threshold"}
    enum_base = {"model.cell": Cell.gru, "train.clip.mode": ClipMode.none}
    (values, _), = run(sp, 1, base_fn=enum_base.__getitem__)
    assert values == {}


def test_conditions_not_in_and_scalars():
    sp = space({"a": "choice(1, 2, 3)", "b": "choice(x, y)", "c": "choice(true, false)", "d": "5"},
               {"b": "a not in [1, 2]", "c": "a != 3", "d": "c == true"})
    rows = run(sp, 60, base_fn={"c": False}.__getitem__)
    for values, _ in rows:
        assert ("b" in values) == (values["a"] == 3)
        assert ("c" in values) == (values["a"] != 3)
        assert ("d" in values) == (values.get("c") is True)     # c absent → base(c) = False
    assert any("d" in v for v, _ in rows) and any("b" in v for v, _ in rows)


def test_fixed_param_with_builtin_condition():
    sp = space({"model.cell": "choice(lstm, gru)", "model.forget_bias": "1.0"})
    for values, params in run(sp, 30):
        assert ("model.forget_bias" in values) == (values["model.cell"] == "lstm")
        assert "model.forget_bias" not in params


def test_condition_chain():
    sp = space({"model.init_gain": "interval(0.5, 2)", "model.init": "choice(default, scaled)",
                "model.cell": "choice(rnn, lstm)"},
               {"model.init": "model.cell == rnn"})
    assert [p.key for p in sp.params] == ["model.cell", "model.init", "model.init_gain"]
    for values, _ in run(sp, 60):
        # init absent (lstm) → base init "default" → no gain
        assert ("model.init_gain" in values) == (values.get("model.init") == "scaled")


def test_condition_cycle():
    with pytest.raises(SearchError, match="cycle"):
        space({"a": "choice(1, 2)", "b": "choice(1, 2)"}, {"a": "b == 1", "b": "a == 1"})
    with pytest.raises(SearchError, match="cycle"):
        space({"a": "choice(1, 2)"}, {"a": "a == 1"})


def test_condition_for_non_param_is_an_error():
    with pytest.raises(SearchError) as info:
        space({"model.cell": "choice(rnn, lstm)"}, {"model.activation": "model.cell == rnn"})
    assert "search.conditions.model.activation" in str(info.value)


@pytest.mark.parametrize("cond", ["model.cell rnn", "model.cell in rnn", "model.cell in []",
                                  "model.cell == ", "in [rnn]", "model.cell == [rnn]",
                                  "model.cell in [rnn", "model.cell =~ rnn", 3])
def test_malformed_conditions(cond):
    with pytest.raises(SearchError) as info:
        space({"model.activation": "choice(tanh, relu)"}, {"model.activation": cond})
    assert "search.conditions.model.activation" in str(info.value)
    assert repr(cond) in str(info.value)


def test_unknown_base_key_in_condition():
    sp = space({"train.lr": "interval(0.1, 1)"}, {"train.lr": "model.nope == 1"})
    with pytest.raises(SearchError, match="search.conditions.train.lr"):
        sp.sample(new_study().ask(), base)


# ----------------------------------------------------------------------------------------------------
# overrides round-trip through Hydra's parser


@pytest.mark.parametrize("value", [
    "adam", "a b", "a,b", "it's", "true", "null", "1", "1e-5", "", "x=y", "${oops}", "back\\slash",
    "", "a'b\"c", "range(1,2)", "é", " padded ",
    0, 7, -3, 10**12, 1e-5, 0.1, 1.0, -2.5, 1e300, 0.30000000000000004, float("inf"),
    True, False, None,
])
def test_overrides_round_trip(value):
    (line,) = SearchSpace([]).overrides({"train.x": value})
    parsed = OverridesParser.create().parse_override(line)
    assert parsed.key_or_group == "train.x"
    assert not parsed.is_sweep_override()
    back = parsed.value()
    assert type(back) is type(value)
    assert back == value


def test_overrides_of_sampled_values():
    sp = space({"train.lr": "tag(log, interval(1e-5, 1e-1))", "model.cell": "choice(rnn, 'l s', true)",
                "x": "range(0.1, 1.0, 0.2)", "n": "range(1, 4)", "s": "'a, b'"})
    parser = OverridesParser.create()
    for values, _ in run(sp, 30):
        lines = sp.overrides(values)
        back = {o.key_or_group: o.value() for o in map(parser.parse_override, lines)}
        assert back == values
        assert [type(v) for v in back.values()] == [type(v) for v in values.values()]
    assert sp.overrides({"train.lr": 1e-05, "flag": True, "s": "a b"}) == [
        "train.lr=1e-05", "flag=true", "s='a b'"]


def test_overrides_enums_as_values():
    from workers.config import Cell
    assert SearchSpace([]).overrides({"model.cell": Cell.lstm}) == ["model.cell=lstm"]


# ----------------------------------------------------------------------------------------------------
# grid


def test_grid_product():
    sp = space({"model.cell": "choice(rnn, lstm, gru)", "model.hidden_size": "range(16, 65, 16)",
                "x": "range(0.1, 0.6, 0.2)", "train.steps": "100"})
    grid = sp.grid()
    assert grid["model.cell"] == ["rnn", "lstm", "gru"]
    assert grid["model.hidden_size"] == [16, 32, 48, 64]
    assert grid["x"] == pytest.approx([0.1, 0.3, 0.5])
    assert "train.steps" not in grid
    size = math.prod(len(v) for v in grid.values())
    assert size == 3 * 4 * 3

    seen = []

    def objective(trial):
        values = sp.sample(trial, base)
        seen.append((values["model.cell"], values["model.hidden_size"], round(values["x"], 9)))
        return 0.0

    study = new_study(optuna.samplers.GridSampler(grid, seed=0))
    study.optimize(objective, n_trials=size + 5)      # the grid sampler stops the study when exhausted
    assert len(seen) == size
    assert set(seen) == set(itertools.product(["rnn", "lstm", "gru"], [16, 32, 48, 64], [0.1, 0.3, 0.5]))


@pytest.mark.parametrize("expr", ["interval(0.1, 1)", "int(interval(1, 5))", "tag(log, interval(1e-4, 1))"])
def test_grid_refuses_intervals(expr):
    with pytest.raises(SearchError, match="grid needs choice"):
        space({"model.cell": "choice(rnn, lstm)", "train.lr": expr}).grid()


# ----------------------------------------------------------------------------------------------------
# describe


def test_structured_search_space_is_what_the_study_stores():
    sp = space({"model.activation": "choice(tanh, relu)", "model.cell": "choice(rnn, esn)", "train.steps": "100"})
    assert sp.structured() == {
        "model.cell": {"expression": "choice(rnn, esn)", "fixed": False, "condition": None},
        "model.activation": {"expression": "choice(tanh, relu)", "fixed": False,
                             "condition": "model.cell in [rnn, esn]"},
        "train.steps": {"expression": "100", "fixed": True, "condition": None}}


def test_describe():
    sp = space({"model.activation": "choice(tanh, relu)", "model.cell": "choice(rnn, esn)",
                "train.steps": "100"})
    assert sp.describe() == {"model.cell": "choice(rnn, esn)",
                             "model.activation": "choice(tanh, relu) if model.cell in [rnn, esn]",
                             "train.steps": "100"}


# ----------------------------------------------------------------------------------------------------
# validate_keys


KNOWN = {"model.cell": {"rnn", "lstm", "gru", "esn"}, "model.activation": {"tanh", "relu"},
         "train.lr": None, "model.forget_bias": None}


def fake_check(calls: list):
    """Like composing a trial: unknown keys and values outside a key's choices raise ConfigError;
    model.forget_bias is only valid with model.cell=lstm (a cross-key rule)."""

    def check(overrides: list[str]):
        calls.append(list(overrides))
        parser = OverridesParser.create()
        cfg = {}
        for o in map(parser.parse_override, overrides):
            key, value = o.key_or_group, o.value()
            if key not in KNOWN:
                raise ConfigError(key, value, "keys " + ", ".join(KNOWN))
            if KNOWN[key] is not None and value not in KNOWN[key]:
                raise ConfigError(key, value, "one of " + ", ".join(sorted(KNOWN[key])))
            if key == "train.lr" and not value > 0:
                raise ConfigError(key, value, "a number > 0")
            cfg[key] = value
        if "model.forget_bias" in cfg and cfg.get("model.cell", "rnn") != "lstm":
            raise ConfigError("model.forget_bias", cfg["model.forget_bias"], "null unless model.cell=lstm")

    return check


def test_validate_keys_passes_and_checks_every_value():
    calls = []
    sp = space({"model.cell": "choice(rnn, lstm)", "model.activation": "choice(tanh, relu)",
                "train.lr": "tag(log, interval(1e-4, 1e-1))", "model.forget_bias": "interval(0.5, 2)"})
    validate_keys(sp, fake_check(calls))
    flat = [c[-1] for c in calls]
    for line in ("model.cell=rnn", "model.cell=lstm", "model.activation=tanh", "model.activation=relu",
                 "train.lr=0.0001", "train.lr=0.1", "model.forget_bias=0.5", "model.forget_bias=2.0"):
        assert line in flat
    # the forget-gate bias is checked together with the cell its built-in condition needs
    assert ["model.cell=lstm", "model.forget_bias=0.5"] in calls


def test_validate_keys_unknown_key():
    sp = space({"model.actvation": "choice(tanh, relu)"})
    with pytest.raises(SearchError) as info:
        validate_keys(sp, fake_check([]))
    assert "search.params.model.actvation" in str(info.value)
    assert info.value.key == "search.params.model.actvation"
    assert isinstance(info.value.__cause__, ConfigError)


def test_validate_keys_bad_choice():
    sp = space({"model.cell": "choice(rnn, lsmt)"})
    with pytest.raises(SearchError) as info:
        validate_keys(sp, fake_check([]))
    assert info.value.key == "search.params.model.cell"
    assert info.value.value == "lsmt"
    assert "esn, gru, lstm, rnn" in str(info.value)


def test_validate_keys_bad_bound_and_condition_value():
    with pytest.raises(SearchError, match="search.params.train.lr"):
        validate_keys(space({"train.lr": "range(0, 3)"}), fake_check([]))
    sp = space({"train.lr": "interval(0.1, 1)"}, {"train.lr": "model.cell in [rnn, lsmt]"})
    with pytest.raises(SearchError, match="search.conditions.train.lr"):
        validate_keys(sp, fake_check([]))


def test_validate_keys_with_real_schema_check():
    """A check built on workers.config.from_dict (the trial schema without Hydra)."""
    from workers.config import from_dict, to_dict

    def check(overrides):
        data = to_dict(TrialConfig())
        for o in map(OverridesParser.create().parse_override, overrides):
            *path, last = o.key_or_group.split(".")
            node = data
            for part in path:
                node = node.setdefault(part, {})
            node[last] = o.value()
        from_dict(data)

    validate_keys(space({"model.cell": "choice(rnn, lstm, esn)", "model.activation": "choice(tanh, relu)",
                         "model.forget_bias": "interval(0.5, 2)",
                         "train.clip.mode": "choice(none, norm)",
                         "train.clip.threshold": "tag(log, interval(0.1, 10))"}), check)
    with pytest.raises(SearchError, match="search.params.model.activation"):
        validate_keys(space({"model.activation": "choice(tanh, swish)"}), check)
    with pytest.raises(SearchError, match="search.params.model.hiden_size"):
        validate_keys(space({"model.hiden_size": "range(16, 64, 16)"}), check)
