"""The report of one study: PNG figures and a `report.html` that holds them, in one folder.

The page embeds its figures (data URIs): MLflow's artifact viewer shows an HTML artifact as a sandboxed
blob: page, where relative paths break, and the same file opened from disk still works. Trial numbers
link to their MLflow runs (`RunLinks`; a small script points them at the MLflow server that shows the page).
The report reads
the Optuna study (trial states, params, values and the user attrs the study driver sets:
`gradstudy.health`, `gradstudy.cell`, `gradstudy.vanishing_ratio`, `gradstudy.final`,
`gradstudy.status`, `gradstudy.requeued`) and, optionally, the trials' `summary.json` dicts by number.

Contents:
- counts by state: COMPLETE, PRUNED, FAIL (lost trials that were queued again, tagged
  `gradstudy.requeued`, are counted apart as REQUEUED), RUNNING, WAITING;
- with a nightly comparison, the comparison with the previous night;
- the best COMPLETE trial per cell type (by the first objective; ±inf, a diverged run, loses), its verdict
  beside the span it judged (`gradstudy.span`, the summary's `health_span`); in a study that mixes
  sequence lengths (more than one `task.seq_len`), by |decay rate| instead, with the figures coloured by
  the decay rate, the one gradient figure that does not depend on T (study/report/length_mix.py), and the
  page says so;
- on Mackey-Glass, each complete trial's one-step and free-running NRMSE beside the linear AR(k)
  baseline's (`final.ar_nrmse`, `final.ar_free_run_nrmse`; workers/forecast/ar_baseline.py), with an ESN's λ;
- the health mix over finished trials (COMPLETE, PRUNED, and FAIL not requeued);
- the optimization history and fANOVA parameter importances of the first objective (a note instead of
  the figure where they cannot be computed);
- the phase diagram: when the trials carry λ1 of W_rec (`model.init_gain` with init scaled, orthogonal
  or identity, from the params, the summaries' config or a fixed search value), final test loss, the
  last probe's vanishing ratio and its decay rate (with Pascanu et al.'s per-step bound log10(λ1·γ))
  against λ1, one row per activation, coloured by health, a marker per T; otherwise the two
  most important parameters against each other, coloured by the objective;
- with summaries, the gradient profile of each cell's best trial.

Here the data is gathered and the figures drawn (study readers: study/report/data.py; figures:
study/report/figures.py, study/report/phase_figure.py, tracking/figures/trial_plots.py); the page is the Jinja2
template study/report/templates/report.html.j2, rendered with plain values and autoescape.
Knows nothing of Ray or the study driver: it gets an Optuna study and plain dicts.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import optuna

from study.records import expectations
from study.records.attrs import StudyAttr, TrialAttr
from study.records.trials import best_per_cell, state_counts
from study.report import data as report_data
from study.report import length_mix
from study.report.figures import health_mix_figure, history_figure, importance_figure, param_figure
from study.report.phase_figure import phase_figure
from tracking.figures import trial_plots as plots
from tracking.ui.links import run_path
from workers.values import fmt


@dataclass
class RunLinks:
    """Where the trials' MLflow runs are: `ui_base` (the MLflow UI's address, no trailing slash; inside
    MLflow the page replaces it with the server it is shown by), the experiment, trial number → run id."""
    ui_base: str
    experiment_id: str
    run_ids: dict[int, str] = field(default_factory=dict)

    def paths(self) -> dict[int, str]:
        return {n: run_path(self.experiment_id, r) for n, r in self.run_ids.items()}


FILES = {
    "health": "health_mix.png",
    "history": "optimization_history.png",
    "importances": "param_importances.png",
    "phase": "phase_diagram.png",
}


def _fmt(value: Any) -> str:
    return fmt(value, missing="–")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "_"


def _template():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("study.report", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("report.html.j2")


def _comparison(c: dict[str, Any]) -> dict[str, Any]:
    """The nightly comparison with the previous night (study/cli/nightly.py builds the dict), as table cells."""
    health = c.get("health") or {}
    return {"previous": c.get("previous"), "regressed": bool(c.get("regressed")),
            "regressions": list(c.get("regressions") or []),
            "cells": [{"cell": cell, "previous": _fmt(e.get("previous")), "current": _fmt(e.get("current")),
                       "regressed": bool(e.get("regressed"))} for cell, e in (c.get("cells") or {}).items()],
            "changes": [{"key": key, "previous": _fmt((c.get(key) or {}).get("previous")),
                         "current": _fmt((c.get(key) or {}).get("current"))}
                        for key in ("failures", "diverged_fraction")],
            "health_previous": str(health.get("previous")), "health_current": str(health.get("current"))}


def _span(t: optuna.trial.FrozenTrial, summary: Optional[dict]) -> Optional[int]:
    """The steps over which the trial's verdict judged its gradient (`gradstudy.span`, else the summary's)."""
    span = t.user_attrs.get(TrialAttr.SPAN)
    return span if span is not None else (summary or {}).get("health_span")


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def write_study_report(study: optuna.Study, folder: Path, summaries: Optional[dict[int, dict]] = None,
                       comparison: Optional[dict[str, Any]] = None, links: Optional[RunLinks] = None,
                       checked: Optional[list[dict[str, Any]]] = None) -> Path:
    """Write the study's figures and `report.html` into `folder`; return the HTML's path. The page holds
    its figures (data URIs), so it reads the same from disk and inside MLflow's artifact viewer; with
    `links`, trial numbers link to their MLflow runs; `checked`: the expectations already evaluated."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*(folder / f for f in FILES.values()), *folder.glob("profile_*.png")]:
        old.unlink(missing_ok=True)   # figures of an earlier report that this one may not redraw
    summaries = {int(k): v for k, v in (summaries or {}).items() if isinstance(v, dict)}
    trials = study.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in study.directions]
    names = report_data.objective_names(study)
    name0 = names[0]
    objectives = [f"{d} {n}" for d, n in zip(directions, names)]

    meta: list[tuple[str, Any]] = [
        ("study", study.study_name), ("directions", ", ".join(directions)), ("objectives", ", ".join(objectives)),
        ("generated", datetime.now(timezone.utc).isoformat(timespec="seconds") + " (UTC)")]
    if study.user_attrs.get(StudyAttr.N_TRIALS) is not None:
        meta.insert(2, ("target trials", study.user_attrs[StudyAttr.N_TRIALS]))

    mixed = length_mix.mixes_lengths(trials, summaries)   # objective and verdicts depend on T: the decay rate
    untrained = length_mix.untrained(trials, summaries)   # the objective is an untrained net's: the decay rate
    by_rate = mixed or untrained          # length_mix.ranks_by_rate, from the two already read
    best = length_mix.best_per_cell(trials, summaries) if by_rate else best_per_cell(study, trials)
    best_rows = [{"cell": cell, "number": t.number,
                  "scores": [_fmt(v) for v in t.values or []] + [None] * (len(directions) - len(t.values or [])),
                  "health": t.user_attrs.get(TrialAttr.HEALTH, "–"), "span": _fmt(_span(t, summaries.get(t.number))),
                  "rate": _fmt(length_mix.decay_rate(t, summaries.get(t.number))),
                  "params": ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())}
                 for cell, t in best.items()]

    figures: dict[str, Optional[str]] = dict.fromkeys(FILES)
    if health_mix_figure(trials, folder / FILES["health"]):
        figures["health"] = FILES["health"]
    rates = {t.number: length_mix.decay_rate(t, summaries.get(t.number)) for t in trials} if mixed else None
    if history_figure(study, trials, name0, folder / FILES["history"], rates):
        figures["history"] = FILES["history"]
    importances, why = report_data.importances(study)
    if importances:
        importance_figure(importances, name0, folder / FILES["importances"])
        figures["importances"] = FILES["importances"]
    records = report_data.phase_records(study, trials, summaries)
    phase_keys: Optional[list[str]] = None   # None: the λ1 phase diagram; else the parameters drawn instead
    if records:
        phase_figure(study, records, folder / FILES["phase"], by_rate=mixed, untrained=untrained)
        figures["phase"] = FILES["phase"]
    else:
        phase_keys = report_data.importance_order(importances, trials)[:2]
        if phase_keys and param_figure(study, trials, phase_keys, name0, folder / FILES["phase"]):
            figures["phase"] = FILES["phase"]

    profiles = []   # gradient profiles of the best trials
    for cell, t in best.items():
        if t.number in summaries:
            file = f"profile_{_safe_name(cell)}_{t.number:05d}.png"
            plots.gradient_profile(summaries[t.number], folder / file)
            profiles.append({"file": file, "cell": cell, "number": t.number})

    drawn = [f for f in figures.values() if f] + [p["file"] for p in profiles]
    runs = links.paths() if links else {}
    if checked is None:
        checked = expectations.evaluate(trials, study.user_attrs.get(StudyAttr.EXPECT) or [], summaries)
    esn = any(t.user_attrs.get(TrialAttr.CELL) == "esn" for t in trials)
    ar_rows = [{k: (_fmt(v) if k in report_data.AR_COLUMNS else v) for k, v in row.items()}
               for row in report_data.ar_baseline_rows(trials)]
    page = _template().render(ar_rows=ar_rows,
        expectations=[dict(r, measured=_fmt(r["measured"]), note=r.get("note", "")) for r in checked], esn=esn,
        images={f: _data_uri(folder / f) for f in drawn}, runs=runs, ui_base=links.ui_base if links else "",
        name=study.study_name, meta=meta, counts=state_counts(trials),
        comparison=_comparison(comparison) if comparison else None,
        multi=len(study.directions) > 1, objective=name0, objectives=objectives, best=best_rows,
        figures=figures, no_importances=why,
        importances=[(k, f"{v:.3f}") for k, v in sorted((importances or {}).items(), key=lambda kv: -kv[1])],
        phase_keys=phase_keys, profiles=profiles, mixed=mixed, untrained=untrained, by_rate=by_rate,
        rank_note=length_mix.RANK_NOTE,
        spans=sorted({_span(t, summaries.get(t.number)) for t in trials if t.state.is_finished()} - {None}))
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
