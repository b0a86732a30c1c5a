"""The phase diagram of the study report (study/report/page.py): final test loss, the last probe's
vanishing ratio and its decay rate against λ1 of W_rec, one row per activation (gated cells: per cell),
coloured by health, a marker per sequence length T, with Pascanu et al.'s per-step bound log10(λ1·γ).
It draws the records of study.report.data.phase_records. A study that mixes sequence lengths is coloured
by T instead (`by_length`; the colours of its MLflow runs, tracking/ui/run_look.py): its verdicts depend on T,
and the decay rate's column then shows at a glance that the rate does not (the colours overlap); with more
T values than colours, by the decay rate (study/report/length_mix.py). A study measured at initialization
(`untrained`) has no loss column: an untrained net's loss says nothing of λ1.

Legible where it is shown (MLflow's artifact viewer, the report page: about 1000 px wide): 4 inches a
column at DPI 110, text of at least FONT points, so axis text stays ≥ 10 px at 1000 px (test_report).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from matplotlib.lines import Line2D

from study.report.data import ACTIVATION_ORDER, GATED
from study.report.figures import log_ticks, off_scale
from study.report.length_mix import colour_scale, rate_colour, rate_limit
from tracking.figures.colours import HEALTH_COLOURS, HEALTH_ORDER, OTHER_COLOUR, health_colour
from tracking.figures.trial_plots import grouped, new_figure, save_figure
from tracking.ui.run_look import LENGTH_COLOURS, length_colour
from workers import config

GAMMA = {a.value: g for a, g in config.GAMMA.items()}   # bound on |f'| (Pascanu et al. 2013)
MARKERS = ["o", "s", "D", "^", "v", "P", "X"]   # one per sequence length T in the phase figure
TITLE = {"loss": "final test loss", "ratio": r"vanishing ratio $\log_{10}(\|g_1\| / \|g_T\|)$",
         "rate": "decay rate (decades per step back)"}
YLABEL = {"loss": "final test loss", "ratio": "vanishing ratio (last probe)", "rate": "decay rate (decades/step)"}
COLUMN_INCHES = 4.0
FONT = 10.0        # points: ticks, labels; the legend 9


def looks(records: list[dict], marker: dict, colour=None) -> dict[tuple[str, str, bool], list[dict]]:
    """The records grouped by how their points look: (marker of their T, colour, pruned); the colour is
    the health's unless `colour(record)` says otherwise."""
    colour = colour or (lambda r: health_colour(r["health"]))
    return grouped(records, lambda r: (marker.get(r["T"], "o"), colour(r), bool(r["pruned"])))


def phase_figure(study: optuna.Study, records: list[dict], path: Path, by_rate: bool = False,
                 untrained: bool = False) -> Path:
    """Rows: activation (gated cells: per cell). Columns: final test loss (not when `untrained`), vanishing
    ratio, decay rate (decades per step back, with Pascanu et al.'s bound log10(λ1·γ) per step). Colour:
    health, or with `by_rate` (a study that mixes sequence lengths) T where it has few values, else the
    decay rate; marker: sequence length T when the study mixes several."""
    lengths = sorted({r["T"] for r in records if r["T"] is not None})
    by_length = by_rate and 1 < len(lengths) <= len(LENGTH_COLOURS)
    limit = rate_limit([r["rate"] for r in records])
    if by_length:
        colour = lambda r: length_colour(lengths, r["T"]) or OTHER_COLOUR  # noqa: E731
    else:
        colour = (lambda r: rate_colour(r["rate"], limit)) if by_rate else None
    order = ACTIVATION_ORDER + list(GATED)
    series = sorted({r["series"] for r in records}, key=lambda s: (order.index(s) if s in order else 99, s))
    marker = {length: MARKERS[i % len(MARKERS)] for i, length in enumerate(lengths)} if len(lengths) > 1 else {}
    keys = ["ratio", "rate"] if untrained else ["loss", "ratio", "rate"]
    fig, axes = new_figure((COLUMN_INCHES * len(keys) + (1.0 if by_rate and not by_length else 0.0),
                            1.6 + 2.9 * len(series)), len(series), len(keys), sharex=True, squeeze=False)
    gains = [r["lambda1"] for r in records]
    lo, hi = min(gains), max(gains)
    pad = max(hi / lo, 1.5) ** 0.06
    for row, name in enumerate(series):
        rs = [r for r in records if r["series"] == name]
        ax_of = dict(zip(keys, axes[row]))
        for key, ax in ax_of.items():
            finite = [r for r in rs if r[key] is not None]
            # one scatter per look, not per trial (plots.grouped): a 10,000-trial study took minutes
            for (mark, look, pruned), group in looks(finite, marker, colour).items():
                ax.scatter([r["lambda1"] for r in group], [r[key] for r in group], s=34, zorder=3, linewidths=1.2,
                           marker=mark, facecolors="none" if pruned else look, edgecolors=look)
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
            for (_, look, pruned), group in looks(missing, {}, colour).items():
                off_scale(ax, [r["lambda1"] for r in group], s=46, linewidths=1.2,
                          facecolors="none" if pruned else look, edgecolors=look)
            if name in GAMMA:
                ax.axvline(1.0 / GAMMA[name], color="black", ls="-.", lw=0.8, alpha=0.6)
            ax.grid(True, which="major", alpha=0.3)
            ax.tick_params(labelsize=FONT)
        for key, ax in ax_of.items():
            ax.set_ylabel(f"{name}\n{YLABEL[key]}", fontsize=FONT)
    for ax in axes[-1]:
        ax.set_xscale("log")
        ax.set_xlim(lo / pad, hi * pad)
        log_ticks(ax.xaxis, lo, hi)
        ax.set_xlabel(r"$\lambda_1$ of $W_{rec}$ (model.init_gain, log)", fontsize=FONT)
    for key, ax in zip(keys, axes[0]):
        ax.set_title(TITLE[key], fontsize=FONT + 1)
    if by_length:
        handles = [Line2D([], [], ls="", marker=marker.get(length, "o"), color=length_colour(lengths, length),
                          label=f"T = {length}") for length in lengths]
    elif by_rate:
        handles = []
        bar = fig.colorbar(colour_scale(limit), ax=axes, shrink=0.8)
        bar.set_label("colour: decay rate (decades/step; the study mixes T)", fontsize=FONT)
        bar.ax.tick_params(labelsize=FONT)
    else:
        handles = [Line2D([], [], ls="", marker="o", color=HEALTH_COLOURS[v], label=v) for v in HEALTH_ORDER]
    handles += [Line2D([], [], ls="", marker="o", mfc="none", color="black", label="pruned"),
                Line2D([], [], ls="", marker="^", color="black", label="non-finite (top edge)")]
    if "loss" in keys:
        handles.append(Line2D([], [], ls="--", color="grey", label="baseline loss"))
    handles += [Line2D([], [], ls="-.", color="black", label=r"$\lambda_1 = 1/\gamma$"),
                Line2D([], [], ls=":", color="black", label=r"ratio $= \pm 3$"),
                Line2D([], [], ls="--", color="black", label=r"bound $\log_{10}(\lambda_1\gamma)$")]
    if not by_length:
        handles += [Line2D([], [], ls="", marker=m, mfc="none", color="black", label=f"T = {length}")
                    for length, m in marker.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=4 if len(keys) == 3 else 3, fontsize=FONT - 1)
    fig.suptitle(f"Phase diagram of study {study.study_name}: " + r"$\lambda_1$ × activation"
                 f" ({len(records)} trials" + (", at initialization)" if untrained else ")"), fontsize=FONT + 2)
    return save_figure(fig, path)
