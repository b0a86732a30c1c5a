"""The driver's hooks (study/hooks.py): the no-op base, the fan-out's order and merging, and the one writer
of a trial's folder (workers/summary.py)."""
from __future__ import annotations

import json

import yaml

from study.hooks import Hooks, StudyHooks
from workers.summary import write_trial_folder


class Recorder(StudyHooks):
    def __init__(self, name: str, log: list, code=None, fields=None):
        self.name, self.log, self.code, self.fields = name, log, code, fields or {}

    def start(self, runner, study):
        self.log.append((self.name, "start"))

    def launch(self, trial, config):
        self.log.append((self.name, "launch", trial))
        return self.fields

    def result(self, trial, summary, delivery):
        self.log.append((self.name, "result", summary["status"]))

    def lost(self, frozen, state, reason):
        self.log.append((self.name, "lost", state, reason))

    def end(self, runner, outcome):
        self.log.append((self.name, "end"))
        return self.code


def test_base_hooks_do_nothing():
    h = StudyHooks()
    assert h.launch(None, {}) == {}
    assert h.end(None, None) is None
    assert h.start(None, None) is None and h.result(None, {}, {}) is None and h.lost(None, "failed", "x") is None


def test_fan_out_calls_in_order_merges_job_fields_and_the_first_exit_code_wins():
    log: list = []
    hooks = Hooks([Recorder("nightly", log, code=None, fields={"a": 1}),
                   Recorder("mlflow", log, code=5, fields={"run_id": "r1", "a": 2}),
                   Recorder("third", log, code=7)])
    hooks.start(None, None)
    assert hooks.launch(3, {}) == {"a": 2, "run_id": "r1"}
    hooks.result(3, {"status": "diverged"}, {})
    hooks.lost(3, "requeued", "worker_lost")
    assert hooks.end(None, None) == 5
    assert [entry[0] for entry in log] == ["nightly", "mlflow", "third"] * 5
    assert ("mlflow", "lost", "requeued", "worker_lost") in log
    assert ("third", "result", "diverged") in log
    assert Hooks().end(None, None) is None


def test_trial_folder_writer(tmp_path):
    summary = {"config": {"model": {"cell": "lstm"}}, "status": "completed", "final": {"test_loss": float("nan")}}
    path = write_trial_folder(tmp_path / "t0", summary, [["train/loss", 1.0, 0]])
    assert path == tmp_path / "t0" / "summary.json"
    assert json.loads(path.read_text())["final"]["test_loss"] is None          # NaN is null in JSON
    assert yaml.safe_load((tmp_path / "t0" / "config.yaml").read_text()) == summary["config"]
    assert json.loads((tmp_path / "t0" / "history.json").read_text()) == [["train/loss", 1.0, 0]]
    write_trial_folder(tmp_path / "t1", summary)                                 # no history: no file
    assert sorted(p.name for p in (tmp_path / "t1").iterdir()) == ["config.yaml", "summary.json"]
