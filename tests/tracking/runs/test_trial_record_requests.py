"""tracking/runs/trial_recorder.py: what a short trial sends from its worker (docs/mlflow.md, "Requests per
trial"): its params, metrics and closing tags in one log-batch, its artifact files into the artifact location the
driver gave (no lookup of the run), its status last; and the same record as when the driver logged the params
itself. A real trial, a real local MLflow store; the client's calls are counted on the recorder's own client."""
from __future__ import annotations

import collections

import pytest
from mlflow import MlflowClient
from mlflow.entities import Param

from testkit.tiny import tiny_trial_config
from tracking.runs.connection import resolve_uri
from tracking.runs.study_runs import trial_params
from tracking.runs.trial_recorder import TrialRecorder
from workers.config import to_dict
from workers.trial import run_trial


def counted(recorder: TrialRecorder) -> collections.Counter:
    """The calls the recorder makes on its client, by name."""
    calls: collections.Counter = collections.Counter()
    for name in ("log_batch", "log_inputs", "log_artifacts", "set_terminated", "get_run", "set_tag"):
        method = getattr(recorder.client, name)

        def wrapper(*args, _method=method, _name=name, **kwargs):
            calls[_name] += 1
            return _method(*args, **kwargs)

        setattr(recorder.client, name, wrapper)
    return calls


@pytest.fixture(scope="module")
def config():
    return tiny_trial_config()


def record(tmp_path, config, with_params: bool) -> tuple[MlflowClient, str, collections.Counter]:
    uri = resolve_uri("", tmp_path)
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("e"))
    params = trial_params(to_dict(config))
    if not with_params:      # as the back-fill does: the params logged before the worker starts
        client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    recorder = TrialRecorder(uri, run.info.run_id, params=params if with_params else None,
                             artifact_uri=run.info.artifact_uri if with_params else "")
    calls = counted(recorder)
    run_trial(config, recorder)
    assert recorder.result["delivered"] and recorder.result["artifacts"] and recorder.result["closed"]
    return client, run.info.run_id, calls


def test_a_short_trial_sends_one_batch_its_files_and_its_status(tmp_path, config):
    client, run_id, calls = record(tmp_path, config, with_params=True)
    assert calls == {"log_batch": 1, "log_inputs": 1, "set_terminated": 1}, calls     # no get_run, no set_tag
    run = client.get_run(run_id)
    assert run.data.params == trial_params(to_dict(config))
    assert run.info.status == "FINISHED" and run.data.tags["gradstudy.state"] == "completed"
    assert "final/test_loss" in run.data.metrics and run.data.tags["mlflow.note.content"]
    files = {f.path for f in client.list_artifacts(run_id)}
    assert {"summary.json", "config.yaml", "profiles.json", "probes.csv", "gradient_profile.svg"} <= files


def test_the_record_is_the_same_as_with_the_params_logged_by_the_driver(tmp_path, config):
    new_client, new_id, _ = record(tmp_path / "worker", config, with_params=True)
    old_client, old_id, _ = record(tmp_path / "driver", config, with_params=False)
    new, old = new_client.get_run(new_id), old_client.get_run(old_id)
    assert new.data.params == old.data.params
    assert set(new.data.tags) == set(old.data.tags)
    assert set(new.data.metrics) == set(old.data.metrics)
    assert {f.path for f in new_client.list_artifacts(new_id)} == {f.path for f in old_client.list_artifacts(old_id)}
    assert new.info.status == old.info.status == "FINISHED"
