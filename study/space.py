"""Search spaces: `search.params` / `search.conditions` → Optuna distributions, sampled define-by-run.

A search space is written in **Hydra's own override sweep grammar** and parsed with Hydra's parser
(`OverridesParser.parse_override(f"{key}={expression}")`), so there is no new syntax to learn::

    params:
      model.cell: choice(rnn, lstm, gru)            # categorical; values keep their types
      model.hidden_size: range(32, 257, 32)          # 32, 64, …, 256 (257 excluded, as in Hydra)
      train.lr: tag(log, interval(1e-4, 1e-1))       # continuous, log scale, both ends included
      model.layers: int(interval(1, 3))              # integers 1, 2, 3
      model.activation: choice(tanh, relu)           # sampled only where it applies (see conditions)
      train.steps: 2000                              # a plain value: fixed, set on every trial
    conditions:
      model.init_gain: model.init == scaled          # overrides the built-in condition of the key

Grammar → Optuna distribution
-----------------------------
======================================  =====================================================
``choice(a, b, …)`` or ``a,b,…``        ``CategoricalDistribution((a, b, …))`` (str/int/float/bool/null)
``range(a, b[, step])`` (all ints)      ``IntDistribution(a, last, step)``
``range(a, b[, step])`` (any float)     ``FloatDistribution(a, last, step=step)``
``interval(a, b)``                      ``FloatDistribution(a, b)``
``int(interval(a, b))``                 ``IntDistribution(a, b)``
``tag(log, interval(a, b))``            ``FloatDistribution(a, b, log=True)`` (requires a > 0)
``tag(log, int(interval(a, b)))``       ``IntDistribution(a, b, log=True)`` (requires a ≥ 1)
a plain value (``3``, ``adam``, …)      fixed: set on every trial where it applies, not sampled
======================================  =====================================================

Decisions
---------
* **range's end.** Hydra's ``range(a, b, step)`` excludes ``b`` (like Python's ``range``) while Optuna's
  ``high`` is inclusive, so ``high`` is the *last value the range produces*: ``range(1, 10, 3)`` →
  ``IntDistribution(1, 7, step=3)``; ``range(1, 4)`` samples only 1, 2, 3. For float ranges the count of
  values is computed in decimal arithmetic on the numbers as written (``Decimal(repr(x))``, the same view
  Optuna takes of ``step``), so ``range(0.1, 1.0, 0.2)`` ends at exactly 0.9 and ``range(0, 0.02, 0.02)``
  is just ``[0]``. (Hydra's own float enumeration works on the binary values and sometimes yields the end
  point, e.g. ``[0, 0.02]`` there; we follow Hydra's documented rule, not that rounding accident.)
* **Refused expressions** (each a `SearchError` naming ``search.params.<key>``): an empty or malformed
  expression, an empty range, a range whose step is ≤ 0, ``interval(a, b)`` with a ≥ b, ``tag(log, …)``
  on anything but an interval (Optuna cannot sample a stepped range or choices on a log scale), a log
  interval with a ≤ 0, any other tag, ``shuffle(…)`` and ``glob(…)`` (they have no meaning for a sampler),
  choices that are lists/dicts or repeated, a key written with ``+``/``~``/``@package``.
* **Conditions** (``search.conditions``: key → condition) take one of the forms ``<key> in [a, b, …]``,
  ``<key> not in [a, b, …]``, ``<key> == v``, ``<key> != v``, or ``always`` (switch a built-in condition
  off). The values are parsed by the same Hydra grammar, i.e. like YAML scalars: ``true``/``false``,
  ``null``, ints, floats, otherwise strings (``none`` is the string ``"none"``, a clip mode). Enums are
  compared by their string value. Where the YAML writes no condition for a key, the built-in one in
  `DEFAULT_CONDITIONS` applies (e.g. ``model.activation`` only for rnn/esn cells), so a conditional
  parameter is never sampled where the trial would ignore (or refuse) it.
* **What a condition reads.** The value sampled (or fixed) for the condition's key in this trial if it
  is a parameter that applied; otherwise the base config's value (``base(key)``), which is what the trial
  will actually run with.
* **Order.** Parameters are sampled in YAML order, except that a parameter a condition depends on is
  sampled before the parameters that depend on it (a stable topological order); a cycle is an error.
* **Sampling** uses only Optuna's public define-by-run API (``suggest_categorical``, ``suggest_int``,
  ``suggest_float``) with the config key as the Optuna parameter name, so ``trial.params`` holds exactly
  the sampled keys; parameters whose condition fails are neither suggested nor returned.
"""
from __future__ import annotations

import decimal
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterable, Mapping, Optional

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
    Override,
    OverrideType,
    Quote,
    QuotedString,
    RangeSweep,
)
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from tracking.attrs import describe_search
from workers.config import LAMBDA1_INITS, ConfigError

__all__ = ["SearchError", "Condition", "Param", "SearchSpace", "DEFAULT_CONDITIONS", "VALID_EXPRESSIONS",
           "validate_keys", "format_override", "format_value", "parse_param", "parse_condition"]

VALID_EXPRESSIONS = ("choice(...), range(a, b[, step]), interval(a, b), int(interval(a, b)), "
                     "tag(log, interval(...)), or a plain value")
VALID_CONDITIONS = "'<key> in [a, b, ...]', '<key> not in [a, ...]', '<key> == v', '<key> != v' or 'always'"

# Conditions that apply to well-known keys when search.conditions writes none for them.
DEFAULT_CONDITIONS: dict[str, str] = {
    "model.activation": "model.cell in [rnn, esn]",
    "model.spectral_radius": "model.cell == esn",
    "model.leak": "model.cell == esn",
    "model.sparsity": "model.cell == esn",
    "model.input_scaling": "model.cell == esn",
    "model.forget_bias": "model.cell == lstm",
    "model.init_gain": f"model.init in [{', '.join(i.value for i in LAMBDA1_INITS)}]",
    "train.clip.threshold": "train.clip.mode != none",
    "train.momentum": "train.optimizer in [momentum, rmsprop]",
}


class SearchError(ConfigError):
    """A bad search space: names the key (``search.params.<key>`` / ``search.conditions.<key>``), the bad
    expression or value, and what is valid; `reason` (optional) says what exactly is wrong."""

    def __init__(self, key: str, value: Any, valid: str, reason: Optional[str] = None):
        super().__init__(key, value, valid)
        self.reason = reason
        if reason:
            self.args = (f"{key}={value!r} is invalid ({reason}); valid: {valid}",)


_parser = OverridesParser.create()


def _parse(text: str) -> Override:
    """One override parsed by Hydra's grammar (raises Hydra's exceptions)."""
    return _parser.parse_override(text)


# ----------------------------------------------------------------------------------------------------
# Values: normalizing, comparing, writing back as overrides


def _plain(value: Any) -> Any:
    """Enums as their string value; everything else as is."""
    return value.value if isinstance(value, Enum) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    """Equality for conditions: enums by value, bools only equal bools, numbers numerically, otherwise
    by type, falling back to the string forms for mixed types (e.g. a str key compared with `== 1`)."""
    a, b = _plain(a), _plain(b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if type(a) is type(b):
        return a == b
    return str(a) == str(b)


_SAFE_STRING = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*")


def format_value(value: Any) -> str:
    """The value as the right-hand side of a Hydra override that parses back to exactly `value`.

    Floats are written with repr() (shortest exact form, e.g. 1e-05, inf), bools as true/false, None as
    null, enums as their string value; a string is written bare only when it is a plain identifier-like
    word that parses back to the same string, otherwise in single quotes (Hydra's escaping).
    """
    value = _plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        if _SAFE_STRING.fullmatch(value):
            try:
                back = _parse(f"k={value}").value()
            except HydraException:
                back = None
            if isinstance(back, str) and back == value:
                return value
        return QuotedString(text=value, quote=Quote.single).with_quotes()
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as an override value")


def format_override(key: str, value: Any) -> str:
    """`key=value` in Hydra's override grammar, reproducing `value` exactly (see `format_value`)."""
    return f"{key}={format_value(value)}"


# ----------------------------------------------------------------------------------------------------
# Conditions


_CONDITION = re.compile(
    r"\s*(?P<key>[A-Za-z_][\w\-]*(?:\.[A-Za-z_][\w\-]*)*)"
    r"(?:\s+(?P<word>not\s+in|in)\s+|\s*(?P<sym>==|!=)\s*)"
    r"(?P<rhs>.*?)\s*"
)


@dataclass(frozen=True)
class Condition:
    """`key op values`: the parameter applies when the config value at `key` satisfies it."""

    key: str
    op: str                 # "in", "not in", "==", "!="
    values: tuple           # one value for == and !=
    text: str               # the condition as written
    builtin: bool = False   # from DEFAULT_CONDITIONS, not from search.conditions

    def holds(self, value: Any) -> bool:
        found = any(_equal(value, v) for v in self.values)
        return found if self.op in ("in", "==") else not found


def _scalar_ok(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def parse_condition(param_key: str, text: Any, builtin: bool = False) -> Optional[Condition]:
    """A condition parsed from its text; None for ``always``. Raises SearchError if it is malformed."""

    def bad(reason: str) -> SearchError:
        return SearchError(f"search.conditions.{param_key}", text, VALID_CONDITIONS, reason)

    if not isinstance(text, str):
        raise bad("a condition is a string")
    if text.strip() == "always":
        return None
    m = _CONDITION.fullmatch(text)
    if not m:
        raise bad("not of the form '<key> <op> <value(s)>'")
    key, rhs = m["key"], m["rhs"]
    op = " ".join(m["word"].split()) if m["word"] else m["sym"]
    if not rhs:
        raise bad(f"nothing after {op!r}")
    if op in ("in", "not in") and not (rhs.startswith("[") and rhs.endswith("]")):
        raise bad(f"{op!r} takes a list [a, b, ...]")
    try:  # the values are parsed by Hydra's grammar: YAML-like scalars
        value = _parse(f"k={rhs}").value()
    except HydraException as exc:
        raise bad(f"cannot parse {rhs!r}: {str(exc).splitlines()[0]}") from None
    values = tuple(value) if op in ("in", "not in") else (value,)
    if op in ("==", "!=") and isinstance(value, (list, dict)):
        raise bad(f"{op!r} takes one value; use 'in [...]' for several")
    if not all(_scalar_ok(v) for v in values):
        raise bad("the values must be scalars (strings, numbers, true/false, null)")
    if not values:
        raise bad("an empty list never applies")
    return Condition(key=key, op=op, values=values, text=text.strip(), builtin=builtin)


# ----------------------------------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True)
class Param:
    """One entry of search.params.

    `kind` is "choice", "range", "interval" or "fixed"; `distribution` is None for a fixed parameter,
    whose value is `fixed`; `condition` is None when the parameter always applies.
    """

    key: str
    expression: str
    kind: str
    distribution: Optional[BaseDistribution]
    fixed: Any = None
    condition: Optional[Condition] = None

    @property
    def is_fixed(self) -> bool:
        return self.distribution is None


def _decimal(x: float) -> decimal.Decimal:
    """A number as written (repr gives the shortest decimal that round-trips, e.g. 0.1, 1e-05)."""
    return decimal.Decimal(repr(x))


def _range_distribution(sweep: RangeSweep, bad: Callable[[str], SearchError]) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if not all(_is_number(x) and math.isfinite(x) for x in (start, stop, step)):
        raise bad("range takes finite numbers")
    if step <= 0:
        raise bad(f"the step must be > 0, got {step!r}")
    if stop <= start:
        raise bad(f"range({start!r}, {stop!r}) is empty: the end is excluded, as in Python's range")
    if all(isinstance(x, int) for x in (start, stop, step)):
        last = start + step * ((stop - start - 1) // step)     # the last value below stop
        return IntDistribution(start, last, step=step)
    d_start, d_step = _decimal(start), _decimal(step)
    count = math.ceil((_decimal(stop) - d_start) / d_step)  # values start + i·step < stop, i = 0..count-1
    last = float(d_start + d_step * (count - 1))
    return FloatDistribution(float(start), last, step=float(step))


def _interval_distribution(sweep: IntervalSweep, log: bool,
                           bad: Callable[[str], SearchError]) -> BaseDistribution:
    start, end = sweep.start, sweep.end
    if not (_is_number(start) and _is_number(end)) or not (math.isfinite(start) and math.isfinite(end)):
        raise bad("interval takes finite numbers")
    if start >= end:
        raise bad(f"the start {start!r} must be below the end {end!r}")
    if log and start <= 0:
        raise bad(f"a log scale needs a start > 0, got {start!r}")
    if isinstance(start, int) and isinstance(end, int):   # Hydra gives ints only for int(interval(...))
        return IntDistribution(start, end, log=log)
    return FloatDistribution(float(start), float(end), log=log)


def parse_param(key: str, expression: Any) -> Param:
    """One search.params entry parsed by Hydra's override grammar into a Param (condition not set)."""
    if not isinstance(expression, str):  # a YAML number/bool written without quotes
        expression = format_value(expression)
    expression = expression.strip()

    def bad(reason: str) -> SearchError:
        return SearchError(f"search.params.{key}", expression, VALID_EXPRESSIONS, reason)

    if not expression:
        raise bad("the expression is empty")
    try:
        override = _parse(f"{key}={expression}")
        value = override.value()
    except HydraException as exc:
        raise bad(str(exc).splitlines()[0]) from None
    if (override.type != OverrideType.CHANGE or override.package is not None
            or override.key_or_group != key):
        raise bad(f"{key!r} is not a plain dotted config key")

    if isinstance(value, Glob):
        raise bad("glob(...) selects config-group options; it has no meaning for a sampler")
    if isinstance(value, (ChoiceSweep, RangeSweep)) and value.shuffle:
        raise bad("shuffle(...) has no meaning for a sampler")
    tags = set(getattr(value, "tags", ()) or ())
    if tags - {"log"}:
        raise bad(f"unknown tag(s) {sorted(tags - {'log'})}; the only tag is log, on an interval")
    if tags and not isinstance(value, IntervalSweep):
        raise bad("tag(log, ...) applies to an interval only: Optuna cannot sample choices or a stepped "
                  "range on a log scale")

    if isinstance(value, ChoiceSweep):
        choices = list(value.list)
        if not choices:
            raise bad("an empty choice")
        if not all(_scalar_ok(c) for c in choices):
            raise bad("choices must be scalars (strings, numbers, true/false, null)")
        seen = [(type(c), c) for c in choices]
        if len(set(seen)) != len(seen):
            raise bad("a choice is listed twice")
        return Param(key, expression, "choice", CategoricalDistribution(choices))
    if isinstance(value, RangeSweep):
        return Param(key, expression, "range", _range_distribution(value, bad))
    if isinstance(value, IntervalSweep):
        return Param(key, expression, "interval", _interval_distribution(value, "log" in tags, bad))
    if override.is_sweep_override():
        raise bad(f"unsupported sweep {type(value).__name__}")
    if not _scalar_ok(value):
        raise bad("a fixed value must be a scalar (string, number, true/false, null)")
    return Param(key, expression, "fixed", None, fixed=value)


# ----------------------------------------------------------------------------------------------------
# The space


def _order(params: list[Param]) -> list[Param]:
    """Stable topological order: YAML order, but a parameter a condition reads comes before its readers."""
    by_key = {p.key: p for p in params}
    deps = {p.key: ({p.condition.key} & by_key.keys()) if p.condition else set() for p in params}
    placed: list[Param] = []
    done: set[str] = set()
    while len(placed) < len(params):
        ready = next((p for p in params if p.key not in done and deps[p.key] <= done), None)
        if ready is None:
            cycle = [p.key for p in params if p.key not in done]
            first = cycle[0]
            raise SearchError(f"search.conditions.{first}", by_key[first].condition.text,
                              "conditions whose keys do not (indirectly) depend on each other",
                              "a cycle among the conditions of " + ", ".join(cycle))
        placed.append(ready)
        done.add(ready.key)
    return placed


class SearchSpace:
    """An ordered list of `Param`s; `sample()` draws one trial's values define-by-run."""

    def __init__(self, params: Iterable[Param]):
        self.params: list[Param] = list(params)

    @classmethod
    def from_config(cls, params: Mapping[str, Any], conditions: Mapping[str, Any] | None = None
                    ) -> "SearchSpace":
        """Parse search.params (key → expression) and search.conditions (key → condition)."""
        conditions = dict(conditions or {})
        for key in conditions:
            if key not in params:
                raise SearchError(f"search.conditions.{key}", conditions[key],
                                  "a condition for a key in search.params ("
                                  + (", ".join(params) or "none") + ")",
                                  f"{key} is not a search parameter")
        parsed: list[Param] = []
        for key, expression in params.items():
            param = parse_param(str(key), expression)
            if key in conditions:
                condition = parse_condition(param.key, conditions[key])
            elif key in DEFAULT_CONDITIONS:
                condition = parse_condition(param.key, DEFAULT_CONDITIONS[key], builtin=True)
            else:
                condition = None
            parsed.append(Param(param.key, param.expression, param.kind, param.distribution,
                                param.fixed, condition))
        return cls(_order(parsed))

    # -- sampling ------------------------------------------------------------------------------------

    def sample(self, trial: optuna.trial.Trial, base: Callable[[str], Any]) -> dict[str, Any]:
        """One trial's values: {key: value} for every parameter whose condition holds (fixed ones too).

        `base(key)` gives the base config's value of a key that a condition reads but that was not set by
        this trial (not a parameter, or a parameter whose own condition failed).
        """
        values: dict[str, Any] = {}
        for p in self.params:
            if p.condition is not None and not p.condition.holds(self._lookup(p, values, base)):
                continue
            values[p.key] = p.fixed if p.is_fixed else _suggest(trial, p.key, p.distribution)
        return values

    @staticmethod
    def _lookup(p: Param, values: dict[str, Any], base: Callable[[str], Any]) -> Any:
        key = p.condition.key
        if key in values:
            return values[key]
        try:
            return base(key)
        except Exception as exc:  # an unknown key in the base config
            raise SearchError(f"search.conditions.{p.key}", p.condition.text,
                              "a condition on an existing config key",
                              f"cannot read {key} from the base config: {exc}") from exc

    # -- writing back ----------------------------------------------------------------------------------

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        """Hydra overrides `key=value` reproducing `values` exactly (see `format_value`)."""
        return [format_override(key, value) for key, value in values.items()]

    def grid(self) -> dict[str, list]:
        """The search space for optuna.samplers.GridSampler: choices and stepped ranges enumerated.

        Fixed parameters are not part of the grid (they are not suggested).
        """
        grid: dict[str, list] = {}
        for p in self.params:
            if p.is_fixed:
                continue
            d = p.distribution
            if isinstance(d, CategoricalDistribution):
                grid[p.key] = list(d.choices)
            elif p.kind == "range" and isinstance(d, IntDistribution):
                grid[p.key] = list(range(d.low, d.high + 1, d.step))
            elif p.kind == "range" and isinstance(d, FloatDistribution):
                n = round((_decimal(d.high) - _decimal(d.low)) / _decimal(d.step))
                grid[p.key] = [float(_decimal(d.low) + _decimal(d.step) * i) for i in range(n + 1)]
            else:
                raise SearchError(f"search.params.{p.key}", p.expression,
                                  "choice(...) or range(...)",
                                  "grid needs choice(...) or range(...); an interval cannot be enumerated")
        return grid

    def structured(self) -> dict[str, dict]:
        """key → {"expression", "fixed" (a plain value, not sampled), "condition" (its text or None)}:
        what the study stores (`StudyAttr.SEARCH`) and the report reads."""
        return {p.key: {"expression": p.expression, "fixed": p.is_fixed,
                        "condition": p.condition.text if p.condition else None} for p in self.params}

    def describe(self) -> dict[str, str]:
        """key → "expression [if condition]", for logging."""
        return describe_search(self.structured())

    def __repr__(self) -> str:
        return f"SearchSpace({self.describe()!r})"


def _suggest(trial: optuna.trial.Trial, name: str, d: BaseDistribution) -> Any:
    """Optuna's public suggest_* call for a distribution."""
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, list(d.choices))
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    raise TypeError(f"unsupported distribution {d!r}")


# ----------------------------------------------------------------------------------------------------
# Checking keys and values against the trial schema before any trial runs


def _values_to_check(p: Param) -> list[Any]:
    """Every categorical value, the low and high end of a numeric distribution, or the fixed value."""
    d = p.distribution
    if d is None:
        return [p.fixed]
    if isinstance(d, CategoricalDistribution):
        return list(d.choices)
    return [d.low, d.high]


def _context(space: SearchSpace, p: Param) -> dict[str, Any]:
    """Overrides that make `p`'s condition (and its dependencies' conditions) hold, where one can be named:
    the first value of `in`/`==`, or for `not in`/`!=` the first choice of the key's own parameter that
    satisfies it. So `model.forget_bias=1.0` is checked together with `model.cell=lstm`."""
    by_key = {q.key: q for q in space.params}
    context: dict[str, Any] = {}
    cond, seen = p.condition, {p.key}
    while cond is not None and cond.key not in seen:
        seen.add(cond.key)
        dep = by_key.get(cond.key)
        if cond.op in ("in", "=="):
            context[cond.key] = cond.values[0]
        elif dep is not None:
            candidates = [v for v in _values_to_check(dep) if cond.holds(v)]
            if candidates:
                context[cond.key] = candidates[0]
        cond = dep.condition if dep is not None else None
    return context


def validate_keys(space: SearchSpace, check: Callable[[list[str]], Any]) -> None:
    """Catch an unknown search key or an invalid value before any trial runs.

    `check(overrides)` composes a trial config with the overrides and raises workers.config.ConfigError
    (e.g. `lambda ovs: study.compose.compose_trial(ovs)`). It is called once per parameter value (every
    choice; low and high of a numeric parameter; the fixed value), together with overrides that make the
    parameter's condition hold; an error is re-raised as SearchError naming `search.params.<key>`. The
    values of explicit `in`/`==` conditions are checked too (only errors about the condition's own key
    count there, naming `search.conditions.<key>`).
    """
    for p in space.params:
        context = [format_override(k, v) for k, v in _context(space, p).items()]
        for value in _values_to_check(p):
            override = format_override(p.key, value)
            try:
                check(context + [override])
            except ConfigError as exc:
                tried = " ".join(context + [override])
                raise SearchError(f"search.params.{p.key}", value, exc.valid,
                                  f"checking {tried}: {exc}") from exc
        cond = p.condition
        if cond is None or cond.builtin or cond.op not in ("in", "=="):
            continue
        for value in cond.values:
            override = format_override(cond.key, value)
            try:
                check([override])
            except ConfigError as exc:
                if exc.key == cond.key:
                    raise SearchError(f"search.conditions.{p.key}", cond.text, exc.valid,
                                      f"{override} fails: {exc}") from exc
