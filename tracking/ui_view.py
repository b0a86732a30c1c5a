"""A seeded view of a study's trials in the MLflow UI: the columns and charts a researcher opens first.

MLflow keeps a "saved view" of its runs page as an experiment tag `mlflow.sharedViewState.<key>`, opened
by `#/experiments/<id>/runs?viewStateShareKey=<key>`. The tag's format is internal to MLflow's UI and
changes between versions: in 3.17 it is a JSON envelope {name, createdAt, updatedAt, state} whose
state is "deflate;" + base64(zlib(JSON of the search facets and UI state)), at most 20,000 characters.
So the view is written only for the MLflow versions it was checked against (`SUPPORTED`, and the
browser test); with any other version the study opens through plain URL parameters
(tracking/ui_links.py), without the seeded columns and charts.

The view of a study:
- the trials only (`tags.gradstudy.role = 'trial'`), flat (sorted by the first objective: MLflow nests
  child runs under their parent only when sorted by start time), every row charted (SHOW_ALL);
- columns: dataset, cell, init, activation, λ1 (`model.init_gain`), other sampled keys, health, the
  objectives, the last vanishing ratio;
- charts: the gradient profile `profile/log10_grad_h` over t (one line per trial), the first sampled
  parameter (λ1 when it is sampled) against the last vanishing ratio and against the objective (MLflow's
  scatter has no log axis), the objective, losses and gradient norms on log axes
  (an exploding trial's 1e13 does not flatten the others). MLflow adds a chart of its own for every
  other metric.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
import zlib
from typing import Any, Iterable

KEY = "gradstudy"                        # viewStateShareKey of the study's view
TAG = "mlflow.sharedViewState." + KEY
SUPPORTED = ("3.17.",)                   # MLflow versions whose saved-view format this writes
MAX_TAG = 20_000
TRIALS_FILTER = "tags.`gradstudy.role` = 'trial'"
COLUMNS_FIRST = ("model.cell", "model.init", "model.activation", "model.init_gain")
LOG_CHARTS = ("train/loss", "val/loss", "grad/global_norm")


def supported(version: str | None = None) -> bool:
    if version is None:
        import mlflow

        version = mlflow.__version__
    return version.startswith(SUPPORTED)


def column(kind: str, name: str) -> str:
    """MLflow's column key: params.`model.cell`, metrics.`final/test_loss`, attributes.`Dataset`."""
    return f"{kind}.`{name}`"


def _line(metric: str, section: str, log_y: bool, title: str | None = None) -> dict[str, Any]:
    chart = {"uuid": str(uuid.uuid4()), "type": "LINE", "runsCountToCompare": 100, "metricSectionId": section,
             "deleted": False, "isGenerated": False, "metricKey": metric, "selectedMetricKeys": [metric],
             "lineSmoothness": 0, "xAxisScaleType": "linear", "scaleType": "log" if log_y else "linear",
             "range": {}, "xAxisKey": "step", "selectedXAxisMetricKey": "", "yAxisKey": "metric",
             "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": False,
             "useGlobalLineSmoothing": True}
    if title:
        chart["displayName"] = title
    return chart


def _scatter(param: str, metric: str, section: str, title: str) -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "type": "SCATTER", "runsCountToCompare": 100, "metricSectionId": section,
            "deleted": False, "isGenerated": False, "displayName": title,
            "xaxis": {"key": param, "type": "PARAM"}, "yaxis": {"key": metric, "type": "METRIC"}}


def _section(name: str) -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "name": name, "display": True, "isReordered": False}


def view_state(objectives: list[tuple[str, str]], sampled: Iterable[str]) -> dict[str, Any]:
    """The runs page state. `objectives`: (MLflow metric, "minimize"|"maximize"), first = the sort key;
    `sampled`: the study's sampled keys."""
    sampled = list(sampled)
    first, direction = objectives[0]
    params = [k for k in COLUMNS_FIRST] + [k for k in sampled if k not in COLUMNS_FIRST]
    columns = ([column("attributes", "Dataset")] + [column("params", k) for k in params]
               + [column("tags", "gradstudy.health")] + [column("metrics", m) for m, _ in objectives]
               + [column("metrics", "grad/vanishing_ratio")])
    profile, outcome, training = _section("gradient profile"), _section("outcome"), _section("training (log y)")
    charts = [_line("profile/log10_grad_h", profile["uuid"], False,
                    "log10 ‖∂L/∂h_t‖ at the last probe, x = timestep t")]
    x = "model.init_gain" if "model.init_gain" in sampled else (sampled[0] if sampled else None)
    if x:
        name = "λ1" if x == "model.init_gain" else x
        # the ratio is in decades already: readable on the scatter's linear axis, unlike an exploding loss
        charts.append(_scatter(x, "grad/vanishing_ratio", outcome["uuid"], f"last vanishing ratio against {name}"))
        charts.append(_scatter(x, first, outcome["uuid"], f"{first} against {name}"))
    charts.append(_line(first, outcome["uuid"], True, f"{first} (log y)"))
    charts += [_line(m, training["uuid"], True) for m in LOG_CHARTS]
    return {
        "searchFilter": TRIALS_FILTER, "orderByKey": column("metrics", first), "orderByAsc": direction == "minimize",
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs", "datasetsFilter": [],
        "selectedColumns": columns, "runsHiddenMode": "SHOW_ALL",
        "compareRunSections": [profile, outcome, training], "compareRunCharts": charts,
        "isAccordionReordered": True, "hideEmptyCharts": True, "useGroupedValuesInCharts": True, "groupBy": None,
        "viewMaximized": False, "runListHidden": False,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }


def encode(name: str, state: dict[str, Any], now_ms: int | None = None) -> str:
    """The tag value MLflow 3.17's UI reads; ValueError if it would pass MLflow's tag limit."""
    packed = "deflate;" + base64.b64encode(zlib.compress(json.dumps(state, separators=(",", ":")).encode())).decode()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    value = json.dumps({"name": name, "createdAt": now, "updatedAt": now, "state": packed})
    if len(value) > MAX_TAG:
        raise ValueError(f"the seeded view is {len(value)} characters; MLflow keeps at most {MAX_TAG}")
    return value


def decode(value: str) -> dict[str, Any]:
    """The state inside a tag value written by `encode` (for tests and checks)."""
    packed = json.loads(value)["state"]
    assert packed.startswith("deflate;")
    return json.loads(zlib.decompress(base64.b64decode(packed[len("deflate;"):])))
