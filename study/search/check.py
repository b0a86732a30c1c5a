"""Pre-flight validation of a search space: every search key and value is checked against the trial schema
(by composing a trial config with it) before any trial runs."""
from __future__ import annotations

from typing import Any, Callable

from optuna.distributions import CategoricalDistribution

from study.search.grammar import Param, SearchError, format_override
from study.search.space import SearchSpace
from workers.config import ConfigError

__all__ = ["validate_keys"]


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
    (e.g. `lambda ovs: study.config.compose.compose_trial(ovs)`). It is called once per parameter value (every
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
