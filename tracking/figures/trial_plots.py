"""Per-trial figures and tables drawn from a trial's `summary.json` (the contract in docs/summary-json.md).

- `gradient_profile`: log10 ‖∂L_T/∂h_t‖ against t, one curve per probe step (top layer).
- `gradient_heatmap`: training step × timestep image of log10 ‖∂L_T/∂h_t‖ (top layer); beyond
  MAX_COLUMNS timesteps, consecutive steps are averaged into bins so the image stays readable.
- `probe_table`: every ‖∂L_T/∂h_t‖ as a long CSV: step, layer, t, grad_h_log10, grad_h_norm.
- `probe_scalars`: one CSV row per probe: the scalar figures and λ1 / spectral radius per layer.

The figures read `grad_h_log10` (exact at any T, far below the float range: a vanishing gradient of
1e-600 is drawn at −600), or the log of `grad_h_norms` for summaries written before it existed. Layers
are numbered from 0 (bottom first), timesteps from 1 to T. A value that is null in the summary (NaN,
±Inf, or an exactly zero gradient) is left out of the figures; the CSVs keep it (an empty cell).

Every function writes one file and returns its Path. Figures are `matplotlib.figure.Figure` objects
rendered by Agg on save: no pyplot, no global backend switch, nothing left open.
Knows nothing of Ray, Optuna or the study driver: it reads plain dicts.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from tracking.figures.profile_records import top_layer
from workers.config import LAMBDA1_INITS as _INITS

LAMBDA1_INITS = tuple(i.value for i in _INITS)   # init schemes whose init_gain is λ1 of W_rec
DPI = 110
MAX_COLUMNS = 500   # heatmap columns; longer profiles are binned

GRAD_LABEL = r"$\|\partial L_T / \partial h_t\|$"


def save_figure(fig, path: Path) -> Path:
    """Write `fig` as a PNG at `path` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def grouped(items: Iterable[Any], look) -> dict[Any, list]:
    """`items` grouped by `look(item)` (a marker, a colour…), in first-seen order: a figure draws one
    scatter per group, since matplotlib's autoscaling makes each scatter call O(points already drawn)."""
    groups: dict[Any, list] = {}
    for item in items:
        groups.setdefault(look(item), []).append(item)
    return groups


def new_figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **subplots):
    """(figure, axes) with constrained layout, outside pyplot's global state."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, **subplots)


def note_figure(text: str, path: Path, title: str = "", size: tuple[float, float] = (6.0, 2.5)) -> Path:
    """A small figure holding only a message (used when there is nothing to draw)."""
    fig, ax = new_figure(size)
    ax.axis("off")
    if title:
        ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return save_figure(fig, path)


# --- reading a summary ------------------------------------------------------------------------------------
def _probes(summary: dict) -> list[dict]:
    return [p for p in (summary.get("probes") or []) if isinstance(p, dict)]


def _n_layers(summary: dict) -> int:
    counts = [len(p.get("grad_h_norms") or []) for p in _probes(summary)]
    counts += [len(p.get("lambda1") or []) for p in _probes(summary)]
    cfg_layers = (summary.get("config") or {}).get("model", {}).get("layers")
    return max(counts) if counts and max(counts) > 0 else int(cfg_layers or 0)


def _step(probe: dict, index: int) -> int:
    step = probe.get("step")
    return int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else index


def describe(summary: dict) -> str:
    """A one-line title: task · cell (activation) · T · health, plus the initialization."""
    cfg = summary.get("config") or {}
    task, model = cfg.get("task") or {}, cfg.get("model") or {}
    cell = model.get("cell", "?")
    cell_text = f"{cell} ({model['activation']})" if cell in ("rnn", "esn") and model.get("activation") else cell
    init = model.get("init")
    init_text = ""
    if init in LAMBDA1_INITS and model.get("init_gain") is not None:
        init_text = f" · init {init}, $\\lambda_1$={model['init_gain']:.3g}"
    elif init:
        init_text = f" · init {init}"
    verdict = summary.get("health", "?")
    if model.get("cell") == "esn" and verdict == "vanishing":   # fading memory is the echo state property
        verdict = "vanishing (fading memory: the echo state property)"
    return (f"{task.get('name', '?')} · {cell_text} · T={task.get('seq_len', '?')}{init_text}"
            f" · health: {verdict}")


# --- figures --------------------------------------------------------------------------------------------
def gradient_profile(summary: dict, path: Path) -> Path:
    """‖∂L_T/∂h_t‖ against t = 1..T (top layer, log y), one curve per probe coloured by training step (a
    single probe: one curve, its step in the legend, no colour bar)."""
    probes = _probes(summary)
    curves = []
    for i, probe in enumerate(probes):
        profile = top_layer(probe)
        points = [(t, v) for t, v in enumerate(profile, start=1) if v is not None]
        if points:
            curves.append((_step(probe, i), points))
    title = describe(summary)
    if not curves:
        return note_figure("no finite, positive gradient norms to draw", path, title=title, size=(8.0, 3.0))

    steps = [s for s, _ in curves]
    lo, hi = min(steps), max(steps)
    norm = Normalize(vmin=lo - 0.5, vmax=hi + 0.5) if lo == hi else Normalize(vmin=lo, vmax=hi)
    cmap = matplotlib.colormaps["viridis"]
    fig, ax = new_figure((8.0, 4.8))
    for step, points in curves:
        ts, vs = zip(*points)
        ax.plot(ts, vs, color=cmap(norm(step)), lw=1.4, marker="o" if len(ts) == 1 else None, ms=3)
    length = max(len(top_layer(p)) for p in probes)
    ax.set_xlim(0.5, length + 0.5)
    ax.set_xlabel(r"timestep $t$ (the loss $L_T$ is taken at $t = T$)")
    layers = _n_layers(summary)
    ax.set_ylabel(r"$\log_{10}$ " + GRAD_LABEL + (f"  (top layer, {layers} layers)" if layers > 1 else ""))
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title, fontsize=10)
    if lo == hi:
        ax.legend([f"the probe at training step {lo}"], loc="best", fontsize=9)
    else:
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax)
        bar.set_label("training step of the probe")
    return save_figure(fig, path)


def gradient_heatmap(summary: dict, path: Path) -> Path:
    """log10 ‖∂L_T/∂h_t‖ of the top layer as an image: training step (y) × timestep (x)."""
    probes = _probes(summary)
    title = describe(summary)
    length = max((len(top_layer(p)) for p in probes), default=0)
    if not probes or length == 0:
        return note_figure("no probes to draw", path, title=title, size=(8.0, 3.0))
    steps = np.array([_step(p, i) for i, p in enumerate(probes)], dtype=float)
    grid = np.full((len(probes), length), np.nan)
    for row, probe in enumerate(probes):
        for col, value in enumerate(top_layer(probe)):
            if value is not None:
                grid[row, col] = value
    if not np.isfinite(grid).any():
        return note_figure("no finite, positive gradient norms to draw", path, title=title, size=(8.0, 3.0))

    order = np.argsort(steps, kind="stable")
    steps, grid = steps[order], grid[order]
    # cell edges half-way between probe steps (probes need not be evenly spaced: the last one is not)
    if len(steps) == 1:
        y_edges = np.array([steps[0] - 0.5, steps[0] + 0.5])
    else:
        mids = (steps[1:] + steps[:-1]) / 2
        y_edges = np.concatenate([[steps[0] - (mids[0] - steps[0])], mids,
                                  [steps[-1] + (steps[-1] - mids[-1])]])
        y_edges = np.maximum.accumulate(y_edges)
    grid, x_edges, width = _binned(grid)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#d9d9d9")
    fig, ax = new_figure((8.0, 4.8))
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_invalid(grid), cmap=cmap, shading="flat")
    ax.set_xlabel(r"timestep $t$" + (f" (mean over bins of {width} steps)" if width > 1 else ""))
    ax.set_ylabel("training step of the probe")
    if len(steps) <= 12:
        ax.set_yticks(steps)
    ax.set_title(title, fontsize=10)
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label(r"$\log_{10}$ " + GRAD_LABEL + " (top layer)")
    return save_figure(fig, path)


def _binned(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Columns averaged in bins of `width` timesteps so that at most MAX_COLUMNS remain (NaN left out of
    each mean); returns the grid, the x edges in timesteps and the width."""
    length = grid.shape[1]
    width = max(1, math.ceil(length / MAX_COLUMNS))
    if width == 1:
        return grid, np.arange(length + 1) + 0.5, 1
    columns = math.ceil(length / width)
    padded = np.full((grid.shape[0], columns * width), np.nan)
    padded[:, :length] = grid
    blocks = padded.reshape(grid.shape[0], columns, width)
    counts = np.isfinite(blocks).sum(-1)
    sums = np.where(np.isfinite(blocks), blocks, 0.0).sum(-1)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    edges = np.minimum(np.arange(columns + 1) * width, length) + 0.5
    return means, edges, width


# --- tables ---------------------------------------------------------------------------------------------
def _cell(value: Any) -> Any:
    """A CSV cell: null / NaN / ±Inf as an empty cell, everything else as is."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def _write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    return path


def probe_table(summary: dict, path: Path) -> Path:
    """Long CSV of the probes' gradient profiles: one row per (probe step, layer, timestep)."""
    def rows():
        for i, probe in enumerate(_probes(summary)):
            step = _step(probe, i)
            norms = probe.get("grad_h_norms") or []
            logs = probe.get("grad_h_log10") or [[None] * len(layer) for layer in norms]
            for layer, (profile, log10) in enumerate(zip(norms, logs)):
                for t, (value, log_value) in enumerate(zip(profile, log10), start=1):
                    yield [step, layer, t, log_value, value]
    return _write_csv(path, ["step", "layer", "t", "grad_h_log10", "grad_h_norm"], rows())


def probe_scalars(summary: dict, path: Path) -> Path:
    """CSV, one row per probe: step, vanishing_ratio, horizon, global_norm, clipped, health, val_loss,
    lambda1_<layer>, spectral_radius_<layer> (layers from 0, bottom first)."""
    layers = _n_layers(summary)
    header = ["step", "vanishing_ratio", "decay_rate", "horizon", "global_norm", "clipped", "health", "val_loss"]
    header += [f"lambda1_{i}" for i in range(layers)] + [f"spectral_radius_{i}" for i in range(layers)]

    def per_layer(probe: dict, key: str) -> list[Any]:
        values = list(probe.get(key) or [])
        return (values + [None] * layers)[:layers]

    def rows():
        for i, probe in enumerate(_probes(summary)):
            clipped = probe.get("clipped")
            yield ([_step(probe, i), probe.get("vanishing_ratio"), probe.get("decay_rate"), probe.get("horizon"),
                    probe.get("global_norm"),
                    "" if clipped is None else int(bool(clipped)), probe.get("health"), probe.get("val_loss")]
                   + per_layer(probe, "lambda1") + per_layer(probe, "spectral_radius"))
    return _write_csv(path, header, rows())
