"""tracking/runs/run_end.py: closing a trial's child run in a real local MLflow store (SQLite): the state,
health, span and reason tags (the reason's password masked, its length capped), the run's colour (the health's,
or the one given) and the MLflow status of each trial state."""
from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tracking.figures.colours import HEALTH_COLOURS, OTHER_COLOUR
from tracking.runs import names
from tracking.runs.run_end import STATUS, end_trial_run
from tracking.ui.run_look import COLOUR_TAG


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> MlflowClient:
    """One store for the module (creating its tables takes seconds); each test opens its own runs."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return MlflowClient(tracking_uri=f"sqlite:///{db}")


@pytest.fixture
def new_run(client, request):
    experiment = client.create_experiment(request.node.name)

    def make() -> str:
        return client.create_run(experiment).info.run_id

    return make


def test_a_completed_trial(client, new_run):
    run_id = new_run()
    end_trial_run(client, run_id, "completed", health="vanishing", span=150.0,
                  extra_tags={"gradstudy.cell": "gru"})
    run = client.get_run(run_id)
    tags = run.data.tags
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert tags[names.TAG_STATE] == "completed" and tags[names.TAG_HEALTH] == "vanishing"
    assert tags[names.TAG_SPAN] == "150"                        # an int, not "150.0"
    assert tags[COLOUR_TAG] == HEALTH_COLOURS["vanishing"] and tags["gradstudy.cell"] == "gru"
    assert names.TAG_FAIL_REASON not in tags and names.TAG_PRUNE_REASON not in tags


@pytest.mark.parametrize("state,status", [("completed", "FINISHED"), ("diverged", "FINISHED"), ("pruned", "KILLED"),
                                          ("failed", "FAILED"), ("requeued", "FAILED"), ("what", "FAILED")])
def test_each_state_maps_to_its_mlflow_status(client, new_run, state, status):
    run_id = new_run()
    end_trial_run(client, run_id, state)
    run = client.get_run(run_id)
    assert run.info.status == status and run.data.tags[names.TAG_STATE] == state
    assert STATUS.get(state, "FAILED") == status


def test_no_health_no_span_grey(client, new_run):
    run_id = new_run()
    end_trial_run(client, run_id, "failed")
    tags = client.get_run(run_id).data.tags
    assert tags[COLOUR_TAG] == OTHER_COLOUR
    assert names.TAG_HEALTH not in tags and names.TAG_SPAN not in tags


def test_a_given_colour_wins_over_the_health(client, new_run):
    run_id = new_run()
    end_trial_run(client, run_id, "completed", health="exploding", colour="#123456")
    tags = client.get_run(run_id).data.tags
    assert tags[COLOUR_TAG] == "#123456" and tags[names.TAG_HEALTH] == "exploding"


def test_failure_reason_masked_and_capped(client, new_run):
    run_id = new_run()
    reason = "cannot reach postgresql://optuna:hunter2@db:5432/s " + "x" * 6000
    end_trial_run(client, run_id, "failed", reason=reason)
    tags = client.get_run(run_id).data.tags
    got = tags[names.TAG_FAIL_REASON]
    assert got.startswith("cannot reach postgresql://optuna:***@db:5432/s x") and "hunter2" not in got
    assert len(got) == 5000 and names.TAG_PRUNE_REASON not in tags


def test_a_pruned_trial_gets_a_prune_reason(client, new_run):
    run_id = new_run()
    end_trial_run(client, run_id, "pruned", health="exploding", reason="worse than the median at step 200")
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags[names.TAG_PRUNE_REASON] == "worse than the median at step 200"
    assert names.TAG_FAIL_REASON not in run.data.tags
