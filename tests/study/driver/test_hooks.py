"""The driver's hooks (study/driver/hooks.py): the no-op base, the fan-out's order and merging, and the one writer
of a trial's folder (workers/summary.py)."""
from __future__ import annotations

import json

import yaml

from study.driver.hooks import HookList, StudyHook
from study.driver.progress import Progress
from workers.summary import write_trial_folder


class Recorder(StudyHook):
    def __init__(self, name: str, log: list, code=None, fields=None):
        self.name, self.log, self.code, self.fields = name, log, code, fields or {}

    def on_start(self, study):
        self.log.append((self.name, "start"))

    def on_progress(self, progress):
        self.log.append((self.name, "progress", progress.done))

    def on_launch(self, trial, config):
        self.log.append((self.name, "launch", trial))
        return self.fields

    def on_result(self, trial, summary, delivery):
        self.log.append((self.name, "result", summary["status"]))

    def on_lost(self, frozen, state, reason):
        self.log.append((self.name, "lost", state, reason))

    def on_end(self, outcome):
        self.log.append((self.name, "end"))
        return self.code


def test_base_hooks_do_nothing():
    h = StudyHook()
    assert h.on_launch(None, {}) == {}
    assert h.on_end(None) is None
    assert h.on_start(None) is None and h.on_result(None, {}, {}) is None and h.on_lost(None, "failed", "x") is None
    assert h.on_progress(Progress(total=1)) is None


def test_fan_out_calls_in_order_merges_job_fields_and_the_first_exit_code_wins():
    log: list = []
    hooks = HookList([Recorder("nightly", log, code=None, fields={"a": 1}),
                      Recorder("mlflow", log, code=5, fields={"run_id": "r1", "a": 2}),
                      Recorder("third", log, code=7)])
    hooks.on_start(None)
    hooks.on_progress(Progress(total=4, done=2))
    assert hooks.on_launch(3, {}) == {"a": 2, "run_id": "r1"}
    hooks.on_result(3, {"status": "diverged"}, {})
    hooks.on_lost(3, "requeued", "worker_lost")
    assert hooks.on_end(None) == 5
    assert [entry[0] for entry in log] == ["nightly", "mlflow", "third"] * 6
    assert ("mlflow", "lost", "requeued", "worker_lost") in log
    assert ("third", "result", "diverged") in log and ("nightly", "progress", 2) in log
    assert HookList().on_end(None) is None


def test_trial_folder_writer(tmp_path):
    summary = {"config": {"model": {"cell": "lstm"}}, "status": "completed", "final": {"test_loss": float("nan")}}
    path = write_trial_folder(tmp_path / "t0", summary, [["train/loss", 1.0, 0]])
    assert path == tmp_path / "t0" / "summary.json"
    assert json.loads(path.read_text())["final"]["test_loss"] is None          # NaN is null in JSON
    assert yaml.safe_load((tmp_path / "t0" / "config.yaml").read_text()) == summary["config"]
    assert json.loads((tmp_path / "t0" / "history.json").read_text()) == [["train/loss", 1.0, 0]]
    write_trial_folder(tmp_path / "t1", summary)                                 # no history: no file
    assert sorted(p.name for p in (tmp_path / "t1").iterdir()) == ["config.yaml", "summary.json"]
