"""study/recording/publish.py: the study report published where MLflow shows it. `read_summaries` reads the
summary.json of every finished trial that has one; Publisher writes the report into the data directory and
logs it to the study's parent run with the trial counts (`study/*` metrics), the study's note (the run's
description) and its `best/*` metrics, ending the parent run once no trial is running or waiting.

Against a real local MLflow store (tracking.uri "": SQLite under GRADSTUDY_HOME, one for the module: creating
it is the slow part) and Optuna journal studies there, whose trials were run here (workers.trial.run_trial)
and recorded as the driver records them."""
from __future__ import annotations

import copy
import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.config.compose import compose_root
from study.recording.publish import Publisher, read_summaries
from study.recording.tracked_study import TrackedStudy
from study.records.attrs import StudyAttr, TrialAttr, TrialRecord
from study.storage.backend import open_storage
from study.storage.paths import study_dir, trial_dir
from tracking.runs.names import NOTE_TAG
from tracking.ui.run_look import run_name
from workers.config import from_dict
from workers.reporter import Reporter
from workers.summary import write_summary
from workers.trial import run_trial

TINY = {"task": {"name": "adding", "seq_len": 10, "test_size": 64, "val_size": 32},
        "model": {"hidden_size": 8, "init": "scaled"},
        "train": {"steps": 20, "probe_every": 10, "log_every": 5, "batch_size": 16, "device": "cpu"}}
GAINS = (0.5, 1.0, 3.0)


class StopAt(Reporter):
    def should_stop(self, step):
        return step >= 10


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    """One GRADSTUDY_HOME for the module's tests (each test its own study, experiment and parent run)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("home")
        mp.setenv("GRADSTUDY_HOME", str(path))
        mp.delenv("RAY_ADDRESS", raising=False)
        yield path


@pytest.fixture(scope="module")
def composed(data_home):
    return compose_root(["study.name=published"])


@pytest.fixture(scope="module")
def summaries(data_home) -> list[dict]:
    """Tiny trials at three λ1, then one stopped at a probe (pruned)."""
    runs = []
    for gain in GAINS:
        cfg = copy.deepcopy(TINY)
        cfg["model"]["init_gain"] = gain
        runs.append(run_trial(from_dict(cfg)))
    runs.append(run_trial(from_dict(TINY), StopAt()))
    assert [s["status"] for s in runs] == ["completed"] * 3 + ["pruned"]
    return runs


def recorded(name: str, summaries: list[dict], extra=(), files: bool = True) -> optuna.Study:
    """The trials in the data directory's journal storage under `name`, each with its summary.json in its
    trial folder (as the driver keeps it), then `extra` trials."""
    study = optuna.create_study(study_name=name, storage=open_storage(""))
    study.set_user_attr(StudyAttr.OBJECTIVES, ["final.test_loss"])
    study.set_user_attr(StudyAttr.N_TRIALS, len(summaries))
    dist = {"model.init_gain": CategoricalDistribution(list(GAINS))}
    for number, summary in enumerate(summaries):
        path = trial_dir(name, number) / "summary.json"
        if files:
            write_summary(summary, path)
        pruned = summary["status"] == "pruned"
        study.add_trial(create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else summary["final"]["test_loss"],
            params={"model.init_gain": summary["config"]["model"]["init_gain"]}, distributions=dist,
            user_attrs=TrialRecord.from_summary(summary, str(path)).to_user_attrs()))
    for trial in extra:
        study.add_trial(trial)
    return study


def publisher(name: str, composed) -> Publisher:
    recorder = TrackedStudy("", name).open(composed, {})
    return Publisher(recorder, recorder.uri)


def parent(pub: Publisher):
    return pub.recorder.client.get_run(pub.recorder.parent_id)


def best_of(study: optuna.Study) -> optuna.trial.FrozenTrial:
    return min((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)


def test_read_summaries_of_the_finished_trials_that_have_one(data_home, summaries):
    study = recorded("read", summaries[:2], [create_trial(state=TrialState.FAIL),            # 2: no file
                                            create_trial(state=TrialState.FAIL,              # 3: requeued
                                                         user_attrs={TrialAttr.REQUEUED: True})])
    write_summary(summaries[2], trial_dir("read", 3) / "summary.json")
    running = study.ask()                                                                   # 4: running
    write_summary(summaries[2], trial_dir("read", running.number) / "summary.json")
    found = read_summaries(study)
    assert sorted(found) == [0, 1]              # not the failed one (no file), the requeued or the running
    for number in (0, 1):
        assert found[number]["final"]["test_loss"] == pytest.approx(summaries[number]["final"]["test_loss"])
        assert found[number]["config"] == json.loads(json.dumps(summaries[number]["config"]))
    assert read_summaries(recorded("read-none", summaries[:2], files=False)) == {}


def test_log_counts_puts_trial_states_and_health_mix_on_the_parent_run(data_home, composed, summaries):
    study = recorded("counts", summaries)
    study.ask()                                                  # one running
    pub = publisher("counts", composed)
    pub.log_counts(study)
    metrics = parent(pub).data.metrics
    assert {k: v for k, v in metrics.items() if not k.startswith("study/health/")} == {
        "study/complete": 3, "study/pruned": 1, "study/fail": 0, "study/requeued": 0, "study/running": 1,
        "study/waiting": 0}
    health = [s["health"] for s in summaries]
    assert {k: v for k, v in metrics.items() if k.startswith("study/health/")} == \
        {f"study/health/{v}": health.count(v) for v in set(health)}


def test_describe_writes_the_note_and_the_best_metrics(data_home, composed, summaries):
    study = recorded("described", summaries)
    pub = publisher("described", composed)
    pub.describe(study)                       # nothing gathered beforehand: the summaries are read here
    run = parent(pub)
    best = best_of(study)
    assert run.data.metrics["best/trial"] == best.number
    assert run.data.metrics["best/final/test_loss"] == pytest.approx(best.value)
    note = run.data.tags[NOTE_TAG]
    assert note.startswith("**4 of 4 trials** finished (complete 3 · pruned 1)")
    assert run_name(best.number, summaries[best.number]["config"], ["model.init_gain"]) in note
    assert f"runs/{pub.recorder.parent_id}/artifacts/report/report.html" in note
    experiment = pub.recorder.client.get_experiment(pub.recorder.experiment_id)
    assert experiment.tags[NOTE_TAG] == note.split("\n\n", 1)[0]      # its head: the experiment's description


def test_describe_without_the_best_trials_summary_still_describes(data_home, composed, summaries):
    study = recorded("no-files", summaries, files=False)
    pub = publisher("no-files", composed)
    pub.describe(study, summaries={})
    run = parent(pub)
    assert run.data.tags[NOTE_TAG].startswith("**4 of 4 trials** finished")
    assert "λ1₀=" not in run.data.tags[NOTE_TAG]                     # no config to name the best run from
    assert run.data.metrics["best/trial"] == best_of(study).number


def test_publish_writes_the_report_logs_it_and_ends_the_parent_run(data_home, composed, summaries):
    study = recorded("published", summaries)
    pub = publisher("published", composed)
    html = pub.publish(study)
    assert html == study_dir("published") / "report" / "report.html"
    page = html.read_text()
    assert "published" in page and page.count("data:image/png;base64,") >= 3
    assert {p.name for p in html.parent.glob("*.png")} >= {"health_mix.png", "optimization_history.png",
                                                           "phase_diagram.png"}
    logged = {a.path for a in pub.recorder.client.list_artifacts(pub.recorder.parent_id, "report")}
    assert {f"report/{p.name}" for p in html.parent.iterdir()} == logged
    run = parent(pub)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["study/complete"] == 3 and run.data.metrics["best/trial"] == best_of(study).number
    assert run.data.tags[NOTE_TAG].startswith("**4 of 4 trials** finished")


def test_publish_leaves_the_parent_run_open_while_a_trial_runs(data_home, composed, summaries):
    study = recorded("running", summaries[:2])
    study.ask()
    pub = publisher("running", composed)
    pub.publish(study)
    assert parent(pub).info.status == "RUNNING"
    assert parent(pub).data.metrics["study/running"] == 1


def test_log_comparison_puts_the_nightly_comparison_on_the_parent_run(data_home, composed, tmp_path):
    pub = publisher("nightly", composed)
    comparison = {"regressed": True, "regressions": ["rnn: worse", "lstm: worse"],
                  "failures": {"previous": 0, "current": 3}, "diverged_fraction": {"previous": 0.0, "current": 0.25}}
    pub.log_comparison(comparison)
    metrics = parent(pub).data.metrics
    assert metrics == {"nightly/regressed": 1.0, "nightly/regressions": 2.0, "nightly/failures": 3.0,
                       "nightly/diverged_fraction": 0.25}
    got = pub.recorder.client.download_artifacts(pub.recorder.parent_id, "nightly/comparison.json", str(tmp_path))
    assert json.loads(open(got).read()) == comparison
