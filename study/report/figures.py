"""The study report's figures of the whole study (study/report/page.py): the health mix, the optimization
history, the parameter importances, and the parameters scatter that stands in for the phase diagram when
the trials carry no λ1. Also the helpers the phase diagram (study/report/phase_figure.py) shares: `off_scale`
(non-finite points on the top edge) and `log_ticks`.

Each figure function writes one PNG and returns its Path (None where there is nothing to draw); figures
are `matplotlib.figure.Figure` objects (tracking.figures.trial_plots.new_figure), never pyplot.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np
import optuna
from matplotlib.patches import Patch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from study.records.attrs import TrialAttr
from study.records.trials import counts_towards_total
from study.report.data import objective
from tracking.figures.colours import HEALTH_COLOURS, HEALTH_ORDER, health_colour
from tracking.figures.trial_plots import grouped, new_figure, save_figure


def health_mix_figure(trials: list[FrozenTrial], path: Path) -> Optional[Path]:
    """Finished trials per health verdict, stacked by trial state."""
    done = [t for t in trials if counts_towards_total(t)]
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


def history_figure(study: optuna.Study, trials: list[FrozenTrial], name: str, path: Path,
                   rates: Optional[dict[int, Optional[float]]] = None) -> Optional[Path]:
    """The first objective of each complete trial, coloured by health (with `rates`, trial number → decay
    rate: by the decay rate, for a study that mixes sequence lengths), and the best so far."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and objective(t) is not None]
    if not done:
        return None
    minimize = study.directions[0] == StudyDirection.MINIMIZE
    finite = [(t.number, objective(t), t) for t in done if math.isfinite(objective(t))]
    other = [(t.number, objective(t), t) for t in done if not math.isfinite(objective(t))]
    fig, ax = new_figure((7.5, 4.2))
    values = [v for _, v, _ in finite]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 100
    if finite and rates is not None:
        from study.report.length_mix import colour_scale, rate_colour, rate_limit
        limit = rate_limit([rates.get(n) for n, _, _ in finite])
        by_colour = grouped([(n, v) for n, v, _ in finite], lambda p: rate_colour(rates.get(p[0]), limit))
        for colour, pts in by_colour.items():
            ax.scatter(*zip(*pts), color=colour, s=26, zorder=3, edgecolors="black", linewidths=0.3)
        fig.colorbar(colour_scale(limit), ax=ax).set_label("decay rate (decades/step)")
    elif finite:
        verdicts = {t.user_attrs.get(TrialAttr.HEALTH) or "?" for _, _, t in finite}
        for verdict in sorted(verdicts, key=lambda v: (HEALTH_ORDER + [v]).index(v)):
            pts = [(n, v) for n, v, t in finite if (t.user_attrs.get(TrialAttr.HEALTH) or "?") == verdict]
            ax.scatter(*zip(*pts), color=health_colour(verdict), s=26, zorder=3, label=verdict)
    if finite:
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
        up = [n for n, v, _ in other if v > 0 or math.isnan(v)]
        down = [n for n, v, _ in other if not (v > 0 or math.isnan(v))]
        for ns, y, mark in ((up, top, "^"), (down, bottom, "v")):
            if ns:
                ax.scatter(ns, [y] * len(ns), marker=mark, color=HEALTH_COLOURS["diverged"], s=40, zorder=3)
        ax.scatter([], [], marker="^", color=HEALTH_COLOURS["diverged"], label="non-finite (at edge)")
    ax.set_xlabel("trial number")
    ax.set_ylabel(name + (" (log scale)" if log else ""))
    ax.set_title(f"Optimization history ({'minimize' if minimize else 'maximize'} {name})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def importance_figure(importances: dict[str, float], name: str, path: Path) -> Path:
    """The importances as horizontal bars, the most important on top."""
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


def off_scale(ax, xs: list[float], **style) -> None:
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


def log_ticks(axis, lo: float, hi: float) -> None:
    """Plain-number ticks on a log axis: powers of 2 over a short range (λ1 around 1), else of 10."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=2.0 if hi / lo <= 2 ** 8 else 10.0))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


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


def param_figure(study: optuna.Study, trials: list[FrozenTrial], keys: list[str], name: str,
                 path: Path) -> Optional[Path]:
    """One parameter: the first objective against it, coloured by health; two: the first against the
    second, coloured by the objective."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and objective(t) is not None
            and all(k in t.params for k in keys)]
    if not done:
        return None
    finite = [t for t in done if math.isfinite(objective(t))]
    other = [t for t in done if not math.isfinite(objective(t))]
    fig, ax = new_figure((7.5, 5.0))
    x_all, x_labels, x_log = _param_axis(done, keys[0])
    pos = {t.number: i for i, t in enumerate(done)}
    if len(keys) == 1:
        # one parameter: the objective against it, coloured by health
        ys = [objective(t) for t in finite]
        for colour, group in grouped(finite, lambda t: health_colour(t.user_attrs.get(TrialAttr.HEALTH))).items():
            ax.scatter([x_all[pos[t.number]] for t in group], [objective(t) for t in group], color=colour,
                       s=34, zorder=3)
        if ys and min(ys) > 0 and max(ys) / min(ys) > 100:
            ax.set_yscale("log")
        if not ys:
            ax.set_ylim(0, 1)
        off_scale(ax, [x_all[pos[t.number]] for t in other], color=HEALTH_COLOURS["diverged"], s=46)
        ax.set_ylabel(name)
        title = f"{name} against {keys[0]}"
    else:
        y_all, y_labels, y_log = _param_axis(done, keys[1])
        values = np.array([objective(t) for t in finite])
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
