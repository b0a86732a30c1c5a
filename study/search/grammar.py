"""The search grammar: one `search.params` expression → a `Param` (an Optuna distribution or a fixed value),
and a value written back as a Hydra override.

An expression is written in **Hydra's own override sweep grammar** and parsed with Hydra's parser
(`OverridesParser.parse_override(f"{key}={expression}")`), so there is no new syntax to learn.

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
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
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

from study.search.conditions import Condition
from study.search.syntax import SearchError, exact_decimal, parse_override, plain, scalar_ok
from workers.values import is_number

__all__ = ["SearchError", "Param", "VALID_EXPRESSIONS", "parse_param", "format_value", "format_override"]

VALID_EXPRESSIONS = ("choice(...), range(a, b[, step]), interval(a, b), int(interval(a, b)), "
                     "tag(log, interval(...)), or a plain value")


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


def _range_distribution(sweep: RangeSweep, bad: Callable[[str], SearchError]) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if not all(is_number(x) and math.isfinite(x) for x in (start, stop, step)):
        raise bad("range takes finite numbers")
    if step <= 0:
        raise bad(f"the step must be > 0, got {step!r}")
    if stop <= start:
        raise bad(f"range({start!r}, {stop!r}) is empty: the end is excluded, as in Python's range")
    if all(isinstance(x, int) for x in (start, stop, step)):
        last = start + step * ((stop - start - 1) // step)     # the last value below stop
        return IntDistribution(start, last, step=step)
    d_start, d_step = exact_decimal(start), exact_decimal(step)
    count = math.ceil((exact_decimal(stop) - d_start) / d_step)  # values start + i·step < stop, i = 0..count-1
    last = float(d_start + d_step * (count - 1))
    return FloatDistribution(float(start), last, step=float(step))


def _interval_distribution(sweep: IntervalSweep, log: bool,
                           bad: Callable[[str], SearchError]) -> BaseDistribution:
    start, end = sweep.start, sweep.end
    if not (is_number(start) and is_number(end)) or not (math.isfinite(start) and math.isfinite(end)):
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
        override = parse_override(f"{key}={expression}")
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
        if not all(scalar_ok(c) for c in choices):
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
    if not scalar_ok(value):
        raise bad("a fixed value must be a scalar (string, number, true/false, null)")
    return Param(key, expression, "fixed", None, fixed=value)


# ----------------------------------------------------------------------------------------------------
# Values written back as overrides


_SAFE_STRING = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*")


def format_value(value: Any) -> str:
    """The value as the right-hand side of a Hydra override that parses back to exactly `value`.

    Floats are written with repr() (shortest exact form, e.g. 1e-05, inf), bools as true/false, None as
    null, enums as their string value; a string is written bare only when it is a plain identifier-like
    word that parses back to the same string, otherwise in single quotes (Hydra's escaping).
    """
    value = plain(value)
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
                back = parse_override(f"k={value}").value()
            except HydraException:
                back = None
            if isinstance(back, str) and back == value:
                return value
        return QuotedString(text=value, quote=Quote.single).with_quotes()
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as an override value")


def format_override(key: str, value: Any) -> str:
    """`key=value` in Hydra's override grammar, reproducing `value` exactly (see `format_value`)."""
    return f"{key}={format_value(value)}"
