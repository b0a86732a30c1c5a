"""A seeded view of a study's trials in the MLflow UI: the columns and charts a researcher opens first.

MLflow keeps a "saved view" of its runs page as an experiment tag `mlflow.sharedViewState.<key>`, opened
by `#/experiments/<id>/runs?viewStateShareKey=<key>`. The tag's format is internal to MLflow's UI and
changes between versions: in 3.17 it is a JSON envelope {name, createdAt, updatedAt, state} whose
state is "deflate;" + base64(zlib(JSON of the search facets and UI state)), at most 20,000 characters.
So the view is written only for the MLflow versions it was checked against (`SUPPORTED`, and the
browser test); with any other version the study opens through plain URL parameters
(tracking/ui/links.py), without the seeded columns and charts.

The view of a study:
- the trials only (`tags.gradstudy.role = 'trial'`), flat (not sorted by start time: MLflow nests child
  runs under their parent only then), every row charted (SHOW_ALL);
- sorted by what the study measures: the first objective; in a study measured at initialization
  (`untrained`: train.steps = 0, whose objective is an untrained net's loss) by the decay rate, from the
  most exploding per step to the most vanishing, so the rare healthy and exploding trials come first;
- columns: the sampled keys only (cell, activation, init, λ1 first; a key the whole study shares says
  nothing per row), health, the decay rate (T-free) and the span ratio (what the verdict judged), the
  objectives;
- the columns in that order (`columnOrder`: else MLflow groups them metrics, params, tags and the health
  column falls off-screen) and wide enough for their headers (`columnWidths`);
- charts: the gradient profile `profile/log10_grad_h_by_steps_back` (x = k steps back from the loss:
  profiles of every T line up at the loss end), the first sampled parameter (λ1 when it is sampled)
  against the decay rate and, for a trained study, against the objective; the objective, losses and
  gradient norms on log axes (an exploding trial's 1e13 does not flatten the others); MLflow's own chart of
  every other metric in collapsed sections. MLflow 3.17 ignores chart titles on this page (the metric key
  is the title, so the profile's key says what its x is) and has no log axis on a scatter.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
import zlib
from typing import Any, Iterable

from tracking.figures.profile_records import METRIC as PROFILE_METRIC

KEY = "gradstudy"                        # viewStateShareKey of the study's view
TAG = "mlflow.sharedViewState." + KEY
SUPPORTED = ("3.17.",)                   # MLflow versions whose saved-view format this writes
MAX_TAG = 20_000
TRIALS_FILTER = "tags.`gradstudy.role` = 'trial'"
COLUMNS_FIRST = ("model.cell", "model.activation", "model.init", "model.init_gain")
LOG_CHARTS = ("train/loss", "val/loss", "grad/global_norm", "grad/norm/recurrent", "grad/norm/input",
              "grad/norm/readout", "grad/norm/bias")     # charted here on log y, so MLflow adds no linear ones
# MLflow 3.17 charts every other metric itself, in a section named for the key's prefix (`grad/norm/x` →
# `grad/norm`): declared here collapsed (display: false), so the seeded charts come first and alone
GENERATED_SECTIONS = ("grad", "grad/norm", "weights/lambda1", "weights/spectral_radius", "final", "val", "train",
                      "profile")
NAME_WIDTH, COLUMN_WIDTH = 220, 120     # px: the run name, then every other column (headers not cut)
GRADIENT_COLUMNS = ("grad/decay_rate", "grad/span_ratio")
RATE = "grad/decay_rate"


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


def _parallel(params: list[str], metrics: list[str], section: str, title: str) -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "type": "PARALLEL", "runsCountToCompare": 100, "metricSectionId": section,
            "deleted": False, "isGenerated": False, "displayName": title, "selectedParams": params,
            "selectedMetrics": metrics}


def _section(name: str, display: bool = True) -> dict[str, Any]:
    return {"uuid": str(uuid.uuid4()), "name": name, "display": display, "isReordered": False}


def view_state(objectives: list[tuple[str, str]], sampled: Iterable[str], untrained: bool = False) -> dict[str, Any]:
    """The runs page state. `objectives`: (MLflow metric, "minimize"|"maximize"), first = the sort key of a
    trained study; `sampled`: the study's sampled keys; `untrained`: measured at initialization."""
    sampled = list(sampled)
    first, direction = objectives[0]
    params = [k for k in COLUMNS_FIRST if k in sampled] + [k for k in sampled if k not in COLUMNS_FIRST]
    gradient = [column("metrics", m) for m in GRADIENT_COLUMNS]
    scores = [column("metrics", m) for m, _ in objectives]
    columns = ([column("params", k) for k in params] + [column("tags", "gradstudy.health")]
               + (gradient + scores if untrained else scores + gradient))
    profile, outcome, training = _section("gradient profile"), _section("outcome"), _section("training (log y)")
    charts = [_line(PROFILE_METRIC, profile["uuid"], False,
                    "log10 ‖∂L_T/∂h_(T−k)‖ at the last probe against k, the steps back from the loss")]
    x = "model.init_gain" if "model.init_gain" in sampled else (sampled[0] if sampled else None)
    if x:
        name = "λ1" if x == "model.init_gain" else x
        # the rate is in decades per step already: readable on the scatter's linear axis
        charts.append(_scatter(x, RATE, outcome["uuid"], f"decay rate (decades per step back) against {name}"))
        if not untrained:
            charts.append(_scatter(x, first, outcome["uuid"], f"{first} against {name}"))
    if params:   # set up once here: in MLflow it takes six clicks, lost unless the view is saved over
        charts.append(_parallel(params, [RATE] + ([] if untrained else [first]), outcome["uuid"],
                                "sampled keys → decay rate" + ("" if untrained else f" → {first}")))
    if not untrained:
        charts.append(_line(first, outcome["uuid"], True, f"{first} (log y)"))
        charts += [_line(m, training["uuid"], True) for m in LOG_CHARTS]
    order, ascending = (RATE, False) if untrained else (first, direction == "minimize")
    # MLflow groups columns metrics, params, tags unless told their order: the name, the sampled keys, health
    ordered = [column("attributes", "Run Name")] + columns + ["runDateAndNestInfo", "duration"]   # times last
    sections = [profile, outcome] + ([] if untrained else [training]) + [_section(n, False) for n in GENERATED_SECTIONS]
    return {
        "searchFilter": TRIALS_FILTER, "orderByKey": column("metrics", order), "orderByAsc": ascending,
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs", "datasetsFilter": [],
        "selectedColumns": columns, "runsHiddenMode": "SHOW_ALL",
        "columnOrder": ordered, "columnWidths": {c: NAME_WIDTH if c == ordered[0] else COLUMN_WIDTH for c in ordered},
        "compareRunSections": sections, "compareRunCharts": charts,
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
