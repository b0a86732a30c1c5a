"""Search spaces: `search.params` / `search.conditions` → Optuna distributions, sampled define-by-run.

A search space is an ordered list of parameters, each a config key with an expression in Hydra's own
override sweep grammar and, optionally, a condition under which it is sampled::

    params:
      model.cell: choice(rnn, lstm, gru)            # categorical; values keep their types
      model.hidden_size: range(32, 257, 32)          # 32, 64, …, 256 (257 excluded, as in Hydra)
      train.lr: tag(log, interval(1e-4, 1e-1))       # continuous, log scale, both ends included
      model.activation: choice(tanh, relu)           # sampled only where it applies (see conditions)
      train.steps: 2000                              # a plain value: fixed, set on every trial
    conditions:
      model.init_gain: model.init == scaled          # overrides the built-in condition of the key

The grammar and its mapping to Optuna distributions: `study.search.grammar`. The condition forms, the
built-in conditions and the sampling order: `study.search.conditions`. Pre-flight checks of keys and
values: `study.search.check`.

Sampling uses only Optuna's public define-by-run API (``suggest_categorical``, ``suggest_int``,
``suggest_float``) with the config key as the Optuna parameter name, so ``trial.params`` holds exactly
the sampled keys; parameters whose condition fails are neither suggested nor returned.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from study.records.attrs import describe_search
from study.search.conditions import DEFAULT_CONDITIONS, parse_condition
from study.search.grammar import Param, format_override, parse_param
from study.search.syntax import SearchError, exact_decimal

__all__ = ["SearchSpace"]


def by_conditions(params: list[Param]) -> list[Param]:
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
        return cls(by_conditions(parsed))

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

    def distributions(self) -> dict[str, BaseDistribution]:
        """Every sampled parameter's distribution, conditional ones included: the whole declared space."""
        return {p.key: p.distribution for p in self.params if not p.is_fixed}

    def sampled_all(self, params: dict[str, Any], base: Callable[[str], Any]) -> bool:
        """Whether a trial's stored `params` hold every value `sample` would have drawn for it: False for a
        trial whose driver died between two suggestions (its parameters cannot be queued again as they are:
        a grid or a conditional space needs them whole)."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.condition is not None and not p.condition.holds(self._lookup(p, values, base)):
                continue
            if p.is_fixed:
                values[p.key] = p.fixed
            elif p.key in params:
                values[p.key] = params[p.key]
            else:
                return False
        return True

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
        """Hydra overrides `key=value` reproducing `values` exactly (see `search_grammar.format_value`)."""
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
                n = round((exact_decimal(d.high) - exact_decimal(d.low)) / exact_decimal(d.step))
                grid[p.key] = [float(exact_decimal(d.low) + exact_decimal(d.step) * i) for i in range(n + 1)]
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
