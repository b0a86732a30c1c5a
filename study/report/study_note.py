"""The study's summary where the MLflow UI shows it first: the parent run's description
(`mlflow.note.content`, markdown) and its `best/*` metrics.

MLflow 3.17 shows a description's first three lines and hides the rest behind "Show more", so those
three say what a reader came for (HEAD):
  1. the counts (finished of target, by state) and a link to the study report;
  2. the best trial with a link to its run (by the first objective; in a study measured at initialization
     or mixing sequence lengths, the flattest gradient, as the report ranks them: study/report/length_mix.py);
  3. the published claims ✓/✗ where the experiment declares any, else the health mix.
Then: the health mix with the run colours' legend (emoji squares of about the runs' hues; by T where the
study colours its runs by T: tracking/ui/run_look.py), the search space in words (`loguniform(0.25, 4)`,
`choice(tanh, relu)`), the claims in full, and where to look next. Counts are over every trial in the
Optuna study, not only the runs the UI has loaded. Links are relative to the MLflow UI
(`#/experiments/<id>/runs/<run id>`), so they work on any host that serves it.
Plain text from an Optuna study and plain dicts; no MLflow import.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from study.records.attrs import StudyAttr, TrialAttr
from study.records.trials import best_trial, counts_towards_total, health_mix, state_counts
from study.report import length_mix
from study.report.data import objective_names
from tracking.figures.colours import HEALTH_SQUARES, OTHER_SQUARE, health_legend
from tracking.figures.profile_records import METRIC as PROFILE_METRIC
from tracking.runs.names import metric_of_objective
from tracking.ui.links import run_path, runs_charts_path
from tracking.ui.run_look import colours_by_length, length_legend, sampled_lengths
from workers.values import fmt

REPORT = "report/report.html"     # the report's path among the parent run's artifacts



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


def ranked_best(study: optuna.Study, trials: list, summaries: Optional[dict[int, dict]] = None):
    """(the best trial, how it was ranked): by the first objective, or by |decay rate| in a study measured
    at initialization or mixing sequence lengths (as the report ranks them)."""
    if length_mix.ranks_by_rate(trials, summaries):
        return length_mix.flattest(trials, summaries), "the flattest gradient, |decay rate|"
    return best_trial(study, trials), ""


def _extremes(trials: list, best, summaries: Optional[dict[int, dict]]) -> list[tuple[Any, str]]:
    """(trial, label): the best trial, the steepest vanishing and the steepest exploding per step (by the
    decay rate; each only once)."""
    rated = [(t, length_mix.decay_rate(t, (summaries or {}).get(t.number)))
             for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    rated = [(t, r) for t, r in rated if r is not None]
    out: list[tuple[Any, str]] = [(best, f"the best trial ({best.number})")] if best is not None else []
    vanishing = [tr for tr in rated if tr[1] < 0]
    exploding = [tr for tr in rated if tr[1] > 0]
    picks = [(min(vanishing, key=lambda tr: tr[1]), "the steepest vanishing")] if vanishing else []
    picks += [(max(exploding, key=lambda tr: tr[1]), "the steepest exploding")] if exploding else []
    for (t, _), label in picks:
        if all(t.number != o.number for o, _ in out):
            out.append((t, f"{label} ({t.number})"))
    return out


def _square(verdict: str) -> str:
    return HEALTH_SQUARES.get(verdict, OTHER_SQUARE)


def study_note(study: optuna.Study, experiment_id: str, run_ids: dict[int, str],
               run_names: Optional[dict[int, str]] = None,
               expectations: Optional[list[dict[str, Any]]] = None, parent_id: Optional[str] = None,
               summaries: Optional[dict[int, dict]] = None) -> str:
    """The markdown description of the study's parent run. `run_ids` (and `run_names`, where known):
    trial number → its MLflow run; `parent_id`: the parent run (the report's link)."""
    trials = study.get_trials(deepcopy=False)
    names = [metric_of_objective(n) for n in objective_names(study)]
    directions = [d.name.lower() for d in study.directions]
    target = study.user_attrs.get(StudyAttr.N_TRIALS)
    done = [t for t in trials if counts_towards_total(t)]
    counts = {k: v for k, v in state_counts(trials).items() if v}
    health = health_mix(done)
    mix = " · ".join(f"{_square(k)} {k} {v}" for k, v in health.items()) or "none yet"

    # --- the three lines MLflow shows before "Show more" -------------------------------------------------
    report = f" · **[open the study report]({run_path(experiment_id, parent_id, 'artifacts/' + REPORT)})**" \
        if parent_id else ""
    states = " · ".join(f"{k.lower()} {v}" for k, v in counts.items()) or "none yet"
    head = [f"**{len(done)}" + (f" of {target}" if target is not None else "") + f" trials** finished ({states})"
            + report]
    best, ranking = ranked_best(study, trials, summaries)
    if best is not None:
        run_id = run_ids.get(best.number)
        label = (run_names or {}).get(best.number) or f"trial {best.number}"
        link = f"[{label}]({run_path(experiment_id, run_id)})" if run_id else label
        if ranking:
            rate = length_mix.decay_rate(best, (summaries or {}).get(best.number))
            scores = f"decay rate {fmt(rate, missing='–')} decades/step"
        else:
            scores = ", ".join(f"`{n}` = {fmt(v)}" for n, v in zip(names, best.values or []))
        verdict = best.user_attrs.get(TrialAttr.HEALTH, "–")
        head.append(f"**Best trial**{f' ({ranking})' if ranking else ''}: {link} — {scores}, "
                    f"{_square(verdict)} {verdict}")
    if expectations:
        marks = [{True: "✓", False: "✗"}.get(e.get("passed"), "–") for e in expectations]
        failing = "; ".join(e.get("rule", "") for m, e in zip(marks, expectations) if m != "✓")
        head.append("**Published claims**: " + " · ".join(f"{m} {marks.count(m)}" for m in ("✓", "✗", "–")
                                                          if marks.count(m))
                    + (f" — not holding: {failing[:140]}" if failing else " — every claim holds"))
    lengths = sampled_lengths(trials)       # the health mix: the third line where no claim is declared
    colours = (f"runs coloured by T: {length_legend(lengths)} (health: the `gradstudy.health` column)"
               if colours_by_length(lengths) else f"run colours: {health_legend()}")
    head.append(f"**Gradient health**: {mix} — {colours}")
    lines = ["  \n".join(head), ""]

    # --- the rest -----------------------------------------------------------------------------------------
    lines += [f"## Study `{study.study_name}`", "",
              "**Objective**: " + ", ".join(f"{d} `{n}`" for d, n in zip(directions, names))
              + " · health counts also as this run's `study/health/*` metrics", ""]

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

    extremes = _extremes(trials, best, summaries)
    ids = [run_ids[t.number] for t, _ in extremes if t.number in run_ids]
    compare = (f"- [{' beside '.join(label for _, label in extremes)}]({runs_charts_path(experiment_id, ids)}): "
               "their profiles side by side (or tick runs in the runs table, then Compare)."
               if len(ids) > 1 else "")
    lines += ["**Where to look**", "", *([compare] if compare else []),
              f"- Chart view: `{PROFILE_METRIC}` overlays every trial's gradient profile at its last probe "
              "(x = k, the steps back from the loss, so every T lines up at k = 0; y = log10 ‖∂L_T/∂h_(T−k)‖; "
              "the slope is `grad/decay_rate`, decades per step).",
              "- Filters (metric names with `/` need backticks): "
              "``metrics.`final/test_loss` < 0.17``, `tags.gradstudy.health = 'vanishing'`, "
              "`params.model.cell = 'lstm'`.",
              f"- The study report: Artifacts → `{REPORT}` (figures and links inside).", ""]
    return "\n".join(lines)

