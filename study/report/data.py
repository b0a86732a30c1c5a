"""Reading an Optuna study for its report (study/report/page.py): the objectives, config values of a trial,
fANOVA parameter importances, the phase-diagram records (λ1 of W_rec against the outcome) and, on
Mackey-Glass, each trial's figures beside the linear AR(k) baseline's.

Draws nothing and imports neither matplotlib nor MLflow: the figures are in study/report/figures.py
and study/report/phase_figure.py.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import optuna
from optuna.trial import FrozenTrial, TrialState

from study.records.attrs import StudyAttr, TrialAttr, TrialRecord
from workers.config import LAMBDA1_INITS as _INITS
from workers.values import as_float, dotted, finite_number

LAMBDA1_INITS = tuple(i.value for i in _INITS)   # init schemes whose init_gain is λ1 of W_rec
GATED = ("lstm", "gru")
ACTIVATION_ORDER = ["tanh", "sigmoid", "relu", "linear"]
# fANOVA fits a random forest to the complete trials: on fewer points its ranking is noise (and loading
# the evaluator, scikit-learn included, costs ~1.5 s at every study's end), so a small study gets a note.
IMPORTANCE_MIN_TRIALS = 5


def objective(t: FrozenTrial) -> Optional[float]:
    """The first objective value (may be ±inf), None where the trial has none."""
    return float(t.values[0]) if t.values else None


def objective_names(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get(StudyAttr.OBJECTIVES)
    n = len(study.directions)
    if isinstance(names, list) and len(names) == n:
        return [str(x) for x in names]
    return ["objective"] if n == 1 else [f"objective {i}" for i in range(n)]


def fixed_search_value(study: optuna.Study, key: str) -> Optional[str]:
    """A key the study's search fixes to one value (the structured `StudyAttr.SEARCH`), else None."""
    search = study.user_attrs.get(StudyAttr.SEARCH)
    spec = search.get(key) if isinstance(search, dict) else None
    if isinstance(spec, dict) and spec.get("fixed"):
        return str(spec["expression"]).strip()
    return None


def setting(t: FrozenTrial, key: str, summary: Optional[dict], fixed: Optional[str]) -> Any:
    """A config value of a trial: its sampled param, else its summary's config, else a fixed search value."""
    if key in t.params:
        return t.params[key]
    value = dotted((summary or {}).get("config"), key)
    return value if value is not None else fixed


def importances(study: optuna.Study) -> tuple[Optional[dict[str, float]], str]:
    """fANOVA importances of the first objective, or (None, why not)."""
    usable = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if objective(t) is not None and math.isfinite(objective(t))]
    if len(usable) < IMPORTANCE_MIN_TRIALS:
        return None, (f"needs at least {IMPORTANCE_MIN_TRIALS} complete trials with a finite objective "
                      f"(has {len(usable)})")
    varying = [k for k in {k for t in usable for k in t.params}
               if len({repr(t.params[k]) for t in usable if k in t.params}) > 1]
    if not varying:
        return None, "no parameter varies across the complete trials"
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target=lambda t: t.values[0])
    except Exception as exc:   # the evaluator's own limits (dynamic spaces, degenerate data, ...)
        return None, f"the importance evaluator failed: {type(exc).__name__}: {exc}"
    found = {k: float(v) for k, v in found.items() if v is not None and math.isfinite(float(v))}
    if not found:
        return None, "no parameter is shared by all complete trials"
    return found, ""


def importance_order(ranked: Optional[dict[str, float]], trials: list[FrozenTrial]) -> list[str]:
    """Parameters of the complete trials, most important first (by `ranked`, the importances), then in
    order of first appearance."""
    seen: list[str] = []
    for t in trials:
        if t.state == TrialState.COMPLETE:
            seen += [k for k in t.params if k not in seen]
    first = [k for k, _ in sorted((ranked or {}).items(), key=lambda kv: -kv[1]) if k in seen]
    return first + [k for k in seen if k not in first]


def phase_records(study: optuna.Study, trials: list[FrozenTrial], summaries: dict[int, dict]) -> list[dict]:
    """Finished trials that carry λ1 of W_rec, with their series label, health, loss and ratio."""
    fixed_init = fixed_search_value(study, "model.init")
    fixed_activation = fixed_search_value(study, "model.activation")
    fixed_cell = fixed_search_value(study, "model.cell")
    fixed_length = fixed_search_value(study, "task.seq_len")
    records = []
    for t in trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        summary = summaries.get(t.number)
        init = setting(t, "model.init", summary, fixed_init)
        if "model.init_gain" in t.params:   # sampled: meaningful unless the init is known not to use it
            if init is not None and init not in LAMBDA1_INITS:
                continue
            gain = t.params["model.init_gain"]
        elif init in LAMBDA1_INITS:
            gain = setting(t, "model.init_gain", summary, fixed_search_value(study, "model.init_gain"))
        else:
            continue
        try:
            gain = float(gain)
        except (TypeError, ValueError):
            continue
        if not (math.isfinite(gain) and gain > 0):
            continue
        record = TrialRecord.from_frozen(t)
        cell = record.cell or setting(t, "model.cell", summary, fixed_cell)
        if cell in GATED:
            series = str(cell)
        else:
            series = str(setting(t, "model.activation", summary, fixed_activation) or "?")
        final = record.final or (summary or {}).get("final") or {}
        ratio = record.vanishing_ratio
        if ratio is None and summary and summary.get("probes"):
            ratio = summary["probes"][-1].get("vanishing_ratio")
        rate = record.decay_rate
        if rate is None and summary and summary.get("probes"):
            rate = summary["probes"][-1].get("decay_rate")
        length = record.seq_len or setting(t, "task.seq_len", summary, fixed_length)
        health = record.health or (summary or {}).get("health")
        records.append({"number": t.number, "lambda1": gain, "series": series, "health": health,
                        "pruned": t.state == TrialState.PRUNED, "loss": finite_number(final.get("test_loss")),
                        "baseline": finite_number(final.get("baseline_loss")),
                        "ratio": finite_number(ratio), "rate": finite_number(rate),
                        "T": int(length) if finite_number(as_float(length)) else None})
    return records


# summary.json final keys of a Mackey-Glass trial shown beside the linear AR(k) baseline
# (workers/forecast/ar_baseline.py)
AR_COLUMNS = ("nrmse", "ar_nrmse", "free_run_nrmse", "ar_free_run_nrmse", "ridge")


def ar_baseline_rows(trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """One row per complete trial whose final figures hold the AR baseline (`final.ar_nrmse`): its number,
    cell, AR order and the model's figures beside the AR's (None where absent), by trial number."""
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        final = t.user_attrs.get(TrialAttr.FINAL) or {}
        if t.state != TrialState.COMPLETE or finite_number(final.get("ar_nrmse")) is None:
            continue
        row: dict[str, Any] = {"number": t.number, "cell": t.user_attrs.get(TrialAttr.CELL, "–"),
                               "ar_order": final.get("ar_order")}
        row.update({key: finite_number(final.get(key)) for key in AR_COLUMNS})
        nrmse, ar = row["nrmse"], row["ar_nrmse"]
        row["beats_ar"] = None if nrmse is None else nrmse < ar
        rows.append(row)
    return rows
