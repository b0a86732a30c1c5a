"""The report of one study: PNG figures and a `report.html` that links them, in one folder.

Links are relative, so the folder can be logged as is as an MLflow artifact directory. The report reads
the Optuna study (trial states, params, values and the user attrs the study driver sets:
`gradstudy.health`, `gradstudy.cell`, `gradstudy.vanishing_ratio`, `gradstudy.final`,
`gradstudy.status`, `gradstudy.requeued`) and, optionally, the trials' `summary.json` dicts by number.

Contents:
- counts by state: COMPLETE, PRUNED, FAIL (lost trials that were queued again, tagged
  `gradstudy.requeued`, are counted apart as REQUEUED), RUNNING, WAITING;
- the best COMPLETE trial per cell type (by the first objective; ±inf, a diverged run, loses);
- the health mix over finished trials (COMPLETE, PRUNED, and FAIL not requeued);
- the optimization history and fANOVA parameter importances of the first objective (a note instead of
  the figure where they cannot be computed);
- the phase diagram: when the trials carry λ1 of W_rec (`model.init_gain` with init scaled, orthogonal
  or identity, from the params, the summaries' config or a fixed search value), final test loss, the
  last probe's vanishing ratio and its decay rate (with Pascanu et al.'s per-step bound log10(λ1·γ))
  against λ1, one row per activation, coloured by health, a marker per T; otherwise the two
  most important parameters against each other, coloured by the objective;
- with summaries, the gradient profile of each cell's best trial.

Knows nothing of Ray or the study driver: it gets an Optuna study and plain dicts.
"""
from __future__ import annotations

import html
import math
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np
import optuna
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tracking import plots
from tracking.attrs import StudyAttr, TrialAttr, TrialRecord
from tracking.values import as_float, dotted, finite_number, fmt
from workers import config
from tracking.trials import best_per_cell, counts_towards_total as _finished, state_counts
from tracking.plots import HEALTH_COLOURS, HEALTH_ORDER, LAMBDA1_INITS, health_colour, new_figure, save_figure

GATED = ("lstm", "gru")


def _fmt(value: Any) -> str:
    return fmt(value, missing="–")
ACTIVATION_ORDER = ["tanh", "sigmoid", "relu", "linear"]
GAMMA = {a.value: g for a, g in config.GAMMA.items()}   # bound on |f'| (Pascanu et al. 2013)

FILES = {
    "health": "health_mix.png",
    "history": "optimization_history.png",
    "importances": "param_importances.png",
    "phase": "phase_diagram.png",
}


# --- reading the study ----------------------------------------------------------------------------------
def _objective(t: FrozenTrial) -> Optional[float]:
    """The first objective value (may be ±inf), None where the trial has none."""
    return float(t.values[0]) if t.values else None


def _objective_names(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get(StudyAttr.OBJECTIVES)
    n = len(study.directions)
    if isinstance(names, list) and len(names) == n:
        return [str(x) for x in names]
    return ["objective"] if n == 1 else [f"objective {i}" for i in range(n)]


def _fixed_search_value(study: optuna.Study, key: str) -> Optional[str]:
    """A key the study's search fixes to one value (the structured `StudyAttr.SEARCH`), else None."""
    search = study.user_attrs.get(StudyAttr.SEARCH)
    spec = search.get(key) if isinstance(search, dict) else None
    if isinstance(spec, dict) and spec.get("fixed"):
        return str(spec["expression"]).strip()
    return None


def _setting(t: FrozenTrial, key: str, summary: Optional[dict], fixed: Optional[str]) -> Any:
    """A config value of a trial: its sampled param, else its summary's config, else a fixed search value."""
    if key in t.params:
        return t.params[key]
    value = dotted((summary or {}).get("config"), key)
    return value if value is not None else fixed


# --- figures --------------------------------------------------------------------------------------------
def _health_mix(trials: list[FrozenTrial], path: Path) -> Optional[Path]:
    done = [t for t in trials if _finished(t)]
    if not done:
        return None
    states = ["COMPLETE", "PRUNED", "FAIL"]
    table: dict[str, Counter] = {}
    for t in done:
        verdict = t.user_attrs.get(TrialAttr.HEALTH) or ("failed" if t.state == TrialState.FAIL else "no verdict")
        table.setdefault(str(verdict), Counter())[t.state.name] += 1
    verdicts = [v for v in HEALTH_ORDER if v in table] + sorted(v for v in table if v not in HEALTH_ORDER)
    fig, ax = new_figure((6.5, 3.8))
    x = np.arange(len(verdicts))
    bottom = np.zeros(len(verdicts))
    hatches = {"COMPLETE": "", "PRUNED": "//", "FAIL": "xx"}
    handles = []
    for state in states:
        heights = np.array([table[v][state] for v in verdicts], dtype=float)
        if not heights.any():
            continue
        ax.bar(x, heights, bottom=bottom, color=[health_colour(v) for v in verdicts], edgecolor="black",
               linewidth=0.6, hatch=hatches[state])
        handles.append(Patch(facecolor="white", edgecolor="black", hatch=hatches[state], label=state.lower()))
        bottom += heights
    for xi, total in zip(x, bottom):
        ax.text(xi, total, f"{int(total)}", ha="center", va="bottom")
    ax.set_xticks(x, verdicts)
    ax.set_ylabel("finished trials")
    ax.set_xlabel("health verdict")
    ax.set_ylim(0, max(bottom) * 1.15 + 0.5)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"Health mix ({len(done)} finished trials)")
    ax.legend(handles=handles, title="trial state", fontsize=8)
    return save_figure(fig, path)


def _history(study: optuna.Study, trials: list[FrozenTrial], name: str, path: Path) -> Optional[Path]:
    done = [t for t in trials if t.state == TrialState.COMPLETE and _objective(t) is not None]
    if not done:
        return None
    minimize = study.directions[0] == StudyDirection.MINIMIZE
    finite = [(t.number, _objective(t), t) for t in done if math.isfinite(_objective(t))]
    other = [(t.number, _objective(t), t) for t in done if not math.isfinite(_objective(t))]
    fig, ax = new_figure((7.5, 4.2))
    values = [v for _, v, _ in finite]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 100
    if finite:
        verdicts = {t.user_attrs.get(TrialAttr.HEALTH) or "?" for _, _, t in finite}
        for verdict in sorted(verdicts, key=lambda v: (HEALTH_ORDER + [v]).index(v)):
            pts = [(n, v) for n, v, t in finite if (t.user_attrs.get(TrialAttr.HEALTH) or "?") == verdict]
            ax.scatter(*zip(*pts), color=health_colour(verdict), s=26, zorder=3, label=verdict)
        best, xs, ys = None, [], []
        for n, v, _ in sorted(finite):
            best = v if best is None else (min(best, v) if minimize else max(best, v))
            xs.append(n)
            ys.append(best)
        ax.step(xs, ys, where="post", color="black", lw=1.2, label="best so far", zorder=2)
    if log:
        ax.set_yscale("log")
    if other:
        # off the scale: drawn at the top edge (bottom edge for −inf)
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if log:
            top, bottom = hi * 10, lo / 10
        else:
            pad = (hi - lo) * 0.1 or 1.0
            top, bottom = hi + pad, lo - pad
        for n, v, _ in other:
            ax.scatter([n], [top if v > 0 or math.isnan(v) else bottom], marker="^" if v > 0 else "v",
                       color=HEALTH_COLOURS["diverged"], s=40, zorder=3)
        ax.scatter([], [], marker="^", color=HEALTH_COLOURS["diverged"], label="non-finite (at edge)")
    ax.set_xlabel("trial number")
    ax.set_ylabel(name + (" (log scale)" if log else ""))
    ax.set_title(f"Optimization history ({'minimize' if minimize else 'maximize'} {name})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def _importances(study: optuna.Study) -> tuple[Optional[dict[str, float]], str]:
    """fANOVA importances of the first objective, or (None, why not)."""
    usable = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if _objective(t) is not None and math.isfinite(_objective(t))]
    if len(usable) < 2:
        return None, f"needs at least 2 complete trials with a finite objective (has {len(usable)})"
    varying = [k for k in {k for t in usable for k in t.params}
               if len({repr(t.params[k]) for t in usable if k in t.params}) > 1]
    if not varying:
        return None, "no parameter varies across the complete trials"
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            target=lambda t: t.values[0])
    except Exception as exc:   # the evaluator's own limits (dynamic spaces, degenerate data, ...)
        return None, f"the importance evaluator failed: {type(exc).__name__}: {exc}"
    importances = {k: float(v) for k, v in importances.items() if v is not None and math.isfinite(float(v))}
    if not importances:
        return None, "no parameter is shared by all complete trials"
    return importances, ""


def _importance_figure(importances: dict[str, float], name: str, path: Path) -> Path:
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = new_figure((7.0, 1.2 + 0.45 * len(items)))
    y = np.arange(len(items))
    ax.barh(y, [v for _, v in items], color="#4c72b0")
    for yi, (_, v) in zip(y, items):
        ax.text(v, yi, f" {v:.3f}", va="center", fontsize=8)
    ax.set_yticks(y, [k for k, _ in items])
    ax.set_xlim(0, max(1.0, max(v for _, v in items) * 1.15))
    ax.set_xlabel(f"importance for {name} (fANOVA, normalized)")
    ax.set_title("Parameter importances")
    return save_figure(fig, path)


def _off_scale(ax, xs: list[float], **style) -> None:
    """Draw points whose y is missing or non-finite on the top edge of `ax` (after the finite ones)."""
    if not xs:
        return
    lo, hi = ax.get_ylim()
    if not getattr(ax, "_gradstudy_headroom", False):   # make room above the finite points, once
        if ax.get_yscale() == "log":
            hi = 10 ** (math.log10(hi) + 0.12 * (math.log10(hi) - math.log10(lo)))
        else:
            hi = hi + 0.12 * (hi - lo)
        ax.set_ylim(lo, hi)
        ax._gradstudy_headroom = True
    # x in data coordinates, y in axes coordinates: the band at the top, whatever the scale
    ax.scatter(xs, [0.96] * len(xs), marker="^", transform=ax.get_xaxis_transform(), zorder=4, **style)
    ax.set_ylim(lo, hi)


def _log_ticks(axis, lo: float, hi: float) -> None:
    """Plain-number ticks on a log axis: powers of 2 over a short range (λ1 around 1), else of 10."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=2.0 if hi / lo <= 2 ** 8 else 10.0))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _phase_records(study: optuna.Study, trials: list[FrozenTrial], summaries: dict[int, dict]) -> list[dict]:
    """Finished trials that carry λ1 of W_rec, with their series label, health, loss and ratio."""
    fixed_init = _fixed_search_value(study, "model.init")
    fixed_activation = _fixed_search_value(study, "model.activation")
    fixed_cell = _fixed_search_value(study, "model.cell")
    fixed_length = _fixed_search_value(study, "task.seq_len")
    records = []
    for t in trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        summary = summaries.get(t.number)
        init = _setting(t, "model.init", summary, fixed_init)
        if "model.init_gain" in t.params:   # sampled: meaningful unless the init is known not to use it
            if init is not None and init not in LAMBDA1_INITS:
                continue
            gain = t.params["model.init_gain"]
        elif init in LAMBDA1_INITS:
            gain = _setting(t, "model.init_gain", summary, _fixed_search_value(study, "model.init_gain"))
        else:
            continue
        try:
            gain = float(gain)
        except (TypeError, ValueError):
            continue
        if not (math.isfinite(gain) and gain > 0):
            continue
        record = TrialRecord.from_frozen(t)
        cell = record.cell or _setting(t, "model.cell", summary, fixed_cell)
        if cell in GATED:
            series = str(cell)
        else:
            series = str(_setting(t, "model.activation", summary, fixed_activation) or "?")
        final = record.final or (summary or {}).get("final") or {}
        ratio = record.vanishing_ratio
        if ratio is None and summary and summary.get("probes"):
            ratio = summary["probes"][-1].get("vanishing_ratio")
        rate = record.decay_rate
        if rate is None and summary and summary.get("probes"):
            rate = summary["probes"][-1].get("decay_rate")
        length = record.seq_len or _setting(t, "task.seq_len", summary, fixed_length)
        health = record.health or (summary or {}).get("health")
        records.append({"number": t.number, "lambda1": gain, "series": series, "health": health,
                        "pruned": t.state == TrialState.PRUNED, "loss": finite_number(final.get("test_loss")),
                        "baseline": finite_number(final.get("baseline_loss")),
                        "ratio": finite_number(ratio), "rate": finite_number(rate),
                        "T": int(length) if finite_number(as_float(length)) else None})
    return records


MARKERS = ["o", "s", "D", "^", "v", "P", "X"]   # one per sequence length T in the phase figure


def _phase_figure(study: optuna.Study, records: list[dict], path: Path) -> Path:
    """Rows: activation (gated cells: per cell). Columns: final test loss, vanishing ratio, decay rate
    (decades per step back, with Pascanu et al.'s bound log10(λ1·γ) per step). Colour: health; marker:
    sequence length T when the study mixes several."""
    order = ACTIVATION_ORDER + list(GATED)
    series = sorted({r["series"] for r in records}, key=lambda s: (order.index(s) if s in order else 99, s))
    lengths = sorted({r["T"] for r in records if r["T"] is not None})
    marker = {length: MARKERS[i % len(MARKERS)] for i, length in enumerate(lengths)} if len(lengths) > 1 else {}
    fig, axes = new_figure((15.0, 1.2 + 2.7 * len(series)), len(series), 3, sharex=True, squeeze=False)
    gains = [r["lambda1"] for r in records]
    lo, hi = min(gains), max(gains)
    pad = max(hi / lo, 1.5) ** 0.06
    for row, name in enumerate(series):
        rs = [r for r in records if r["series"] == name]
        ax_loss, ax_ratio, ax_rate = axes[row]
        for ax, key in ((ax_loss, "loss"), (ax_ratio, "ratio"), (ax_rate, "rate")):
            finite = [r for r in rs if r[key] is not None]
            for r in finite:
                colour = health_colour(r["health"])
                ax.scatter([r["lambda1"]], [r[key]], s=34, zorder=3, linewidths=1.2, marker=marker.get(r["T"], "o"),
                           facecolors="none" if r["pruned"] else colour, edgecolors=colour)
            if key == "loss":
                losses = [r["loss"] for r in finite]
                if losses and min(losses) > 0 and max(losses) / min(losses) > 20:
                    ax.set_yscale("log")
                baselines = [r["baseline"] for r in rs if r["baseline"] is not None]
                if baselines:
                    ax.axhline(float(np.median(baselines)), color="grey", ls="--", lw=1, zorder=1)
            elif key == "ratio":
                ax.axhline(3, color=HEALTH_COLOURS["exploding"], ls=":", lw=1)
                ax.axhline(-3, color=HEALTH_COLOURS["vanishing"], ls=":", lw=1)
                ax.axhline(0, color="grey", lw=0.6)
            else:
                ax.axhline(0, color="grey", lw=0.6)
                if name in GAMMA:   # each step back shrinks the gradient by at least λ1·γ when λ1·γ < 1
                    xs = np.geomspace(lo / pad, min(hi * pad, 1.0 / GAMMA[name]), 50)
                    ax.plot(xs, np.log10(xs * GAMMA[name]), color="black", ls="--", lw=0.9, zorder=2)
            if not finite:
                ax.set_ylim(0, 1) if key == "loss" else ax.set_ylim(-4, 4)
            missing = [r for r in rs if r[key] is None]
            for r in missing:
                colour = health_colour(r["health"])
                _off_scale(ax, [r["lambda1"]], s=46, linewidths=1.2,
                           facecolors="none" if r["pruned"] else colour, edgecolors=colour)
            if name in GAMMA:
                ax.axvline(1.0 / GAMMA[name], color="black", ls="-.", lw=0.8, alpha=0.6)
            ax.grid(True, which="major", alpha=0.3)
        ax_loss.set_ylabel(f"{name}\nfinal test loss")
        ax_ratio.set_ylabel(f"{name}\nvanishing ratio (last probe)")
        ax_rate.set_ylabel(f"{name}\ndecay rate (decades/step)")
    for ax in axes[-1]:
        ax.set_xscale("log")
        ax.set_xlim(lo / pad, hi * pad)
        _log_ticks(ax.xaxis, lo, hi)
        ax.set_xlabel(r"$\lambda_1$ of $W_{rec}$ (model.init_gain, log scale)")
    axes[0][0].set_title("final test loss")
    axes[0][1].set_title(r"vanishing ratio $\log_{10}(\|g_1\| / \|g_T\|)$")
    axes[0][2].set_title("decay rate: slope of " + r"$\log_{10}\|g_{T-k}\|$ per step $k$")
    handles = [Line2D([], [], ls="", marker="o", color=HEALTH_COLOURS[v], label=v) for v in HEALTH_ORDER]
    handles += [Line2D([], [], ls="", marker="o", mfc="none", color="black", label="pruned"),
                Line2D([], [], ls="", marker="^", color="black", label="non-finite (top edge)"),
                Line2D([], [], ls="--", color="grey", label="baseline loss"),
                Line2D([], [], ls="-.", color="black", label=r"$\lambda_1 = 1/\gamma$"),
                Line2D([], [], ls=":", color="black", label=r"ratio $= \pm 3$"),
                Line2D([], [], ls="--", color="black", label=r"bound $\log_{10}(\lambda_1\gamma)$")]
    handles += [Line2D([], [], ls="", marker=m, mfc="none", color="black", label=f"T = {length}")
                for length, m in marker.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8)
    fig.suptitle(f"Phase diagram of study {study.study_name}: " + r"$\lambda_1$ × activation"
                 f" ({len(records)} trials)")
    return save_figure(fig, path)


def _param_axis(trials: list[FrozenTrial], key: str) -> tuple[list[Any], Optional[list[str]], bool]:
    """Positions of `key` for `trials`, category labels (None when numeric) and whether to use log."""
    dist = next((t.distributions[key] for t in trials if key in t.distributions), None)
    values = [t.params[key] for t in trials]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if isinstance(dist, (FloatDistribution, IntDistribution)) and numeric:
        return [float(v) for v in values], None, bool(dist.log)
    if isinstance(dist, CategoricalDistribution) and numeric and all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in dist.choices):
        positives = min(float(v) for v in values) > 0
        return [float(v) for v in values], None, positives and max(values) / min(values) >= 10
    choices = list(dist.choices) if isinstance(dist, CategoricalDistribution) else sorted(
        {repr(v) for v in values})
    labels = [str(c) for c in choices]
    index = {repr(c): i for i, c in enumerate(choices)}
    rng = np.random.default_rng(0)
    return [index.get(repr(v), 0) + rng.uniform(-0.15, 0.15) for v in values], labels, False


def _param_figure(study: optuna.Study, trials: list[FrozenTrial], keys: list[str], name: str,
                  path: Path) -> Optional[Path]:
    done = [t for t in trials if t.state == TrialState.COMPLETE and _objective(t) is not None
            and all(k in t.params for k in keys)]
    if not done:
        return None
    finite = [t for t in done if math.isfinite(_objective(t))]
    other = [t for t in done if not math.isfinite(_objective(t))]
    fig, ax = new_figure((7.5, 5.0))
    x_all, x_labels, x_log = _param_axis(done, keys[0])
    pos = {t.number: i for i, t in enumerate(done)}
    if len(keys) == 1:
        # one parameter: the objective against it, coloured by health
        ys = [_objective(t) for t in finite]
        for t in finite:
            ax.scatter([x_all[pos[t.number]]], [_objective(t)], color=health_colour(t.user_attrs.get(TrialAttr.HEALTH)),
                       s=34, zorder=3)
        if ys and min(ys) > 0 and max(ys) / min(ys) > 100:
            ax.set_yscale("log")
        if not ys:
            ax.set_ylim(0, 1)
        _off_scale(ax, [x_all[pos[t.number]] for t in other], color=HEALTH_COLOURS["diverged"], s=46)
        ax.set_ylabel(name)
        title = f"{name} against {keys[0]}"
    else:
        y_all, y_labels, y_log = _param_axis(done, keys[1])
        values = np.array([_objective(t) for t in finite])
        norm = None
        if len(values):
            from matplotlib.colors import LogNorm, Normalize
            lo, hi = float(values.min()), float(values.max())
            norm = LogNorm(lo, hi) if lo > 0 and hi / lo > 100 else Normalize(lo, hi if hi > lo else lo + 1)
            sc = ax.scatter([x_all[pos[t.number]] for t in finite], [y_all[pos[t.number]] for t in finite],
                            c=values, cmap="viridis", norm=norm, s=46, edgecolors="black", linewidths=0.4, zorder=3)
            fig.colorbar(sc, ax=ax).set_label(name)
        if other:
            ax.scatter([x_all[pos[t.number]] for t in other], [y_all[pos[t.number]] for t in other],
                       marker="x", color=HEALTH_COLOURS["diverged"], s=46, zorder=3, label="non-finite objective")
            ax.legend(fontsize=8)
        if y_labels is not None:
            ax.set_yticks(range(len(y_labels)), y_labels)
        elif y_log:
            ax.set_yscale("log")
        ax.set_ylabel(keys[1] + (" (log scale)" if y_log and y_labels is None else ""))
        title = f"{keys[0]} × {keys[1]}, coloured by {name}"
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), x_labels)
    elif x_log:
        ax.set_xscale("log")
    ax.set_xlabel(keys[0] + (" (log scale)" if x_log and x_labels is None else ""))
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Study {study.study_name}: {title}", fontsize=10)
    return save_figure(fig, path)


# --- the HTML -------------------------------------------------------------------------------------------
CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.5em 0 1.5em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
p.note { color: #666; font-style: italic; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _figure(file: str, caption: str) -> str:
    return (f'<figure><a href="{_e(file)}"><img src="{_e(file)}" alt="{_e(caption)}"></a>'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "_"


def _importance_order(importances: Optional[dict[str, float]], trials: list[FrozenTrial]) -> list[str]:
    """Parameters of the complete trials, most important first, then in order of first appearance."""
    seen: list[str] = []
    for t in trials:
        if t.state == TrialState.COMPLETE:
            seen += [k for k in t.params if k not in seen]
    ranked = [k for k, _ in sorted((importances or {}).items(), key=lambda kv: -kv[1]) if k in seen]
    return ranked + [k for k in seen if k not in ranked]


def _comparison_html(c: dict[str, Any]) -> list[str]:
    """The nightly comparison with the previous night (study/nightly.py builds the dict)."""
    verdict = "REGRESSION" if c.get("regressed") else "no regression"
    parts = [f"<h2>Compared with {_e(c.get('previous'))}: {_e(verdict)}</h2>"]
    if c.get("regressions"):
        parts.append('<ul class="regressions">' + "".join(f"<li>{_e(r)}</li>" for r in c["regressions"])
                     + "</ul>")
    rows = "".join(f'<tr data-cell="{_e(cell)}"><td>{_e(cell)}</td><td class="num">{_e(_fmt(e.get("previous")))}'
                   f'</td><td class="num">{_e(_fmt(e.get("current")))}</td>'
                   f'<td>{"regressed" if e.get("regressed") else "ok"}</td></tr>'
                   for cell, e in (c.get("cells") or {}).items())
    parts.append("<table class=\"comparison\"><tr><th>cell</th><th>previous best</th><th>tonight</th>"
                 f"<th></th></tr>{rows}</table>")
    for key in ("failures", "diverged_fraction"):
        pair = c.get(key) or {}
        parts.append(_note(f"{key}: {_fmt(pair.get('previous'))} → {_fmt(pair.get('current'))}"))
    health = c.get("health") or {}
    parts.append(_note(f"health mix: {_e(health.get('previous'))} → {_e(health.get('current'))}"))
    return parts


def write_study_report(study: optuna.Study, folder: Path, summaries: Optional[dict[int, dict]] = None,
                       comparison: Optional[dict[str, Any]] = None) -> Path:
    """Write the study's figures and `report.html` into `folder`; return the HTML's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in [*(folder / f for f in FILES.values()), *folder.glob("profile_*.png")]:
        old.unlink(missing_ok=True)   # figures of an earlier report that this one may not redraw
    summaries = {int(k): v for k, v in (summaries or {}).items() if isinstance(v, dict)}
    trials = study.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in study.directions]
    names = _objective_names(study)
    name0 = names[0]
    multi = len(study.directions) > 1
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts: list[str] = []

    # header and counts
    parts.append(f"<h1>Study {_e(study.study_name)}</h1>")
    objectives = ", ".join(f"{d} {n}" for d, n in zip(directions, names))
    meta = [("study", study.study_name), ("directions", ", ".join(directions)), ("objectives", objectives),
            ("generated", generated + " (UTC)")]
    if study.user_attrs.get(StudyAttr.N_TRIALS) is not None:
        meta.insert(2, ("target trials", study.user_attrs[StudyAttr.N_TRIALS]))
    parts.append("<table class=\"meta\">" + "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in meta) + "</table>")
    counts = state_counts(trials)
    parts.append("<h2>Trials by state</h2>")
    parts.append('<table class="states"><tr>' + "".join(f"<th>{_e(k)}</th>" for k in counts) + "</tr><tr>"
                 + "".join(f'<td class="num" data-state="{_e(k)}">{v}</td>' for k, v in counts.items())
                 + "</tr></table>")
    parts.append(_note("REQUEUED: failed trials whose configuration was queued again (lost worker or "
                       "driver); they are not counted under FAIL and not towards the study's size."))

    if comparison:
        parts.extend(_comparison_html(comparison))

    # best per cell
    parts.append("<h2>Best trial per cell type</h2>")
    best = best_per_cell(study, trials)
    if best:
        if multi:
            parts.append(_note(f"ranked by the first objective ({name0}); a multi-objective study has a "
                               "Pareto front, not one best trial."))
        head = ["cell", "trial", *(f"{d} {n}" for d, n in zip(directions, names)), "health", "params"]
        rows = []
        for cell, t in best.items():
            values = list(t.values or [])
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
            rows.append(f'<tr class="best" data-cell="{_e(cell)}" data-trial="{t.number}">'
                        f"<td>{_e(cell)}</td><td class=\"num\">{t.number}</td>"
                        + "".join(f'<td class="num">{_e(_fmt(v))}</td>' for v in values)
                        + "".join("<td></td>" for _ in range(len(directions) - len(values)))
                        + f"<td>{_e(t.user_attrs.get('gradstudy.health', '–'))}</td><td>{_e(params)}</td></tr>")
        parts.append('<table class="best-per-cell"><tr>' + "".join(f"<th>{_e(h)}</th>" for h in head)
                     + "</tr>" + "".join(rows) + "</table>")
    else:
        parts.append(_note("no complete trials yet"))

    # health mix
    parts.append("<h2>Health mix</h2>")
    file = _health_mix(trials, folder / FILES["health"])
    parts.append(_figure(FILES["health"], "health verdicts of finished trials (COMPLETE, PRUNED, FAIL not "
                                          "requeued)") if file else _note("no finished trials yet"))

    # history
    parts.append("<h2>Optimization history</h2>")
    file = _history(study, trials, name0, folder / FILES["history"])
    caption = f"{name0} of each complete trial" + (" (first objective)" if multi else "")
    parts.append(_figure(FILES["history"], caption) if file else _note("no complete trials yet"))

    # importances
    parts.append("<h2>Parameter importances</h2>")
    importances, why = _importances(study)
    if importances:
        _importance_figure(importances, name0, folder / FILES["importances"])
        parts.append(_figure(FILES["importances"], f"fANOVA importances for {name0}"
                             + (" (first objective)" if multi else "")))
        parts.append('<table class="importances"><tr><th>parameter</th><th>importance</th></tr>' + "".join(
            f'<tr><td>{_e(k)}</td><td class="num">{v:.3f}</td></tr>'
            for k, v in sorted(importances.items(), key=lambda kv: -kv[1])) + "</table>")
    else:
        parts.append(_note(f"parameter importances not available: {why}"))

    # phase diagram
    parts.append("<h2>Phase diagram</h2>")
    records = _phase_records(study, trials, summaries)
    if records:
        _phase_figure(study, records, folder / FILES["phase"])
        parts.append(_figure(FILES["phase"], "final test loss, last-probe vanishing ratio and decay rate "
                                             "(decades per step back: comparable across T) against λ1 of "
                                             "W_rec, one row per activation (gated cells: per cell), "
                                             "coloured by health, marker by T; hollow = pruned"))
    else:
        keys = _importance_order(importances, trials)[:2]
        file = _param_figure(study, trials, keys, name0, folder / FILES["phase"]) if keys else None
        if file:
            how = "most important parameters" if importances else "first parameters"
            parts.append(_figure(FILES["phase"], f"the study's {how} ({', '.join(keys)}), "
                                                 f"coloured by {name0}" if len(keys) > 1 else
                                 f"{name0} against {keys[0]}"))
        elif not keys:
            parts.append(_note("the study has no sampled parameters"))
        else:
            parts.append(_note("no complete trials yet"))

    # gradient profiles of the best trials
    profiles = [(cell, t) for cell, t in best.items() if t.number in summaries]
    if profiles:
        parts.append("<h2>Gradient profiles of the best trials</h2>")
        for cell, t in profiles:
            file = f"profile_{_safe_name(cell)}_{t.number:05d}.png"
            plots.gradient_profile(summaries[t.number], folder / file)
            parts.append(_figure(file, f"{cell}: trial {t.number}, ‖∂L_T/∂h_t‖ over t at each probe"))

    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Study {_e(study.study_name)}: report</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
