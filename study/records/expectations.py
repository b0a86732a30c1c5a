"""Published claims as checked expectations: an experiment's `expect:` rules, evaluated on its trials.

A rule names a subset of trials (`where`), a number of each (`metric`), how the subset's numbers are
summed up (`stat`), a comparison and a value, and where the claim comes from (`source`):

    expect:
      - claim: "an LSTM solves the adding problem at T = 100, on every seed"
        where: "model.cell == lstm"
        metric: final.solved
        stat: min
        op: ">="
        value: 1
        min_trials: 3
        source: "Hochreiter & Schmidhuber 1997, §5.4"

- `where`: conditions joined by ` and `: `key == v`, `key != v`, `key in [a, b]`, `key < x` (also <=, >,
  >=) on any config key (sampled or fixed); empty = every trial. Values compare as numbers where both
  sides are numbers, else as text.
- `metric`: `final.<key>` of the trial's summary (test_loss, baseline_ratio, accuracy, solved (1/0), nrmse,
  free_run_nrmse, ar_nrmse, …), `vanishing_ratio` / `decay_rate` of its last probe, or
  `init.vanishing_ratio` / `init.decay_rate` of its probe at step 0 (the network at initialization, read
  from summary.json: a trained trial checks its mechanism at the start too).
- `stat`: min, max, median or mean over the matching trials, compared with `value` (a number); or `all`:
  every matching trial must hold `metric op value` on its own, where `value` may also be an expression of
  the trial's own numbers — config keys, `final.*`, `vanishing_ratio`, `decay_rate`, + − × / **, and
  log10, ln, sqrt, abs, min, max, gamma(activation) (sup |f′|: 1 for tanh/relu/linear, 1/4 for sigmoid):
  `value: "log10(model.init_gain * gamma(model.activation))"` is Pascanu et al.'s per-step bound. The
  measured figure of an `all` rule is the worst trial's (the one nearest to breaking it, or breaking it).
- `states`: which trial states count: `[complete, pruned]` (the default) or `[complete]`. A matching
  trial of a counted state whose metric is missing or not finite is an **evidence gap**: the rule fails
  and names the trials (a silent gap would judge the claim on the rest). A FAIL trial has no numbers and
  is not counted; `gradstudy status` counts those apart.
- `min_trials` (default 1): fewer matching trials and the rule fails ("3 seeds" means 3 trials).
- `group_by`: config keys; the rule is judged for each group of matching trials apart (one result a
  group, its values in the result's `group`), so "per (activation, λ1)" is one rule.
Results are plain dicts: rule (in words), claim, source, measured, trials (how many counted), passed,
counts (the states counted, in words), note (why it failed, or the worst trial), group (or {}).
Knows nothing of Ray; reads an Optuna study and, for config keys a trial did not sample, its summary.json.
"""
from __future__ import annotations

import ast
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from optuna.trial import TrialState

from study.records.attrs import TrialAttr
from workers.config import GAMMA, Activation
from workers.values import as_float, dotted

STATS: dict[str, Callable[[list[float]], float]] = {
    "min": min, "max": max, "median": statistics.median, "mean": statistics.fmean}
EVERY = "all"
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
PROBE_METRICS = ("vanishing_ratio", "decay_rate")
INIT_METRICS = ("init.vanishing_ratio", "init.decay_rate")   # of the probe at step 0, the untrained net
COUNTED_STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}
DEFAULT_STATES = ["complete", "pruned"]
CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|<=|>=|<|>|\bin\b)\s*(.+?)\s*$")
FUNCTIONS: dict[str, Callable[..., float]] = {
    "log10": math.log10, "ln": math.log, "sqrt": math.sqrt, "abs": abs, "min": min, "max": max,
    "gamma": lambda activation: GAMMA[Activation(str(activation))]}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}


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


# --- the per-trial bound of an `all` rule -------------------------------------------------------------

EXPRESSION_VALID = ("a number, or (stat: all) an expression of the trial's config keys, final.* and probe "
                    "metrics with + - * / ** and " + ", ".join(FUNCTIONS) + ", e.g. "
                    "\"log10(model.init_gain * gamma(model.activation))\"")


def _dotted_name(node: ast.AST) -> Optional[str]:
    """`model.init_gain` is parsed as attribute access: the dotted key it spells, or None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted_name(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def parse_bound(text: str) -> ast.Expression:
    """The expression tree of a bound, checked to hold only what `bound_value` evaluates."""
    try:
        tree = ast.parse(str(text).strip(), mode="eval")
    except SyntaxError:
        raise RuleError("value", text, EXPRESSION_VALID) from None

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            check(node.left), check(node.right)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            check(node.operand)
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS \
                and not node.keywords:
            for arg in node.args:
                check(arg)
            return
        name = _dotted_name(node)
        if name is not None and ("." in name or name in PROBE_METRICS):
            return
        raise RuleError("value", text, EXPRESSION_VALID)

    check(tree.body)
    return tree


def bound_value(tree: ast.Expression, lookup: Callable[[str], Any]) -> Optional[float]:
    """The bound for one trial; `lookup(key)` gives its config values and metrics. None where a key it
    needs is missing or the arithmetic has no finite answer (log10 of 0, …)."""

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp):
            operand = value(node.operand)
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.Call):
            return FUNCTIONS[node.func.id](*[value(a) for a in node.args])
        found = lookup(_dotted_name(node))
        if found is None:
            raise LookupError(_dotted_name(node))
        number = _number(found)
        return found if number is None else number   # text (an activation) stays text, for gamma()

    try:
        result = _number(value(tree.body))
    except (LookupError, ValueError, TypeError, ZeroDivisionError, OverflowError):
        return None
    return result if result is not None and math.isfinite(result) else None


def _numeric_value(rule: dict[str, Any]) -> Optional[float]:
    value = _number(rule.get("value"))
    return value if value is not None and math.isfinite(value) else None


# --- checking and describing rules --------------------------------------------------------------------

def check_rule(rule: dict[str, Any]) -> None:
    """Raise RuleError on the first malformed field of a rule."""
    parse_where(rule.get("where") or "")
    metric = str(rule.get("metric", ""))
    if not (metric.startswith("final.") and len(metric) > 6) and metric not in PROBE_METRICS + INIT_METRICS:
        raise RuleError("metric", metric, "final.<key> of the trial summary (final.test_loss, final.nrmse, …), "
                                          "vanishing_ratio, decay_rate, init.vanishing_ratio or init.decay_rate")
    stat = rule.get("stat")
    if stat not in STATS and stat != EVERY:
        raise RuleError("stat", stat, "one of " + ", ".join([*STATS, EVERY]))
    if rule.get("op") not in OPS:
        raise RuleError("op", rule.get("op"), "one of " + ", ".join(OPS))
    if _numeric_value(rule) is None:
        if stat != EVERY or isinstance(rule.get("value"), (int, float)) or rule.get("value") is None:
            raise RuleError("value", rule.get("value"), "a finite number" + (
                "" if stat != EVERY else "; with stat: all also " + EXPRESSION_VALID.split(", or ", 1)[1]))
        parse_bound(rule["value"])
    states = DEFAULT_STATES if rule.get("states") is None else rule["states"]
    if not isinstance(states, (list, tuple)) or not states or any(s not in COUNTED_STATES for s in states):
        raise RuleError("states", rule.get("states"), "a list of " + ", ".join(COUNTED_STATES))
    min_trials = rule.get("min_trials", 1)
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 1:
        raise RuleError("min_trials", min_trials, "an integer ≥ 1")
    group_by = rule.get("group_by") or []
    if not isinstance(group_by, (list, tuple)) or any(not re.fullmatch(r"[A-Za-z_][\w.]*", str(k)) for k in group_by):
        raise RuleError("group_by", group_by, "a list of config keys, e.g. [model.activation, model.init_gain]")


def describe(rule: dict[str, Any]) -> str:
    where = f" where {rule['where']}" if rule.get("where") else ""
    number = _numeric_value(rule)
    value = f"{number:g}" if number is not None else str(rule["value"])
    if rule["stat"] == EVERY:
        return f"every {rule['metric']} {rule['op']} {value}{where}"
    return f"{rule['stat']} {rule['metric']} {rule['op']} {value}{where}"


def counted_states(rule: dict[str, Any]) -> list[str]:
    return list(rule.get("states") or DEFAULT_STATES)


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
        elif metric in INIT_METRICS:
            first = (self.summary(trial).get("probes") or [{}])[0]
            value = first.get(metric[len("init."):]) if first.get("step") == 0 else None
        else:
            value = (trial.user_attrs.get(TrialAttr.FINAL) or {}).get(metric[len("final."):])
        if isinstance(value, bool):   # final.solved: 1 or 0, so `mean` is the fraction solved
            value = float(value)
        number = _number(value)
        return number if number is not None and math.isfinite(number) else None

    def lookup(self, trial, key: str) -> Any:
        """A name in a bound: a metric (final.*, vanishing_ratio, decay_rate), else a config value."""
        if key.startswith("final.") or key in PROBE_METRICS + INIT_METRICS:
            return self.metric(trial, key)
        return self.config_value(trial, key)


def _trial_list(numbers: list[int], limit: int = 8) -> str:
    shown = ", ".join(f"#{n}" for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def _judge(rule: dict[str, Any], members: list, values: TrialValues) -> dict[str, Any]:
    """One rule on one group of matching trials (of the counted states)."""
    metric, op, min_trials = rule["metric"], OPS[rule["op"]], int(rule.get("min_trials", 1))
    fixed = _numeric_value(rule)
    tree = None if fixed is not None else parse_bound(rule["value"])
    measured, worst, gaps, breaking, scored = None, None, [], [], []
    for t in members:
        number = values.metric(t, metric)
        bound = fixed if tree is None else bound_value(tree, lambda key, t=t: values.lookup(t, key))
        if number is None or bound is None:
            gaps.append(t.number)
            continue
        scored.append((t.number, number, bound))
    if rule["stat"] == EVERY:
        for n, number, bound in scored:
            if not op(number, bound):
                breaking.append(n)
        if scored:   # the worst trial: the largest margin against the rule (a breaking one first)
            sign = 1.0 if rule["op"] in ("<", "<=") else -1.0
            worst = max(scored, key=lambda s: (sign * (s[1] - s[2]), -s[0]))
            measured = worst[1]
    elif scored:
        measured = STATS[rule["stat"]]([number for _, number, _ in scored])
    notes = []
    if not members:
        notes.append("no trial matched")
    elif len(members) < min_trials:
        notes.append(f"{len(members)} trial(s) matched, {min_trials} needed")
    if gaps:
        what = metric if tree is None else f"{metric} or its bound"
        notes.append(f"no finite {what} in {_trial_list(gaps)}")
    if breaking:
        notes.append(f"broken by {_trial_list(breaking)}")
    if worst is not None:
        notes.append(f"worst #{worst[0]}, bound {worst[2]:.4g}")
    passed = (bool(members) and len(members) >= min_trials and not gaps and measured is not None
              and (not breaking if rule["stat"] == EVERY else op(measured, fixed)))
    return {"measured": measured, "trials": len(members), "passed": passed, "gaps": gaps, "breaking": breaking,
            "note": "; ".join(notes)}


def _order(value: Any) -> tuple:
    """Groups in a stable order: numbers by value, then text."""
    number = _number(value)
    return (0, number, "") if number is not None else (1, 0.0, str(value))


def evaluate(trials: list, rules: list[dict[str, Any]],
             summaries: Optional[dict[int, dict]] = None) -> list[dict[str, Any]]:
    """Each rule with what was measured on `trials` (an Optuna study's) and whether it held; `summaries`:
    trials' summary.json already read (by number), the others are read when a rule needs them. A rule
    with `group_by` gives one result per group, ordered by the groups' values."""
    values = TrialValues(summaries)
    results = []
    for rule in rules:
        states = counted_states(rule)
        wanted = {COUNTED_STATES[s] for s in states}
        conditions = parse_where(rule.get("where") or "")
        members = [t for t in trials if t.state in wanted
                   and all(c.holds(values.config_value(t, c.key)) for c in conditions)]
        keys = list(rule.get("group_by") or [])
        groups: dict[tuple, list] = {}
        for t in members:
            groups.setdefault(tuple(values.config_value(t, k) for k in keys), []).append(t)
        if not groups:
            groups[tuple(None for _ in keys)] = []
        for group_values, group in sorted(groups.items(), key=lambda item: [_order(v) for v in item[0]]):
            group_of = dict(zip(keys, group_values))
            judged = _judge(rule, group, values)
            label = describe(rule) + (" [" + ", ".join(f"{k}={v}" for k, v in group_of.items()) + "]" if keys else "")
            results.append({"rule": label, "claim": rule.get("claim", ""), "source": rule.get("source", ""),
                            "counts": " and ".join(states), "group": group_of, **judged})
    return results
