"""The MLflow UI addresses and the seeded view of a study, without a server (the browser test opens them)."""
from __future__ import annotations

import json
import os
import urllib.parse

import pytest

from tracking.ui import links as ui_links
from tracking.ui import view as ui_view


def charts_of(state) -> list[tuple]:
    sections = {s["uuid"]: s["name"] for s in state["compareRunSections"]}
    def keys(c):
        if c["type"] == "PARALLEL":
            return tuple(c["selectedParams"]), tuple(c["selectedMetrics"])
        return c.get("metricKey") or (c["xaxis"]["key"], c["yaxis"]["key"])
    return [(c["type"], sections[c["metricSectionId"]], keys(c), c.get("scaleType")) for c in state["compareRunCharts"]]


def test_view_state_lists_the_columns_charts_and_sort_of_a_study():
    state = ui_view.view_state([("final/test_loss", "minimize"), ("final/accuracy", "maximize")],
                               ["train.lr", "model.init_gain", "model.activation"])
    assert state["searchFilter"] == "tags.`gradstudy.role` = 'trial'"
    assert state["orderByKey"] == "metrics.`final/test_loss`" and state["orderByAsc"] is True
    assert state["runsHiddenMode"] == "SHOW_ALL"                 # every trial charted, not the first 10
    # the sampled keys only (what the whole study shares says nothing per row), cell/activation/init/λ1 first
    assert state["selectedColumns"] == [
        "params.`model.activation`", "params.`model.init_gain`", "params.`train.lr`", "tags.`gradstudy.health`",
        "metrics.`final/test_loss`", "metrics.`final/accuracy`", "metrics.`grad/decay_rate`",
        "metrics.`grad/span_ratio`"]
    charts = charts_of(state)
    assert charts == [
        ("LINE", "gradient profile", "profile/log10_grad_h_by_steps_back", "linear"),   # decades: may be negative
        ("SCATTER", "outcome", ("model.init_gain", "grad/decay_rate"), None),
        ("SCATTER", "outcome", ("model.init_gain", "final/test_loss"), None),
        ("PARALLEL", "outcome", (("model.activation", "model.init_gain", "train.lr"),
                                 ("grad/decay_rate", "final/test_loss")), None),
        ("LINE", "outcome", "final/test_loss", "log"),
        ("LINE", "training (log y)", "train/loss", "log"),
        ("LINE", "training (log y)", "val/loss", "log"),
        ("LINE", "training (log y)", "grad/global_norm", "log"),
        ("LINE", "training (log y)", "grad/norm/recurrent", "log"),
        ("LINE", "training (log y)", "grad/norm/input", "log"),
        ("LINE", "training (log y)", "grad/norm/readout", "log"),
        ("LINE", "training (log y)", "grad/norm/bias", "log")]
    assert len({c["uuid"] for c in state["compareRunCharts"]}) == len(charts)
    # the displayed column order (MLflow would group metrics, params, tags) and widths
    assert state["columnOrder"] == ["attributes.`Run Name`", *state["selectedColumns"], "runDateAndNestInfo",
                                    "duration"]
    assert (state["columnWidths"]["attributes.`Run Name`"] == 220
            and state["columnWidths"]["tags.`gradstudy.health`"] == 120)
    # MLflow's own charts of the other metrics land in declared, collapsed sections after ours
    sections = [(s["name"], s["display"]) for s in state["compareRunSections"]]
    assert sections[:3] == [("gradient profile", True), ("outcome", True), ("training (log y)", True)]
    assert ("grad/norm", False) in sections and ("weights/lambda1", False) in sections
    maximize = ui_view.view_state([("final/accuracy", "maximize")], [])
    assert maximize["orderByAsc"] is False
    assert [c["type"] for c in maximize["compareRunCharts"]].count("SCATTER") == 0   # nothing sampled


def test_a_study_at_initialization_is_sorted_and_charted_by_its_decay_rate():
    """train.steps = 0: the objective is an untrained net's loss; the decay rate (T-free) sorts, from the
    most exploding per step to the most vanishing, and no training chart is seeded."""
    state = ui_view.view_state([("final/test_loss", "minimize")], ["model.init_gain", "model.cell", "task.seq_len"],
                               untrained=True)
    assert state["orderByKey"] == "metrics.`grad/decay_rate`" and state["orderByAsc"] is False
    assert state["selectedColumns"] == [
        "params.`model.cell`", "params.`model.init_gain`", "params.`task.seq_len`", "tags.`gradstudy.health`",
        "metrics.`grad/decay_rate`", "metrics.`grad/span_ratio`", "metrics.`final/test_loss`"]
    assert charts_of(state) == [
        ("LINE", "gradient profile", "profile/log10_grad_h_by_steps_back", "linear"),
        ("SCATTER", "outcome", ("model.init_gain", "grad/decay_rate"), None),
        ("PARALLEL", "outcome", (("model.cell", "model.init_gain", "task.seq_len"), ("grad/decay_rate",)), None)]


def test_the_view_tag_round_trips_and_respects_the_tag_limit():
    state = ui_view.view_state([("final/test_loss", "minimize")], ["model.init_gain"])
    value = ui_view.encode("study demo", state, now_ms=1234)
    envelope = json.loads(value)
    assert envelope["name"] == "study demo" and envelope["createdAt"] == envelope["updatedAt"] == 1234
    assert envelope["state"].startswith("deflate;")
    assert ui_view.decode(value) == state
    assert len(value) < ui_view.MAX_TAG
    with pytest.raises(ValueError, match="at most 20000"):      # incompressible: over MLflow's tag limit
        ui_view.encode("x", {**state, "noise": os.urandom(20_000).hex()})


def test_the_view_is_written_only_for_the_mlflow_versions_it_was_checked_against():
    import mlflow

    assert ui_view.supported("3.17.2") and ui_view.supported("3.17.0")
    assert not ui_view.supported("3.18.0") and not ui_view.supported("2.17.1")
    assert ui_view.supported() == mlflow.__version__.startswith("3.17.")


def test_links_land_on_the_trials_in_the_training_view():
    seeded = ui_links.trials_query("final/test_loss", "minimize", seeded=True)
    assert dict(urllib.parse.parse_qsl(seeded)) == {"viewStateShareKey": "gradstudy", "compareRunsMode": "TABLE",
                                                    "workflowType": "machine_learning"}
    plain = dict(urllib.parse.parse_qsl(ui_links.trials_query("final/accuracy", "maximize", seeded=False)))
    assert plain["searchFilter"] == "tags.`gradstudy.role` = 'trial'"
    assert plain["orderByKey"] == "metrics.`final/accuracy`" and plain["orderByAsc"] == "false"
    assert plain["workflowType"] == "machine_learning" and "viewStateShareKey" not in plain   # never mixed
    assert ui_links.trials_url("http://h:1/", "4", seeded) == f"http://h:1/#/experiments/4/runs?{seeded}"
    assert ui_links.trials_url("http://h:1", "4", None).endswith(
        "/runs?compareRunsMode=TABLE&workflowType=machine_learning")
    assert ui_links.ui_address("https://mlflow.lab:443/") == "https://mlflow.lab:443"
    assert ui_links.ui_address("sqlite:////x/mlflow.db") == "http://127.0.0.1:5000"
    assert ui_links.ui_address("", port=5099) == "http://127.0.0.1:5099"
