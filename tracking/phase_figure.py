"""The phase diagram of the study report (tracking/report.py): final test loss, the last probe's
vanishing ratio and its decay rate against λ1 of W_rec, one row per activation (gated cells: per cell),
coloured by health, a marker per sequence length T, with Pascanu et al.'s per-step bound log10(λ1·γ).
It draws the records of tracking.report_data.phase_records. A study that mixes sequence lengths is coloured
by the decay rate instead (`by_rate`; tracking/length_mix.py): its verdicts depend on T.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from matplotlib.lines import Line2D

from tracking.colours import HEALTH_COLOURS, HEALTH_ORDER, health_colour
from tracking.length_mix import colour_scale, rate_colour, rate_limit
from tracking.plots import grouped, new_figure, save_figure
from tracking.report_data import ACTIVATION_ORDER, GATED
from tracking.study_figures import log_ticks, off_scale
from workers import config

GAMMA = {a.value: g for a, g in config.GAMMA.items()}   # bound on |f'| (Pascanu et al. 2013)
MARKERS = ["o", "s", "D", "^", "v", "P", "X"]   # one per sequence length T in the phase figure


def looks(records: list[dict], marker: dict, colour=None) -> dict[tuple[str, str, bool], list[dict]]:
    """The records grouped by how their points look: (marker of their T, colour, pruned); the colour is
    the health's unless `colour(record)` says otherwise."""
    colour = colour or (lambda r: health_colour(r["health"]))
    return grouped(records, lambda r: (marker.get(r["T"], "o"), colour(r), bool(r["pruned"])))


def phase_figure(study: optuna.Study, records: list[dict], path: Path, by_rate: bool = False) -> Path:
    """Rows: activation (gated cells: per cell). Columns: final test loss, vanishing ratio, decay rate
    (decades per step back, with Pascanu et al.'s bound log10(λ1·γ) per step). Colour: health, or with
    `by_rate` the decay rate (a study that mixes sequence lengths); marker: sequence length T when the
    study mixes several."""
    limit = rate_limit([r["rate"] for r in records])
    colour = (lambda r: rate_colour(r["rate"], limit)) if by_rate else None
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
        ax_loss.set_ylabel(f"{name}\nfinal test loss")
        ax_ratio.set_ylabel(f"{name}\nvanishing ratio (last probe)")
        ax_rate.set_ylabel(f"{name}\ndecay rate (decades/step)")
    for ax in axes[-1]:
        ax.set_xscale("log")
        ax.set_xlim(lo / pad, hi * pad)
        log_ticks(ax.xaxis, lo, hi)
        ax.set_xlabel(r"$\lambda_1$ of $W_{rec}$ (model.init_gain, log scale)")
    axes[0][0].set_title("final test loss")
    axes[0][1].set_title(r"vanishing ratio $\log_{10}(\|g_1\| / \|g_T\|)$")
    axes[0][2].set_title("decay rate: slope of " + r"$\log_{10}\|g_{T-k}\|$ per step $k$")
    handles = [] if by_rate else [Line2D([], [], ls="", marker="o", color=HEALTH_COLOURS[v], label=v)
                                  for v in HEALTH_ORDER]
    if by_rate:
        bar = fig.colorbar(colour_scale(limit), ax=axes, shrink=0.8)
        bar.set_label("colour: decay rate (decades/step; the study mixes T)")
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
