"""The gradient profile log10 ‖∂L_T/∂h_t‖ (top layer) in forms the MLflow UI can compare across runs.

- A metric `profile/log10_grad_h_by_steps_back` from the trial's last probe, with step = k = T − t, the
  steps back from the loss (k = 0 at the last input, T − 1 at the first): one chart in MLflow's chart view
  then overlays the profile of every trial, and profiles of different T line up at the loss end (a line
  keyed by t would start every T at t = 1 and squash T = 100 at the left of T = 5000). y = decades, so a
  vanishing gradient falls to the right and its slope is the decay rate. Profiles longer than MAX_POINTS
  are thinned to every n-th step (both ends kept, at most MLflow's 320 points); non-finite points are left
  out. MLflow's charts read a line's history sampled to 320 evenly spaced points a run (the UI's fixed
  `maxResults` of get-history-bulk-interval), so more points would only be stored, never drawn: each logged
  point is a row its SQL store writes (~0.1 ms of a trial's record, and of a server's CPU).
- A table `profiles.json` (MLflow's `log_table` format: pandas' split orient, listed in the run's
  `mlflow.loggedArtifacts` tag) with one row per probe and t: step, t, log10_grad_h, for MLflow's
  artifact comparison. Written into the trial's artifact folder, so it costs no extra request.
The PNG figures stay (tracking/figures/trial_plots.py).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator, Optional

from workers.values import finite_number

METRIC = "profile/log10_grad_h_by_steps_back"
TABLE = "profiles.json"
LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"   # MLflow's tag listing the tables of a run
MLFLOW_CHART_POINTS = 320     # the points a run's line in MLflow's chart view is sampled to
MAX_POINTS = MLFLOW_CHART_POINTS - 1   # by_steps_back keeps the last point too


def top_layer(probe: dict[str, Any]) -> list[Optional[float]]:
    """log10 ‖∂L_T/∂h_t‖ of the top layer, t = 1..T; None where there is no finite value (a summary from
    before the log profile: from its plain norms, where positive)."""
    layers = probe.get("grad_h_log10")
    if layers:
        return [finite_number(v) for v in layers[-1]]
    layers = probe.get("grad_h_norms") or []
    if not layers:
        return []
    return [math.log10(v) if (v := finite_number(x)) is not None and v > 0 else None for x in layers[-1]]


def by_steps_back(profile: list[Optional[float]],
                  max_points: int = MAX_POINTS) -> Iterator[tuple[int, Optional[float]]]:
    """(k = T − t, value) of a profile over t = 1..T, k = 0 (the loss end) first, thinned to every n-th k so
    that at most `max_points` (+1) remain, both ends kept; None values kept (a figure breaks its line there)."""
    length = len(profile)
    stride = max(1, math.ceil(length / max_points))
    for k in range(length):
        if k % stride == 0 or k == length - 1:
            yield k, profile[length - 1 - k]


def profile_points(summary: dict[str, Any]) -> Iterator[tuple[int, float]]:
    """(k = T − t, log10 value) of the last probe's profile, k = 0 first, thinned to at most MAX_POINTS."""
    probes = [p for p in summary.get("probes") or [] if isinstance(p, dict)]
    if probes:
        yield from ((k, v) for k, v in by_steps_back(top_layer(probes[-1])) if v is not None)


def write_profile_table(summary: dict[str, Any], path: Path) -> Optional[Path]:
    """The per-probe profiles as an MLflow table file; None when there is no probe."""
    rows = []
    for probe in summary.get("probes") or []:
        if not isinstance(probe, dict):
            continue
        for t, value in enumerate(top_layer(probe), start=1):
            rows.append([probe.get("step"), t, value])
    if not rows:
        return None
    Path(path).write_text(json.dumps({"columns": ["step", "t", "log10_grad_h"], "data": rows},
                                     separators=(",", ":"), allow_nan=False), encoding="utf-8")
    return Path(path)


def logged_tables_tag() -> str:
    """The value of `mlflow.loggedArtifacts` for a run that holds the profile table."""
    return json.dumps([{"path": TABLE, "type": "table"}])
