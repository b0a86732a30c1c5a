"""tracking/runs/fresh_connections.py against a real `mlflow server --workers 2` (the configuration whose kept-alive
connections stall, Kludex/uvicorn#3149): with `tracking.keep_alive=false` every request the trial's recorder and
the driver's client send arrives on a connection of its own (a new client port each, in the server's access log);
with true they share kept-alive ones. The stall itself is timed in bench/bench_cluster_trial_cost.py, not here."""
from __future__ import annotations

import re

import pytest
from mlflow import MlflowClient

from testkit.tiny import tiny_trial_config
from tracking.runs import fresh_connections
from tracking.runs.fresh_connections import close_connections
from tracking.runs.study_runs import trial_params
from tracking.runs.trial_recorder import TrialRecorder
from workers.config import to_dict
from workers.trial import run_trial

pytestmark = pytest.mark.mlflow_server

LINE = re.compile(r'127\.0\.0\.1:(?P<port>\d+) - "(?P<method>[A-Z]+) (?P<path>\S+) HTTP')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from testkit.mlflow_server import MlflowServer

    made = MlflowServer(tmp_path_factory.mktemp("mlflow-2-workers"), workers=2)
    try:
        yield made.start()
    finally:
        made.kill()


@pytest.fixture(autouse=True)
def restore():
    saved = fresh_connections._state["close"]
    yield
    close_connections(saved)


def requests_since(server, offset: int) -> tuple[list[tuple[str, str]], int]:
    """(client port, request) of each request the server logged since `offset`; the new offset."""
    text = server.log.read_text(errors="replace")
    return [(m["port"], f'{m["method"]} {m["path"]}') for m in LINE.finditer(text[offset:])], len(text)


def a_trial(server, keep_alive: bool) -> list[tuple[str, str]]:
    """A real tiny trial recorded by its worker's recorder into a run the driver's client created."""
    client = MlflowClient(server.url)
    experiment = client.create_experiment(f"keep-alive-{keep_alive}")
    _, offset = requests_since(server, 0)
    config = tiny_trial_config()
    run_id = client.create_run(experiment).info.run_id
    recorder = TrialRecorder(server.url, run_id, params=trial_params(to_dict(config)), keep_alive=keep_alive)
    run_trial(config, recorder)
    assert recorder.result["delivered"] and recorder.result["artifacts"] and recorder.result["closed"]
    seen, _ = requests_since(server, offset)
    return seen


def test_each_request_has_a_connection_of_its_own_unless_kept_alive(server):
    fresh = a_trial(server, keep_alive=False)
    assert fresh_connections._state["close"] is True
    kinds = {request.split("?")[0].rsplit("/", 1)[-1] for _, request in fresh}
    assert len(fresh) >= 8 and {"log-batch", "log-inputs", "update"} <= kinds, fresh
    assert len({port for port, _ in fresh}) == len(fresh)         # a new connection (port) per request

    kept = a_trial(server, keep_alive=True)
    assert fresh_connections._state["close"] is False
    assert len(kept) == len(fresh)
    assert len({port for port, _ in kept}) < len(kept) - 2          # the same connections again and again


def test_the_driver_s_connection_sets_it_for_a_server_and_leaves_a_local_store_alone(server, tmp_path):
    """`connect` (the driver, `gradstudy report`, `gradstudy ui`): a server's requests close their connections unless
    `keep_alive`; the local SQLite store makes no HTTP request, and its connection changes nothing."""
    from tracking.runs.connection import connect

    close_connections(False)
    connect(server.url, tmp_path)
    assert fresh_connections._state["close"] is True
    connect(server.url, tmp_path, keep_alive=True)
    assert fresh_connections._state["close"] is False
    connect("", tmp_path)
    assert fresh_connections._state["close"] is False
    _, offset = requests_since(server, 0)
    connect(server.url, tmp_path)
    MlflowClient(server.url).search_experiments(max_results=1)
    seen, _ = requests_since(server, offset)
    assert len(seen) == 2 and seen[0][0] != seen[1][0]
