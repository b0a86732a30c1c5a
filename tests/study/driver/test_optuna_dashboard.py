"""A study in optuna-dashboard: a real `gradstudy run` writes the local journal file, a real
`optuna-dashboard <journal> --host 127.0.0.1 --port <free>` process serves it, and its JSON API (the routes
of optuna_dashboard/_app.py 0.21.0: GET /api/studies, GET /api/studies/<id>) shows the study with its
objective named as gradstudy names it (`study.set_metric_names` in study/driver/runner.py), its trials' states
and parameters, and the `gradstudy.*` attributes of the study and of each trial.

The dashboard is stopped by its pid (its own process group), whatever the test does.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import optuna
import pytest

from testkit import tiny
from testkit.mlflow_server import free_port
from testkit.processes import REPO, kill_process_group

STUDY = "dash"
TINY = [*tiny.TINY, "train.steps=4", "train.probe_every=2", "task.seq_len=5", "model.hidden_size=4", "study.n_trials=2",
        f"study.name={STUDY}"]       # the tiny trial, tinier
DASHBOARD = Path(sys.executable).parent / "optuna-dashboard"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never through a proxy


def get_json(url: str):
    with DIRECT.open(url, timeout=5) as r:
        assert r.status == 200, url
        return json.loads(r.read())


def answers(url: str) -> bool:
    try:
        get_json(url)
        return True
    except (OSError, ValueError):
        return False


class Dashboard:
    """A real optuna-dashboard on 127.0.0.1 over `storage`, its output in `log`."""

    def __init__(self, storage: str, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        runtime = log.parent / "run"      # gunicorn's control socket here, not in ~/.gunicorn
        runtime.mkdir(exist_ok=True)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([str(DASHBOARD), storage, "--host", "127.0.0.1", "--port", str(self.port)],
                                         cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def wait(self, timeout: float = 60) -> "Dashboard":
        deadline = time.monotonic() + timeout
        while not answers(f"{self.url}/api/meta"):
            assert self.proc.poll() is None, (f"optuna-dashboard exited ({self.proc.returncode}):\n"
                                              f"{self.log.read_text()}")
            assert time.monotonic() < deadline, (f"optuna-dashboard did not answer in {timeout:.0f} s:\n"
                                                 f"{self.log.read_text()}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after 10 s (kill_process_group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                kill_process_group(self.proc)


@pytest.fixture
def dashboards():
    started: list[Dashboard] = []

    def start(storage: str, log: Path) -> Dashboard:
        started.append(Dashboard(storage, log))
        return started[-1]

    yield start
    for d in started:
        d.stop()


def by_key(attrs: list[dict]) -> dict[str, str]:
    return {a["key"]: a["value"] for a in attrs}


@pytest.mark.slow
@pytest.mark.ray          # `gradstudy run` in this process, on the session's local Ray
@pytest.mark.timeout(300)
@pytest.mark.skipif(not DASHBOARD.exists(), reason="optuna-dashboard is in the `test` extra: make setup")
def test_the_dashboard_shows_the_study_its_named_objective_trials_and_attributes(home, ray_session, tmp_path,
                                                                                 dashboards):
    from study import cli
    from study.storage.backend import journal_path, open_storage

    assert cli.main(["run", *TINY]) == 0
    journal = journal_path()
    assert journal == home / "optuna" / "journal.log" and journal.is_file()
    study = optuna.load_study(study_name=STUDY, storage=open_storage(""))
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2

    dashboard = dashboards(str(journal), tmp_path / "dashboard.log").wait()
    listed = get_json(f"{dashboard.url}/api/studies")["study_summaries"]
    ours = [s for s in listed if s["study_name"] == STUDY]
    assert len(ours) == 1, listed
    summary = ours[0]
    assert summary["directions"] == ["minimize"]
    assert by_key(summary["user_attrs"])["gradstudy.objectives"] == json.dumps(["final.test_loss"])

    detail = get_json(f"{dashboard.url}/api/studies/{summary['study_id']}")
    assert detail["name"] == STUDY
    assert detail.get("objective_names") == ["final.test_loss"], sorted(detail)   # not "Objective 0"
    shown = {t["number"]: t for t in detail["trials"]}
    assert sorted(shown) == [t.number for t in trials]
    for t in trials:
        row = shown[t.number]
        assert row["state"] == t.state.name.capitalize() == "Complete"
        assert {p["name"]: p["param_external_value"] for p in row["params"]} == \
            {k: str(v) for k, v in t.params.items()}
        assert set(t.params) == {"model.init_gain", "model.activation"}
        assert row["values"] == pytest.approx(t.values)
        attrs = by_key(row["user_attrs"])
        gradstudy = {k for k in t.user_attrs if k.startswith("gradstudy.")}
        assert {"gradstudy.health", "gradstudy.cell"} <= gradstudy <= set(attrs)
        assert attrs["gradstudy.health"] == t.user_attrs["gradstudy.health"]
        assert attrs["gradstudy.cell"] == "rnn"
    assert {a["key"] for a in detail["union_user_attrs"]} >= {"gradstudy.health", "gradstudy.cell"}


def test_a_study_gets_its_objective_names_when_opened_again_and_without_a_warning(home):
    """A study from before the names (created without them) gets them at its next run or resume; several
    objectives are named in order; Optuna's ExperimentalWarning is not shown."""
    from study.config.compose import compose_root
    from study.driver.runner import StudyRunner
    from study.storage.backend import open_storage

    two = ["experiment=demo", "study.name=older", "study.pruner=none",
           "study.objectives=[{metric:final.test_loss,direction:minimize},{metric:final.seq_per_s,direction:maximize}]"]
    storage = open_storage("")
    optuna.create_study(study_name="older", storage=storage, directions=["minimize", "maximize"])
    assert optuna.load_study(study_name="older", storage=storage).metric_names is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = StudyRunner(compose_root(two)).open_study(storage)
    assert study.metric_names == ["final.test_loss", "final.seq_per_s"]
    assert optuna.load_study(study_name="older", storage=open_storage("")).metric_names == \
        ["final.test_loss", "final.seq_per_s"]
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)], \
        [str(w.message) for w in caught]
