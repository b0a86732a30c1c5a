"""The scheduled nightly study (`gradstudy nightly`, study/cli/nightly.py and `_nightly` in study/cli/main.py), for
real: the real CLI entry point (`study.cli.main.main`, in this process on the session's local Ray, or as a
`gradstudy` subprocess where two drivers must race), the real Optuna journal under a per-test
GRADSTUDY_HOME, the real MLflow SQLite store where tracking is on. No mocks.

Covers: the name `nightly-<date>` and idempotence (a second run of the same date adds nothing); the
one-driver lock (exit 3 at once); the comparison with the previous night and its exit code 5, written to
comparison.json, the MLflow parent run and the study report; the regression rule itself on hand-built
in-memory studies; the wall-clock budget (exit 4: in-flight trials recorded FAIL `budget`, re-queued, and
finished by a re-run of the same date).
"""
from __future__ import annotations

import json
import math
import re
import time
from datetime import date
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from study import cli
from study.cli import nightly
from study.cli.exit_codes import Exit
from study.config.schema import NightlyConfig
from study.records import results
from study.storage.backend import open_storage
from testkit.processes import wait_until

# Tiny trials: an 8-unit net on the adding problem with T = 10, 30 steps probed every 10, on the
# session's local Ray (2 CPUs), without MLflow.
TINY = ["train.steps=30", "train.probe_every=10", "task.seq_len=10", "model.hidden_size=8",
        "cluster.num_cpus=2", "tracking.enabled=false"]
# The random sampler (seed 0) gives every night the same trial parameters (TPE's choice after its startup
# trial depends on which concurrent trial finished first), so two normal nights are like for like.
SAME_EACH_NIGHT = ["study.sampler=random", "study.n_trials=3"]


# ----------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def run_nightly(home, ray_session, capsys, monkeypatch):
    """`run_nightly(date, *overrides)` → (exit code, stdout, stderr) of `gradstudy nightly` run in this
    process (the local Ray is started once and shared), output captured; rich renders 200 columns wide
    so a message is not wrapped mid-line."""
    monkeypatch.setenv("COLUMNS", "200")

    def run(day: str, *overrides: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["nightly", "--date", day, *overrides])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def journal(home: Path) -> optuna.storages.BaseStorage:
    return open_storage(str(home / "optuna" / "journal.log"))


def load(home: Path, name: str) -> optuna.Study | None:
    path = home / "optuna" / "journal.log"
    if not path.exists():
        return None
    try:
        return optuna.load_study(study_name=name, storage=journal(home))
    except KeyError:
        return None


def states(trials) -> list[tuple[int, str]]:
    return [(t.number, t.state.name) for t in trials]


# ----------------------------------------------------------------------------------------------------
# 1. Naming and idempotence


def test_nightly_name_and_bad_date(run_nightly, home):
    assert nightly.nightly_name("nightly", date(2026, 1, 5)) == "nightly-2026-01-05"
    code, out, err = run_nightly("2026-13-45", *TINY)
    assert code == Exit.CONFIG, (out, err)
    assert "--date" in err and "YYYY-MM-DD" in err, err
    assert load(home, "nightly-2026-13-45") is None


@pytest.mark.timeout(300)
def test_default_date_is_today_utc_and_the_prefix_is_study_name(home, ray_session, capsys):
    before = nightly.today_utc()
    assert cli.main(["nightly", *TINY, "study.n_trials=1", "study.name=smoke"]) == 0, capsys.readouterr()
    after = nightly.today_utc()
    names = optuna.get_all_study_names(journal(home))
    assert names in ([f"smoke-{before:%Y-%m-%d}"], [f"smoke-{after:%Y-%m-%d}"]), names
    assert len(load(home, names[0]).trials) == 1


@pytest.mark.timeout(300)
def test_same_date_twice_is_one_study_and_adds_no_trial(run_nightly, home):
    day, n = "2026-11-19", 3
    code, out, err = run_nightly(day, *TINY, f"study.n_trials={n}")
    assert code == 0, out + err
    assert "nothing to compare with" in out, out
    assert optuna.get_all_study_names(journal(home)) == [f"nightly-{day}"]
    first = load(home, f"nightly-{day}").get_trials(deepcopy=False)
    assert len(first) == n and all(t.state == TrialState.COMPLETE for t in first), states(first)
    assert len(results.finished(first)) == n

    code, out, err = run_nightly(day, *TINY, f"study.n_trials={n}")
    assert code == 0, out + err
    assert optuna.get_all_study_names(journal(home)) == [f"nightly-{day}"]
    second = load(home, f"nightly-{day}").get_trials(deepcopy=False)
    assert [(t.number, t.state, t.params, t.values, t.datetime_complete) for t in second] == \
           [(t.number, t.state, t.params, t.values, t.datetime_complete) for t in first]
    study = load(home, f"nightly-{day}")
    assert study.user_attrs["gradstudy.n_trials"] == n
    assert "gradstudy.nightly" not in study.user_attrs        # nothing was compared: no earlier night
    assert not (home / "studies" / f"nightly-{day}" / "comparison.json").exists()


# ----------------------------------------------------------------------------------------------------
# 2. The lock: a second driver of the same night exits 3 at once

LOCK_LONG = ["train.steps=3000", "train.probe_every=1000", "task.seq_len=10", "model.hidden_size=8",
             "cluster.num_cpus=2", "tracking.enabled=false", "study.n_trials=2"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_second_nightly_of_the_same_date_exits_3(home, drivers, capsys):
    day = "2026-11-20"
    name = f"nightly-{day}"
    first = drivers.start(["nightly", "--date", day, *LOCK_LONG])

    def running():
        study = load(home, name)
        return study is not None and any(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False))

    wait_until(running, 200, f"{name} in the journal with a RUNNING trial", interval=0.25, proc=first)

    # The real command, as cron or systemd would start it: refused with exit 3.
    started = time.monotonic()
    second = drivers.start(["nightly", "--date", day, *LOCK_LONG])
    code = second.wait(90)
    took = time.monotonic() - started
    assert first.poll() is None, "the first driver finished before the second was refused: make its trials longer"
    assert code == Exit.LOCKED, second.output()
    assert "already being run" in second.stderr() and name in second.stderr(), second.stderr()
    assert f"pid {first.pid}" in second.stderr(), second.stderr()
    # interpreter start and imports (torch, Ray, Optuna, MLflow) on a loaded 2-core machine included
    assert took < 60, f"the refused driver took {took:.1f} s"

    # The refusal itself is immediate: the same command in this process (imports done) takes seconds
    # and starts no Ray.
    import ray

    ray_was_up = ray.is_initialized()
    capsys.readouterr()
    started = time.monotonic()
    assert cli.main(["nightly", "--date", day, *LOCK_LONG]) == Exit.LOCKED
    took = time.monotonic() - started
    assert took < 10, f"the lock refusal took {took:.1f} s"
    assert "already being run" in capsys.readouterr().err
    assert ray.is_initialized() == ray_was_up
    assert first.poll() is None

    assert first.wait(240) == 0, first.output()
    trials = load(home, name).get_trials(deepcopy=False)
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials), states(trials)
    assert optuna.get_all_study_names(journal(home)) == [name]


# ----------------------------------------------------------------------------------------------------
# 3. The comparison with the previous night, end to end


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_regression_between_recorded_nights(run_nightly, home):
    d1, d2, d3 = "2026-11-21", "2026-11-22", "2026-11-23"
    code, out, err = run_nightly(d1, *TINY, *SAME_EACH_NIGHT)
    assert code == 0, out + err
    assert "nothing to compare with" in out

    # Night 2: the learning rate broken (1e-7: nothing is learned in 30 steps) → every cell's best is worse.
    code, out, err = run_nightly(d2, *TINY, *SAME_EACH_NIGHT, "train.lr=1e-7")
    assert code == Exit.REGRESSION == 5, out + err
    assert f"Compared with nightly-{d1}: REGRESSION" in out, out
    named = re.findall(r"^\s*- (rnn|lstm|gru): best (\S+) vs (\S+)", out, re.M)
    assert named, out
    path = home / "studies" / f"nightly-{d2}" / "comparison.json"
    comparison = json.loads(path.read_text())
    assert comparison["regressed"] is True
    assert comparison["previous"] == f"nightly-{d1}" and comparison["current"] == f"nightly-{d2}"
    assert comparison["regressions"] and len(comparison["regressions"]) >= len(named)
    for cell, _, _ in named:
        entry = comparison["cells"][cell]
        assert entry["regressed"] is True
        assert entry["current"] > entry["previous"] * (1 + comparison["tolerances"]["tolerance"])
    assert load(home, f"nightly-{d2}").user_attrs["gradstudy.nightly"] == comparison

    # Night 3: back to normal; compared with night 2 (the latest before it), it is better → exit 0.
    code, out, err = run_nightly(d3, *TINY, *SAME_EACH_NIGHT)
    assert code == 0, out + err
    assert f"Compared with nightly-{d2}: no regression" in out, out
    comparison = json.loads((home / "studies" / f"nightly-{d3}" / "comparison.json").read_text())
    assert comparison["regressed"] is False and comparison["regressions"] == []
    assert comparison["previous"] == f"nightly-{d2}"
    assert set(comparison["cells"]) == set(json.loads(path.read_text())["cells"])
    # like for like: night 3 repeats night 1 exactly
    night1 = {t.number: (t.params, t.values) for t in load(home, f"nightly-{d1}").trials}
    night3 = {t.number: (t.params, t.values) for t in load(home, f"nightly-{d3}").trials}
    assert night3 == night1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_comparison_on_the_mlflow_parent_run_and_in_the_report(run_nightly, home, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from tracking.runs.connection import resolve_uri
    from tracking.runs.names import TAG_ROLE
    from tracking.runs.study_runs import experiment_name

    tracked = [o for o in TINY if o != "tracking.enabled=false"] + ["study.n_trials=2", "study.sampler=random"]
    d1, d2 = "2026-11-24", "2026-11-25"
    code, out, err = run_nightly(d1, *tracked)
    assert code == 0, out + err
    code, out, err = run_nightly(d2, *tracked, "train.lr=1e-7")
    assert code == 5, out + err

    local = json.loads((home / "studies" / f"nightly-{d2}" / "comparison.json").read_text())
    assert local["regressed"] is True
    uri = resolve_uri("", home)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name(f"nightly-{d2}"))
    assert experiment is not None
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'study'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.metrics["nightly/regressed"] == 1.0
    assert parent.data.metrics["nightly/regressions"] == len(local["regressions"])
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "nightly")] == ["nightly/comparison.json"]
    logged = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="nightly/comparison.json",
                                                 dst_path=str(tmp_path / "dl"), tracking_uri=uri)
    assert json.loads(Path(logged).read_text()) == local

    # The study report, on disk and on the parent run, shows the comparison.
    page = (home / "studies" / f"nightly-{d2}" / "report" / "report.html").read_text()
    html = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="report/report.html",
                                               dst_path=str(tmp_path / "dl2"), tracking_uri=uri)
    for text in (page, Path(html).read_text()):
        assert f"Compared with nightly-{d1}: REGRESSION" in text
        assert '<ul class="regressions">' in text and '<table class="comparison">' in text
        for cell in local["cells"]:
            assert f'data-cell="{cell}"' in text

    # The first night had nothing to compare with: no nightly metrics on its parent run.
    first = client.get_experiment_by_name(experiment_name(f"nightly-{d1}"))
    run = client.search_runs([first.experiment_id], filter_string=f"tags.`{TAG_ROLE}` = 'study'")[0]
    assert not any(k.startswith("nightly/") for k in run.data.metrics)


# ----------------------------------------------------------------------------------------------------
# 3b. The regression rule, on hand-built in-memory studies


def night(name: str, trials: list[tuple], direction: str = "minimize") -> optuna.Study:
    """An in-memory study; each trial is (cell, value, health), ("FAIL",) or ("REQUEUED",)."""
    study = optuna.create_study(study_name=name, direction=direction)
    for spec in trials:
        if spec[0] == "FAIL":
            study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"gradstudy.fail_reason": "error"}))
        elif spec[0] == "REQUEUED":
            study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={results.REQUEUED: True,
                                                                             "gradstudy.fail_reason": "budget"}))
        else:
            cell, value, health = spec
            study.add_trial(create_trial(value=value, user_attrs={"gradstudy.cell": cell,
                                                                  "gradstudy.health": health}))
    return study


BASE = [("rnn", 1.00, "vanishing"), ("rnn", 1.20, "vanishing"), ("lstm", 0.50, "healthy"),
        ("gru", 0.40, "healthy")]
RULE = NightlyConfig(tolerance=0.10, failure_tolerance=0, diverged_tolerance=0.20)


def compare(before: list[tuple], now: list[tuple], cfg: NightlyConfig = RULE, direction: str = "minimize"):
    return nightly.compare(night("nightly-2026-01-01", before, direction),
                           night("nightly-2026-01-02", now, direction), cfg)


def test_compare_identical_nights_is_no_regression():
    c = compare(BASE, BASE)
    assert c["regressed"] is False and c["regressions"] == []
    assert c["previous"] == "nightly-2026-01-01" and c["current"] == "nightly-2026-01-02"
    assert c["cells"]["rnn"] == {"previous": 1.0, "current": 1.0, "regressed": False, "change": 0.0}
    assert c["failures"] == {"previous": 0, "current": 0}
    assert c["health"]["current"] == {"vanishing": 2, "healthy": 2}
    json.dumps(c, allow_nan=False)     # JSON-ready


def test_compare_cell_worse_beyond_tolerance_is_a_regression():
    now = [("rnn", 1.15, "vanishing"), *BASE[2:]]         # rnn best 1.00 → 1.15: +15% > 10%
    c = compare(BASE, now)
    assert c["regressed"] is True
    assert c["cells"]["rnn"]["regressed"] is True and c["cells"]["rnn"]["change"] == pytest.approx(0.15)
    assert c["cells"]["lstm"]["regressed"] is False
    assert len(c["regressions"]) == 1 and c["regressions"][0].startswith("rnn: best 1.15 vs 1")


def test_compare_within_tolerance_or_better_is_no_regression():
    now = [("rnn", 1.09, "vanishing"), ("lstm", 0.30, "healthy"), ("gru", 0.43, "healthy")]  # +9%, better, +7.5%
    c = compare(BASE, now)
    assert c["regressed"] is False, c["regressions"]
    assert not any(e["regressed"] for e in c["cells"].values())
    # the tolerance is the knob: 5% makes the same night a regression for rnn and gru
    strict = compare(BASE, now, NightlyConfig(tolerance=0.05, failure_tolerance=0, diverged_tolerance=0.2))
    assert strict["regressed"] and {r.split(":")[0] for r in strict["regressions"]} == {"rnn", "gru"}


def test_compare_missing_cell_is_a_regression_and_a_new_cell_is_not():
    c = compare(BASE, [("rnn", 1.0, "vanishing"), ("lstm", 0.5, "healthy")])           # no gru tonight
    assert c["regressed"] is True and c["cells"]["gru"] == {"previous": 0.4, "current": None, "regressed": True}
    assert any(r.startswith("gru: no complete trial tonight") for r in c["regressions"])
    c = compare(BASE[:3], BASE)                                                        # gru is new
    assert c["regressed"] is False and c["cells"]["gru"]["previous"] is None


def test_compare_more_failures_is_a_regression():
    c = compare(BASE, BASE + [("FAIL",)])
    assert c["regressed"] is True and c["failures"] == {"previous": 0, "current": 1}
    assert any(r.startswith("failures 1 vs 0") for r in c["regressions"])
    # within failure_tolerance, and re-queued FAILs (budget, lost worker) do not count
    assert compare(BASE, BASE + [("FAIL",)], NightlyConfig(0.1, 1, 0.2))["regressed"] is False
    c = compare(BASE, BASE + [("REQUEUED",), ("REQUEUED",)])
    assert c["regressed"] is False and c["failures"]["current"] == 0
    assert compare(BASE + [("FAIL",)], BASE + [("FAIL",)])["regressed"] is False


def test_compare_diverged_fraction_up_is_a_regression():
    now = BASE + [("rnn", math.inf, "diverged"), ("rnn", math.inf, "diverged")]       # 0% → 33%
    c = compare(BASE, now)
    assert c["regressed"] is True, c
    assert c["diverged_fraction"]["current"] == pytest.approx(2 / 6)
    assert c["cells"]["rnn"]["regressed"] is False          # the best rnn is still 1.00
    assert any(r.startswith("diverged fraction") for r in c["regressions"])
    # +1 of 5 = 20%, not more than the 20% tolerance
    assert compare(BASE, BASE + [("rnn", math.inf, "diverged")])["regressed"] is False
    # a cell whose every trial diverged tonight is worse (inf) than a finite best
    c = compare(BASE, [*BASE[:3], ("gru", math.inf, "diverged")], NightlyConfig(0.1, 0, 1.0))
    assert c["regressed"] is True and c["cells"]["gru"]["regressed"] is True
    assert any(r.startswith("gru: best inf vs 0.4") for r in c["regressions"]), c["regressions"]
    # and the comparison is still strict JSON (comparison.json, the MLflow artifact): ±inf → null
    assert c["cells"]["gru"]["current"] is None and c["cells"]["gru"]["change"] is None
    json.dumps(c, allow_nan=False)
    back = compare([*BASE[:3], ("gru", math.inf, "diverged")], BASE, NightlyConfig(0.1, 0, 1.0))
    assert back["regressed"] is False and back["cells"]["gru"]["previous"] is None
    json.dumps(back, allow_nan=False)


def test_compare_maximize_direction():
    before = [("rnn", 0.60, "healthy"), ("lstm", 0.90, "healthy")]
    worse = compare(before, [("rnn", 0.50, "healthy"), ("lstm", 0.95, "healthy")], direction="maximize")
    assert worse["regressed"] is True                     # accuracy 0.60 → 0.50: −17% when maximizing
    assert worse["cells"]["rnn"]["regressed"] is True and worse["cells"]["lstm"]["regressed"] is False
    better = compare(before, [("rnn", 0.70, "healthy"), ("lstm", 0.85, "healthy")], direction="maximize")
    assert better["regressed"] is False, better["regressions"]   # higher is better; −5.6% within 10%
    # the same numbers read as losses (minimize): 0.60 → 0.70 is +17% worse
    assert compare(before, [("rnn", 0.70, "healthy"), ("lstm", 0.85, "healthy")])["regressed"] is True


def test_previous_night_is_the_latest_earlier_date():
    storage = optuna.storages.InMemoryStorage()
    for name in ("nightly-2026-11-10", "nightly-2026-11-18", "nightly-2026-11-21", "nightly-2026-12-01",
                 "other-2026-11-19", "nightly-extra-2026-11-19", "nightly-2026-11-19-rerun", "nightly",
                 "xnightly-2026-11-20", "default"):
        optuna.create_study(study_name=name, storage=storage)
    assert nightly.previous_night(storage, "nightly", date(2026, 11, 21)) == "nightly-2026-11-18"
    assert nightly.previous_night(storage, "nightly", date(2026, 11, 22)) == "nightly-2026-11-21"
    assert nightly.previous_night(storage, "nightly", date(2027, 1, 1)) == "nightly-2026-12-01"
    assert nightly.previous_night(storage, "nightly", date(2026, 11, 10)) is None
    assert nightly.previous_night(storage, "other", date(2026, 11, 21)) == "other-2026-11-19"
    assert nightly.previous_night(storage, "nightly-extra", date(2026, 11, 20)) == "nightly-extra-2026-11-19"
    assert nightly.previous_night(optuna.storages.InMemoryStorage(), "nightly", date(2026, 11, 21)) is None


# ----------------------------------------------------------------------------------------------------
# 4. The wall-clock budget

# each trial takes several seconds even on warm Ray workers, so a 2 s budget always stops them (1000 steps did not
# always: once both trials ended inside the 2 s on a quiet machine)
BUDGET_LONG = ["train.steps=3000", "train.probe_every=250", "task.seq_len=30", "model.hidden_size=32",
               "cluster.num_cpus=2", "tracking.enabled=false", "study.n_trials=2", "study.sampler=random"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_budget_exit_4_requeues_in_flight_trials_and_a_rerun_finishes(run_nightly, home):
    day = "2026-11-26"
    name = f"nightly-{day}"
    code, out, err = run_nightly(day, *BUDGET_LONG, "study.timeout_s=2")
    assert code == Exit.BUDGET == 4, out + err
    assert "study.timeout_s reached" in err, err

    trials = load(home, name).get_trials(deepcopy=False)
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert stopped, states(trials)
    assert not any(t.state == TrialState.RUNNING for t in trials), states(trials)
    for t in stopped:                       # recorded, not lost
        assert t.user_attrs["gradstudy.fail_reason"] == "budget", t.user_attrs
        assert t.user_attrs[results.REQUEUED] is True
    # budget FAILs do not count (a trial that beat the 2 s budget would)
    assert len(results.finished(trials)) == sum(t.state == TrialState.COMPLETE for t in trials) < 2
    # every stopped trial's parameters are queued again, once
    assert sorted(t.system_attrs["fixed_params"]["model.cell"] for t in waiting) == \
           sorted(t.params["model.cell"] for t in stopped)
    assert sorted(json.dumps(t.system_attrs["fixed_params"], sort_keys=True) for t in waiting) == \
           sorted(json.dumps(t.params, sort_keys=True) for t in stopped)
    assert sorted(t.user_attrs["gradstudy.requeue_of"] for t in waiting) == sorted(t.number for t in stopped)

    # The same night again, with the default budget (an hour): it finishes exactly n_trials.
    code, out, err = run_nightly(day, *BUDGET_LONG)
    assert code == 0, out + err
    trials = load(home, name).get_trials(deepcopy=False)
    assert len(results.finished(trials)) == 2, states(trials)
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials), states(trials)
    for t in stopped:
        again = [u for u in trials if u.user_attrs.get("gradstudy.requeue_of") == t.number]
        assert len(again) == 1 and again[0].state == TrialState.COMPLETE and again[0].params == t.params
        assert again[0].user_attrs.get("gradstudy.attempt", 0) == 0    # the budget is not the trial's fault
    assert len(trials) == 2 + len(stopped)
    assert optuna.get_all_study_names(journal(home)) == [name]
