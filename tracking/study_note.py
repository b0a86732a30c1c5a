"""The study's summary where the MLflow UI shows it first: the parent run's description
(`mlflow.note.content`, markdown) and its `best/*` metrics.

The description holds the counts by state and by health (over every trial in the Optuna study, not only
the runs the UI has loaded), the best trial with a link to its run, the search space in words
(`loguniform(0.25, 4)`, `choice(tanh, relu)`), the published expectations when the experiment declares
any, and where to look next (the profile chart, example filters, the report). Links are relative to the
MLflow UI (`#/experiments/<id>/runs/<run id>`), so they work on any host that serves it.
Plain text from an Optuna study and plain dicts; no MLflow import.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from tracking.attrs import StudyAttr, TrialAttr
from tracking.names import metric_of_objective
from tracking.profile_records import METRIC as PROFILE_METRIC
from tracking.report_data import objective_names
from tracking.trials import best_trial, counts_towards_total, state_counts
from tracking.ui_links import run_path
from tracking.values import fmt

NOTE_TAG = "mlflow.note.content"


def _number(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def in_words(d: BaseDistribution) -> str:
    """An Optuna distribution as a reader writes it: loguniform(0.25, 4), choice(tanh, relu), …"""
    if isinstance(d, CategoricalDistribution):
        return "choice(" + ", ".join("null" if c is None else _number(c) for c in d.choices) + ")"
    if isinstance(d, FloatDistribution):
        if d.log:
            return f"loguniform({_number(d.low)}, {_number(d.high)})"
        if d.step is not None:
            return f"uniform({_number(d.low)}, {_number(d.high)}, step {_number(d.step)})"
        return f"uniform({_number(d.low)}, {_number(d.high)})"
    if isinstance(d, IntDistribution):
        if d.log:
            return f"log-integer({d.low}..{d.high})"
        return f"integer({d.low}..{d.high}" + (f", step {d.step})" if d.step != 1 else ")")
    return repr(d)


def search_lines(study: optuna.Study, trials: list) -> list[str]:
    """One markdown line per search key: sampled keys in words (from the trials' distributions), fixed
    keys as `= value`, conditions after `if`."""
    search = study.user_attrs.get(StudyAttr.SEARCH) or {}
    seen: dict[str, BaseDistribution] = {}
    wanted = {k for k, spec in search.items() if not (isinstance(spec, dict) and spec.get("fixed"))}
    for t in trials:              # until every sampled key is seen: not a pass over 10,000 trials
        for key, d in t.distributions.items():
            seen.setdefault(key, d)
        if wanted <= seen.keys():
            break
    lines = []
    for key, spec in search.items():
        spec = spec if isinstance(spec, dict) else {"expression": str(spec)}
        if spec.get("fixed"):
            words = f"= {spec['expression']} (fixed)"
        elif key in seen:
            words = in_words(seen[key])
        else:
            words = str(spec.get("expression"))
        if spec.get("condition"):
            words += f" — if {spec['condition']}"
        lines.append(f"- `{key}`: {words}")
    return lines


def best_metrics(study: optuna.Study, trials: list) -> dict[str, float]:
    """`best/<objective>` per objective and `best/trial` of the best trial by the first objective."""
    best = best_trial(study, trials)
    if best is None or not best.values:
        return {}
    out = {"best/trial": float(best.number)}
    for name, value in zip(objective_names(study), best.values):
        if value is not None and math.isfinite(value):
            out[f"best/{metric_of_objective(name)}"] = float(value)
    return out


def study_note(study: optuna.Study, experiment_id: str, run_ids: dict[int, str],
               run_names: Optional[dict[int, str]] = None,
               expectations: Optional[list[dict[str, Any]]] = None) -> str:
    """The markdown description of the study's parent run. `run_ids` (and `run_names`, where known):
    trial number → its MLflow run."""
    trials = study.get_trials(deepcopy=False)
    names = [metric_of_objective(n) for n in objective_names(study)]
    directions = [d.name.lower() for d in study.directions]
    target = study.user_attrs.get(StudyAttr.N_TRIALS)
    done = [t for t in trials if counts_towards_total(t)]
    lines = [f"## Study `{study.study_name}`", "",
             "**Objective**: " + ", ".join(f"{d} `{n}`" for d, n in zip(directions, names))
             + f" · **finished** {len(done)}" + (f" of {target}" if target is not None else "") + " trials", ""]

    counts = {k: v for k, v in state_counts(trials).items() if v}
    lines.append("**Trials by state**: " + (" · ".join(f"{k.lower()} {v}" for k, v in counts.items()) or "none yet"))
    health: dict[str, int] = {}
    for t in done:
        verdict = t.user_attrs.get(TrialAttr.HEALTH)
        if verdict:
            health[verdict] = health.get(verdict, 0) + 1
    lines.append("**Gradient health** (finished trials): "
                 + (" · ".join(f"{k} {v}" for k, v in sorted(health.items(), key=lambda kv: -kv[1])) or "none yet")
                 + " — also the `study/health/*` metrics of this run (the runs table's group counts count "
                   "only the runs it has loaded)")
    lines.append("")

    best = best_trial(study, trials)
    if best is not None:
        run_id = run_ids.get(best.number)
        label = (run_names or {}).get(best.number) or f"trial {best.number}"
        link = f"[{label}]({run_path(experiment_id, run_id)})" if run_id else label
        scores = ", ".join(f"`{n}` = {fmt(v)}" for n, v in zip(names, best.values or []))
        lines += [f"**Best trial**: {link} — {scores}, health "
                  f"{best.user_attrs.get(TrialAttr.HEALTH, '–')}", ""]

    search = search_lines(study, trials)
    if search:
        lines += ["**Search space**", "", *search, ""]

    if expectations:
        lines += ["**Published results checked**", "", "| | rule | measured | source |", "|---|---|---|---|"]
        for e in expectations:
            mark = {True: "✓", False: "✗"}.get(e.get("passed"), "–")
            note = f" ({e['note']})" if e.get("note") else ""
            lines.append(f"| {mark} | {e.get('rule', '')} | {fmt(e.get('measured'), missing='–')}{note} | "
                         f"{e.get('source', '')} |")
        lines.append("")

    lines += ["**Where to look**", "",
              f"- Chart view: `{PROFILE_METRIC}` overlays every trial's gradient profile "
              "(x = timestep t, y = log10 ‖∂L/∂h_t‖ at the last probe); `grad/vanishing_ratio` per probe.",
              "- Filters (metric names with `/` need backticks): "
              "``metrics.`final/test_loss` < 0.17``, `tags.gradstudy.health = 'vanishing'`, "
              "`params.model.cell = 'lstm'`.",
              "- The study report: Artifacts → `report/report.html` (figures and links inside).", ""]
    return "\n".join(lines)

