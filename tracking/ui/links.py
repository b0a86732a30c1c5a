"""Addresses in the MLflow UI: where a study's trials open as a readable table.

- `ui_address(uri)`: the MLflow UI that shows a store (a tracking server is its own UI; the local store
  is shown by `gradstudy ui`, on 127.0.0.1:5000 unless told another port).
- `trials_query(...)`: the runs page of the study's trials in MLflow's training view
  (`workflowType=machine_learning`: without it MLflow 3.17 opens an experiment on its GenAI pages),
  flat and sorted by the first objective: the seeded view (tracking/ui/view.py) where this MLflow
  version has one, else the same search as plain URL parameters (MLflow applies a saved view only when
  the URL carries no search parameter of its own, so the two are never mixed).
The study's query is kept on its experiment (tag `gradstudy.ui_query`), written when the study starts, so
that `gradstudy ui` needs nothing but the store.
"""
from __future__ import annotations

from urllib.parse import quote, urlencode

from tracking.ui.view import KEY, TRIALS_FILTER, column

LOCAL_UI = "http://127.0.0.1:5000"
QUERY_TAG = "gradstudy.ui_query"
TRAINING_VIEW = {"compareRunsMode": "TABLE", "workflowType": "machine_learning"}


def ui_address(uri: str, port: int | None = None) -> str:
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return f"http://127.0.0.1:{port}" if port else LOCAL_UI


def trials_query(objective: str, direction: str, seeded: bool) -> str:
    """The runs page's query string: `objective` an MLflow metric, `direction` minimize|maximize."""
    if seeded:
        return urlencode({"viewStateShareKey": KEY, **TRAINING_VIEW})
    return urlencode({"searchFilter": TRIALS_FILTER, "orderByKey": column("metrics", objective),
                      "orderByAsc": "true" if direction == "minimize" else "false", "startTime": "ALL",
                      "lifecycleFilter": "Active", **TRAINING_VIEW}, quote_via=quote, safe="")


def trials_url(ui: str, experiment_id: str, query: str | None) -> str:
    """The study's trials; an experiment from before the query was kept opens on its plain runs list."""
    return f"{ui.rstrip('/')}/{trials_path(experiment_id, query)}"


def trials_path(experiment_id: str, query: str | None) -> str:
    """The study's trials, relative to the UI's address (what links inside the UI use)."""
    return f"#/experiments/{experiment_id}/runs?" + (query or urlencode(TRAINING_VIEW))


def runs_charts_path(experiment_id: str, run_ids: list[str]) -> str:
    """The chart view of a few runs only (`attributes.run_id IN (…)`), relative to the UI's address: their
    profiles side by side in their own colours, one click from a description (MLflow's own way there, the
    runs' check boxes then Compare, opens a page without the run colours). Plain URL parameters: MLflow
    then draws its own charts, one per metric, the profile among them."""
    ids = ", ".join(f"'{r}'" for r in run_ids)
    return f"#/experiments/{experiment_id}/runs?" + urlencode(
        {"searchFilter": f"attributes.run_id IN ({ids})", "compareRunsMode": "CHART", "startTime": "ALL",
         "lifecycleFilter": "Active", **{k: v for k, v in TRAINING_VIEW.items() if k != "compareRunsMode"}},
        quote_via=quote, safe="")


def run_path(experiment_id: str, run_id: str, tab: str = "") -> str:
    """A run's page (or its `tab`, e.g. `artifacts/report/report.html`), relative to the UI's address (what
    links inside the UI use), in the training view: MLflow 3.17 keys its mode on `workflowType` in the URL,
    else on the browser's localStorage (`mlflow.workflowType_v1`, set by a click on "Model training"), else
    GenAI, where a run's breadcrumb leads to "Evaluations"; the experiment tag `mlflow.experimentKind` is
    ignored (a feature flag hard-coded on)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}" + (f"/{tab}" if tab else "") + "?" + \
        urlencode({"workflowType": TRAINING_VIEW["workflowType"]})


def run_url(ui: str, experiment_id: str, run_id: str, tab: str = "") -> str:
    return f"{ui.rstrip('/')}/{run_path(experiment_id, run_id, tab)}"
