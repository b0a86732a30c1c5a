"""Every trial's gradient profile as a small SVG, `gradient_profile.svg`, written by hand (no matplotlib): it
costs about a millisecond, so every trial's run has its profile among its artifacts, not only the trials
that trained `tracking.trial_figures_min_s` (whose PNG figures cost a second or more of CPU each).

x = k, the steps back from the loss (k = T − t, as the `profile/log10_grad_h_by_steps_back` metric), y =
log10 ‖∂L_T/∂h_(T−k)‖ of the top layer; one line per probe, earlier probes pale, the last in the colour of
the trial's health. Profiles longer than MAX_POINTS are thinned (both ends kept); non-finite points break
the line. MLflow's artifact viewer shows an .svg as an image.
"""
from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any, Optional

from tracking.figures.colours import health_colour
from tracking.figures.profile_records import by_steps_back, top_layer

FILE = "gradient_profile.svg"
WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 46, 52
MAX_POINTS = 600


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """About `count` round values covering [lo, hi]."""
    span = hi - lo if hi > lo else 1.0
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:.6g}"


def _segments(points: list[tuple[int, Optional[float]]]) -> list[list[tuple[int, float]]]:
    """Runs of finite points (a None breaks the line)."""
    out: list[list[tuple[int, float]]] = [[]]
    for k, v in points:
        if v is None:
            if out[-1]:
                out.append([])
        else:
            out[-1].append((k, v))
    return [s for s in out if s]


def write_profile_svg(summary: dict[str, Any], path: Path, title: str = "") -> Optional[Path]:
    """The SVG at `path`; None when no probe has a finite point."""
    probes = [p for p in summary.get("probes") or [] if isinstance(p, dict)]
    curves = []
    for probe in probes:
        profile = top_layer(probe)
        points = list(by_steps_back(profile, MAX_POINTS))
        if any(v is not None for _, v in points):
            curves.append((probe.get("step"), len(profile), points))
    if not curves:
        return None
    values = [v for _, _, pts in curves for _, v in pts if v is not None]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    k_max = max(1, max(length for _, length, _ in curves) - 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(k: float) -> float:
        return LEFT + plot_w * k / k_max

    def y(v: float) -> float:
        return TOP + plot_h * (hi - v) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    for v in _ticks(lo, hi):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_label(v)}</text>')
    for k in _ticks(0, k_max):
        parts.append(f'<text x="{x(k):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{_label(k)}</text>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
    last = len(curves) - 1
    colour = health_colour(summary.get("health"))
    for i, (step, _, points) in enumerate(curves):
        stroke, width = (colour, 2.0) if i == last else ("#b8b8b8", 1.0)
        for segment in _segments(points):
            path_d = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in segment)
            parts.append(f'<polyline fill="none" stroke="{stroke}" stroke-width="{width}" points="{path_d}">'
                         f'<title>probe at training step {step}</title></polyline>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 12}" text-anchor="middle">'
                 'k, steps back from the loss (k = T − t; the loss is at k = 0)</text>')
    parts.append(f'<text transform="translate(18 {TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 'log10 ‖∂L_T/∂h_(T−k)‖ (top layer)</text>')
    steps = [s for s, _, _ in curves]
    legend = (f"the probe at step {steps[-1]}" if len(curves) == 1 else
              f"{len(curves)} probes, steps {steps[0]}–{steps[-1]}; the last in colour")
    title = title.replace("$\\lambda_1$", "λ1")        # the figures' TeX, as plain text
    parts.append(f'<text x="{LEFT}" y="20" font-size="14">{escape(title)}</text>')
    parts.append(f'<text x="{LEFT}" y="38" fill="#555">{escape(legend)}</text>')
    parts.append("</svg>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
