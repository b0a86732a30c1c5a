"""Published claims as checked expectations: an experiment's `expect:` rules, evaluated on its trials.

A rule names a subset of trials (`where`), a number of each (`metric`), how the subset's numbers are
summed up (`stat`), a comparison and a value, and where the claim comes from (`source`):

    expect:
      - claim: "an LSTM learns the adding problem at T = 100"
        where: "model.cell == lstm"
        metric: final.baseline_ratio
        stat: max
        op: "<"
        value: 0.5
        source: "Hochreiter & Schmidhuber 1997, §5.4; Arjovsky et al. 2016, Fig. 2"

- `where`: conditions joined by ` and `: `key == v`, `key != v`, `key in [a, b]`, `key < x` (also <=, >,
  >=) on any config key (sampled or fixed); empty = every trial. Values compare as numbers where both
  sides are numbers, else as text.
- `metric`: `final.<key>` of the trial's summary (test_loss, baseline_ratio, accuracy, nrmse,
  free_run_nrmse, …), or `vanishing_ratio` / `decay_rate` of its last probe.
- `stat`: min, max, median or mean over the matching finished trials (complete or pruned) that have the
  number. No such trial: the rule fails ("no trial matched").
Results are plain dicts: rule (in words), claim, source, measured, trials (how many), passed.
Knows nothing of Ray; reads an Optuna study and, for config keys a trial did not sample, its summary.json.
"""
from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from tracking.attrs import TrialAttr
from tracking.trials import counts_towards_total
from tracking.values import as_float, dotted

STATS: dict[str, Callable[[list[float]], float]] = {
    "min": min, "max": max, "median": statistics.median, "mean": statistics.fmean}
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
PROBE_METRICS = ("vanishing_ratio", "decay_rate")
CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|<=|>=|<|>|\bin\b)\s*(.+?)\s*$")


class RuleError(ValueError):
    """A malformed rule: `field` names the rule's key, the message says what is valid."""

    def __init__(self, field: str, value: Any, valid: str):
        self.field, self.value, self.valid = field, value, valid
        super().__init__(f"{field}={value!r} is invalid; valid: {valid}")


@dataclass
class Condition:
    key: str
    op: str
    values: list[str]

    def holds(self, actual: Any) -> bool:
        if actual is None:
            return False
        if self.op == "in":
            return any(_equal(actual, v) for v in self.values)
        if self.op == "==":
            return _equal(actual, self.values[0])
        if self.op == "!=":
            return not _equal(actual, self.values[0])
        a, b = _number(actual), _number(self.values[0])
        return a is not None and b is not None and OPS[self.op](a, b)


def _number(value: Any) -> Optional[float]:
    """A number, or None: text that is not one, and yes/no (`model.attention == false` compares as text)."""
    return None if isinstance(value, bool) else as_float(value)


def _equal(actual: Any, written: str) -> bool:
    a, b = _number(actual), _number(written)
    if a is not None and b is not None:
        return a == b
    text = str(actual).lower() if isinstance(actual, bool) or actual is None else str(actual)
    return text == written


def parse_where(text: str) -> list[Condition]:
    conditions = []
    for part in [p for p in re.split(r"\s+and\s+", text or "") if p.strip()]:
        match = CONDITION.match(part)
        if not match:
            raise RuleError("where", text, "conditions `key == v`, `key != v`, `key in [a, b]`, `key < x` "
                                           "(<=, >, >=) joined by ` and `")
        key, op, raw = match.groups()
        if op == "in":
            if not (raw.startswith("[") and raw.endswith("]")):
                raise RuleError("where", text, f"`{key} in [a, b]`: a bracketed list")
            values = [v.strip().strip("'\"") for v in raw[1:-1].split(",") if v.strip()]
        else:
            values = [raw.strip("'\"")]
            if op in OPS and _number(values[0]) is None:
                raise RuleError("where", text, f"a number after `{key} {op}`")
        conditions.append(Condition(key, op, values))
    return conditions


def check_rule(rule: dict[str, Any]) -> None:
    """Raise RuleError on the first malformed field of a rule."""
    parse_where(rule.get("where") or "")
    metric = str(rule.get("metric", ""))
    if not (metric.startswith("final.") and len(metric) > 6) and metric not in PROBE_METRICS:
        raise RuleError("metric", metric, "final.<key> of the trial summary (final.test_loss, final.nrmse, …), "
                                          "vanishing_ratio or decay_rate")
    if rule.get("stat") not in STATS:
        raise RuleError("stat", rule.get("stat"), "one of " + ", ".join(STATS))
    if rule.get("op") not in OPS:
        raise RuleError("op", rule.get("op"), "one of " + ", ".join(OPS))
    value = _number(rule.get("value"))
    if value is None or not math.isfinite(value):
        raise RuleError("value", rule.get("value"), "a finite number")


def describe(rule: dict[str, Any]) -> str:
    where = f" where {rule['where']}" if rule.get("where") else ""
    return f"{rule['stat']} {rule['metric']} {rule['op']} {float(rule['value']):g}{where}"


class TrialValues:
    """Config values and metrics of finished trials: sampled params first, else the trial's summary.json."""

    def __init__(self, summaries: Optional[dict[int, dict]] = None):
        self._summaries: dict[int, dict] = dict(summaries or {})   # those already read, by trial number

    def summary(self, trial) -> dict:
        if trial.number not in self._summaries:
            path = trial.user_attrs.get(TrialAttr.SUMMARY)
            try:
                self._summaries[trial.number] = json.loads(Path(path).read_text()) if path else {}
            except (OSError, ValueError):
                self._summaries[trial.number] = {}
        return self._summaries[trial.number]

    def config_value(self, trial, key: str) -> Any:
        if key in trial.params:
            return trial.params[key]
        return dotted(self.summary(trial).get("config"), key)

    def metric(self, trial, metric: str) -> Optional[float]:
        if metric in PROBE_METRICS:
            value = trial.user_attrs.get(TrialAttr.VANISHING_RATIO if metric == "vanishing_ratio"
                                         else TrialAttr.DECAY_RATE)
        else:
            value = (trial.user_attrs.get(TrialAttr.FINAL) or {}).get(metric[len("final."):])
        if isinstance(value, bool):   # final.solved: 1 or 0, so `mean` is the fraction solved
            value = float(value)
        number = _number(value)
        return number if number is not None and math.isfinite(number) else None


def evaluate(trials: list, rules: list[dict[str, Any]],
             summaries: Optional[dict[int, dict]] = None) -> list[dict[str, Any]]:
    """Each rule with what was measured on `trials` (an Optuna study's) and whether it held; `summaries`:
    trials' summary.json already read (by number), the others are read when a rule needs them."""
    values = TrialValues(summaries)
    finished = [t for t in trials if counts_towards_total(t) and t.user_attrs.get(TrialAttr.FINAL) is not None]
    results = []
    for rule in rules:
        conditions = parse_where(rule.get("where") or "")
        numbers = []
        for t in finished:
            if all(c.holds(values.config_value(t, c.key)) for c in conditions):
                number = values.metric(t, rule["metric"])
                if number is not None:
                    numbers.append(number)
        measured = STATS[rule["stat"]](numbers) if numbers else None
        passed = measured is not None and OPS[rule["op"]](measured, float(rule["value"]))
        results.append({"rule": describe(rule), "claim": rule.get("claim", ""), "source": rule.get("source", ""),
                        "measured": measured, "trials": len(numbers), "passed": passed,
                        **({} if numbers else {"note": "no trial matched"})})
    return results
