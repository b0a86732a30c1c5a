"""Whole studies, for real: Optuna asks, a local Ray runs tiny trials, Optuna is told. No mocks — a real
Ray (in this process, or started by `gradstudy` driver subprocesses), the real Optuna journal file under
a per-test GRADSTUDY_HOME, the real PostgreSQL on 127.0.0.1:5432 where it answers.

Covers: concurrent trials and what each records; pruning; a killed driver and `gradstudy resume`; a
killed Ray worker and the re-queue of its trial; the PostgreSQL storage; CLI config errors that write
nothing; the one-driver-per-study lock.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from study.config.compose import compose_root
from study.driver.runner import StudyRunner
from study.recording.hook import tracking_hooks
from study.records import results
from study.storage.backend import open_storage
from testkit.processes import Driver, alive, cmdline, wait_until
from testkit.tiny import TINY  # an 8-unit vanilla RNN on the adding problem, T = 10, 20 steps; MLflow off

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"   # the machine's PostgreSQL (see the postgres_url fixture)

FINAL = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def run_study(overrides: list[str]) -> optuna.Study:
    composed = compose_root(overrides)
    outcome = StudyRunner(composed).run(tracking_hooks(composed))
    assert not outcome.timed_out
    return outcome.study


def load(name: str, storage: str = "") -> optuna.Study | None:
    """The study as the storage holds it now (the journal file of this test's GRADSTUDY_HOME by
    default), or None while it does not exist."""
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        return None


def trials_of(name: str) -> list[optuna.trial.FrozenTrial]:
    study = load(name)
    return study.get_trials(deepcopy=False) if study is not None else []


def count(trials, *states) -> int:
    return sum(t.state in states for t in trials)


def study_names(storage: str = "") -> list[str]:
    return optuna.get_all_study_names(open_storage(storage))


def check_finished(trials, n: int) -> None:
    """Exactly `n` trials count (COMPLETE, PRUNED, final FAIL), nothing is left RUNNING or WAITING."""
    assert len(results.finished(trials)) == n, [(t.number, t.state.name) for t in trials]
    assert count(trials, TrialState.RUNNING, TrialState.WAITING) == 0, [(t.number, t.state.name) for t in trials]


def check_requeues(trials, reason_prefix: str) -> list[optuna.trial.FrozenTrial]:
    """Every re-queued trial is FAIL with a reason, and its parameters ran again in a later trial that
    names it (`gradstudy.requeue_of`) and finished. Returns the re-queued trials."""
    requeued = [t for t in trials if t.user_attrs.get(results.REQUEUED)]
    by_number = {t.number: t for t in trials}
    for t in requeued:
        assert t.state == TrialState.FAIL, t
        assert str(t.user_attrs.get("gradstudy.fail_reason", "")).startswith(reason_prefix), t.user_attrs
        again = [u for u in trials if u.user_attrs.get("gradstudy.requeue_of") == t.number]
        assert len(again) == 1, (t.number, [(u.number, u.user_attrs) for u in trials])
        rerun = again[0]
        assert rerun.number > t.number and rerun.params == t.params
        # the re-run finished, or was itself lost and re-queued (then its own re-run is checked too)
        assert rerun.state in FINAL, rerun
        assert by_number[rerun.number] is rerun
    return requeued


# ----------------------------------------------------------------------------------------------------
# 1. A study of tiny trials, two at a time


@pytest.mark.timeout(240)
def test_study_runs_trials_concurrently_and_records_them(home, ray_session):
    # long enough (about a second) that the second trial is submitted while the first still runs: with
    # shorter ones Ray may hand both to the same warm worker one after the other
    study = run_study(TINY + ["study.name=quad", "study.n_trials=4", "study.sampler=random", "study.seed=3",
                              "train.steps=400", "task.seq_len=30"])

    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 4
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert study.user_attrs["gradstudy.n_trials"] == 4
    for t in trials:
        assert set(t.params) == {"model.init_gain", "model.activation"}
        assert t.user_attrs["gradstudy.health"] in {"healthy", "vanishing", "exploding", "diverged"}
        assert t.user_attrs["gradstudy.cell"] == "rnn"
        assert t.user_attrs["gradstudy.steps"] == 400 or t.user_attrs["gradstudy.health"] == "diverged"
        summary = Path(t.user_attrs["gradstudy.summary"])
        assert summary == home / "studies" / "quad" / "trials" / f"{t.number:05d}" / "summary.json"
        assert summary.is_file() and (summary.parent / "config.yaml").is_file()
        data = json.loads(summary.read_text())
        assert data["health"] == t.user_attrs["gradstudy.health"]
        assert data["config"]["model"]["hidden_size"] == 8 and data["config"]["task"]["seq_len"] == 30
        assert data["config"]["model"]["init_gain"] == t.params["model.init_gain"]
        assert data["config"]["model"]["activation"] == t.params["model.activation"]
        loss = data["final"]["test_loss"]           # null when not finite (a diverged trial)
        assert t.values == ([pytest.approx(loss)] if loss is not None else [math.inf])
        # every probe's validation loss is the trial's intermediate value at that step (kept even
        # with the demo's pruner none); non-finite ones (a diverged trial) are left out
        probes = {p["step"]: p["val_loss"] for p in data["probes"] if p["val_loss"] is not None}
        assert t.intermediate_values == pytest.approx(probes)
        if t.user_attrs["gradstudy.health"] != "diverged":
            assert sorted(t.intermediate_values) == [*range(0, 400, 5), 399]
    assert sorted(p.name for p in (home / "studies" / "quad" / "trials").iterdir()) == \
        ["00000", "00001", "00002", "00003"]

    # Two trials ran at the same time, on two different Ray workers.
    pids = {t.user_attrs["gradstudy.worker"]["pid"] for t in trials}
    assert len(pids) >= 2, pids
    overlaps = [(a.number, b.number) for a in trials for b in trials if a.number < b.number
                and a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
                and a.user_attrs["gradstudy.worker"]["pid"] != b.user_attrs["gradstudy.worker"]["pid"]]
    assert overlaps, [(t.number, t.datetime_start, t.datetime_complete) for t in trials]


# ----------------------------------------------------------------------------------------------------
# 2. Pruning

GOOD_LR, BAD_LR = 0.05, 1e-5


@pytest.mark.timeout(240)
def test_median_pruner_stops_clearly_worse_trials(home, ray_session):
    """train.lr 1e-5 barely moves the validation loss (≈1.93 for 60 steps) while 0.05 brings it to ≈0.3
    by step 5. With the median pruner after 1 finished trial, a slow trial that follows a finished
    fast one is worse than the median at step 5 and is stopped there. One trial at a time and a seeded
    random sampler make the outcome deterministic: seed 0 samples bad, good, bad, bad, good, good, so
    trials 2 and 3 are pruned (once good ≥ bad among the finished trials, every bad one is)."""
    study = run_study([
        *TINY, "train.steps=60", "cluster.max_concurrent=1",
        # the demo's two sampled keys fixed (plain values), train.lr sampled
        f"++search.params={{model.init_gain: 2.0, model.activation: tanh, train.lr: 'choice({GOOD_LR}, {BAD_LR})'}}",
        "study.name=prune", "study.n_trials=6", "study.sampler=random", "study.seed=0",
        "study.pruner=median", "study.pruner_startup_trials=1", "study.pruner_warmup_steps=0",
    ])
    trials = study.get_trials(deepcopy=False)
    check_finished(trials, 6)
    assert len(trials) == 6
    lrs = [t.params["train.lr"] for t in trials]
    assert all(set(t.params) == {"train.lr"} for t in trials)
    assert lrs == [BAD_LR, GOOD_LR, BAD_LR, BAD_LR, GOOD_LR, GOOD_LR], lrs   # the seeded sequence

    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert [t.number for t in pruned] == [2, 3], [(t.number, t.state.name, t.params) for t in trials]
    good = [t for t in trials if t.params["train.lr"] == GOOD_LR]
    assert all(t.state == TrialState.COMPLETE for t in good)
    assert trials[0].state == TrialState.COMPLETE            # the first finished trial is never pruned
    for t in pruned:
        steps = t.user_attrs["gradstudy.steps"]
        assert 0 < steps < 60, steps
        assert t.user_attrs["gradstudy.status"] == "pruned"
        # intermediate values were recorded up to the step where it was stopped (a probe step)
        last = max(t.intermediate_values)
        assert sorted(t.intermediate_values) == list(range(0, last + 1, 5)) and last >= 5
        assert steps == last + 1
        # and it was worse there than the finished fast trial at the same step
        assert t.intermediate_values[last] > good[0].intermediate_values[last]
        summary = json.loads(Path(t.user_attrs["gradstudy.summary"]).read_text())
        assert summary["status"] == "pruned" and summary["steps"] == steps
        assert t.values == [t.intermediate_values[last]]    # Optuna keeps the last reported value
        assert t.user_attrs["gradstudy.prune_reason"] == f"MedianPruner: val_loss at step {last} against the " \
                                                          "other trials'"
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert t.user_attrs["gradstudy.steps"] == 60 and max(t.intermediate_values) == 59


@pytest.mark.timeout(240)
def test_health_pruner_stops_the_vanishing_trial_and_spares_the_healthy_one(home, ray_session):
    """study.pruner=health on two demo corners (tanh, T = 10 → 30): λ1 = 0.5 vanishes from the first probe and
    is pruned at the third (patience 3, steps 0, 10, 20); λ1 = 2 stays healthy and runs its 60 steps. The
    reason is on the Optuna trial and on its MLflow run."""
    from mlflow import MlflowClient

    study = run_study([
        *TINY, "task.seq_len=30", "model.hidden_size=16", "train.steps=60", "train.probe_every=10",
        "tracking.enabled=true", "tracking.trial_figures_min_s=1000",
        "++search.params={model.init: scaled, model.activation: tanh, model.init_gain: 'choice(0.5, 2.0)'}",
        "study.name=health_prune", "study.n_trials=2", "study.pruner=health", "study.health_patience=3",
    ])
    trials = {t.params["model.init_gain"]: t for t in study.get_trials(deepcopy=False)}
    vanishing, healthy = trials[0.5], trials[2.0]
    assert vanishing.state == TrialState.PRUNED and healthy.state == TrialState.COMPLETE
    assert vanishing.user_attrs["gradstudy.steps"] == 21 and healthy.user_attrs["gradstudy.steps"] == 60
    reason = "health: the last 3 probes (steps 0–20) were vanishing"
    assert vanishing.user_attrs["gradstudy.prune_reason"] == reason
    assert (healthy.user_attrs.get("gradstudy.prune_reason") is None
            and healthy.user_attrs["gradstudy.health"] == "healthy")
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    run = client.get_run(vanishing.user_attrs["gradstudy.mlflow_run"])
    assert run.data.tags["gradstudy.prune_reason"] == reason and run.data.tags["gradstudy.state"] == "pruned"
    assert run.info.status == "KILLED"


# ----------------------------------------------------------------------------------------------------
# 3. A killed driver, then `gradstudy resume`

# Trials of ≈1-2 s each: long enough to kill the driver between the 2nd and the 6th.
# Rare probes: few journal writes by the workers (a process killed while it holds the journal's
# lock file leaves it to Optuna's 30 s grace period).
MEDIUM = TINY + ["train.steps=400", "train.probe_every=200"]


def worker_pids(trials) -> set[int]:
    return {t.user_attrs["gradstudy.worker"]["pid"] for t in trials if "gradstudy.worker" in t.user_attrs}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resume_after_killed_driver_finishes_exactly_n(home, drivers):
    name, n = "resumeme", 6
    driver = drivers.start(["run"] + MEDIUM + [f"study.n_trials={n}", f"study.name={name}"])
    wait_until(lambda: count(trials_of(name), TrialState.COMPLETE) >= 2, 150,
               "2 COMPLETE trials in the journal", proc=driver)
    time.sleep(0.3)             # past the driver's burst of writes after a tell (tell, ask, sample)
    driver.kill_group()
    assert driver.returncode == -signal.SIGKILL

    # What the dead driver left: some trials finished, the ones in flight still RUNNING.
    left = trials_of(name)
    assert 2 <= len(results.finished(left)) < n, [(t.number, t.state.name) for t in left]
    orphans = {t.number for t in left if t.state == TrialState.RUNNING}
    assert orphans, [(t.number, t.state.name) for t in left]
    pids = worker_pids(left)
    drivers.worker_pids |= pids
    # Its Ray went with it: the head processes were in its process group, the workers exit on their own.
    wait_until(lambda: not any(alive(p) and "ray::" in cmdline(p) for p in pids), 60,
               f"the killed driver's Ray workers {sorted(pids)} to exit")

    resumed = drivers.run(["resume", name], timeout=200)
    assert resumed.returncode == 0, resumed.output()

    trials = trials_of(name)
    check_finished(trials, n)
    requeued = check_requeues(trials, "driver_lost")
    assert {t.number for t in requeued} == orphans        # exactly the orphans, each run again once
    for t in requeued:
        assert t.user_attrs.get("gradstudy.attempt", 0) == 0      # a lost driver is not the trial's fault
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert Path(t.user_attrs["gradstudy.summary"]).is_file()
    # a folder for every trial that counts; the driver writes a trial's folder before it tells Optuna, so
    # one killed in between leaves the folder of an orphan as well (that trial was run again)
    folders = {p.name for p in (home / "studies" / name / "trials").iterdir()}
    counted = {f"{t.number:05d}" for t in trials if t.state != TrialState.FAIL}
    assert counted <= folders and folders - counted <= {f"{t.number:05d}" for t in requeued}, (folders, counted)

    status = drivers.run(["status", name, "--json"], timeout=60)
    assert status.returncode == 0, status.output()
    lines = status.stdout().strip().splitlines()
    assert len(lines) == 1, status.stdout()
    doc = json.loads(lines[0])
    assert doc["name"] == name and doc["n_trials"] == n and doc["finished"] == n
    states = doc["states"]
    assert states["COMPLETE"] + states["PRUNED"] + states["FAIL"] == n
    assert states["RUNNING"] == 0 and states["WAITING"] == 0 and states["REQUEUED"] == len(orphans)
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.values[0])
    assert doc["best"]["number"] == best.number and doc["best"]["values"] == pytest.approx(best.values)


# ----------------------------------------------------------------------------------------------------
# 4. A killed Ray worker

LONG = TINY + ["train.steps=1500", "train.probe_every=100"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_worker_trial_is_requeued_and_study_finishes(home, drivers):
    name, n = "workerkill", 2
    driver = drivers.start(["run"] + LONG + [f"study.n_trials={n}", f"study.name={name}"])

    def running_worker():
        for t in trials_of(name):
            pid = t.user_attrs.get("gradstudy.worker", {}).get("pid")
            # past its step-0 probe: the worker is training, not appending to the journal (a process
            # killed while it holds the journal's lock file stalls every writer for Optuna's 30 s grace)
            if t.state == TrialState.RUNNING and pid and 0 in t.intermediate_values and "ray::" in cmdline(pid):
                return t.number, pid
        return None

    number, pid = wait_until(running_worker, 150, "a RUNNING trial with a live Ray worker pid", proc=driver)
    drivers.worker_pids.add(pid)
    time.sleep(0.3)
    assert trials_of(name)[number].state == TrialState.RUNNING
    os.kill(pid, signal.SIGKILL)

    assert driver.wait(240) == 0, driver.output()
    trials = trials_of(name)
    check_finished(trials, n)
    killed = trials[number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs[results.REQUEUED] is True
    assert killed.user_attrs["gradstudy.fail_reason"].startswith("worker_lost"), killed.user_attrs
    again = [t for t in trials if t.user_attrs.get("gradstudy.requeue_of") == number]
    assert len(again) == 1 and again[0].number > number, [(t.number, t.user_attrs) for t in trials]
    assert again[0].params == killed.params and again[0].state == TrialState.COMPLETE
    assert again[0].user_attrs["gradstudy.attempt"] == 1         # a lost worker counts as an attempt
    assert again[0].user_attrs["gradstudy.worker"]["pid"] != pid
    check_requeues(trials, "worker_lost")
    assert len(trials) == n + 1


# ----------------------------------------------------------------------------------------------------
# 5. PostgreSQL storage


@pytest.mark.timeout(240)
def test_postgresql_storage(home, ray_session, postgres_url):
    name = f"gradstudy-test-{uuid.uuid4().hex[:12]}"
    try:
        run_study(TINY + [f"study.name={name}", "study.n_trials=2", f"study.storage={PG_URL}",
                          "study.sampler=random"])
        study = optuna.load_study(study_name=name, storage=open_storage(PG_URL))
        trials = study.get_trials(deepcopy=False)
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
        assert all("gradstudy.health" in t.user_attrs and t.intermediate_values for t in trials)
        assert study.user_attrs["gradstudy.n_trials"] == 2
        # nothing went to the journal file of this GRADSTUDY_HOME
        assert name not in study_names("")
        assert (home / "studies" / name / "trials" / "00001" / "summary.json").is_file()
    finally:
        try:
            optuna.delete_study(study_name=name, storage=open_storage(PG_URL))
        except KeyError:
            pass


# ----------------------------------------------------------------------------------------------------
# 6. Config errors: exit 2, one line naming the key, nothing written

ERRORS = {
    "unknown-experiment": (["experiment=nope"], "experiment"),
    "unknown-search-key": (["++search.params={model.nope: choice(1,2)}"], "search.params.model.nope"),
    "unknown-search-key-quoted": (["++search.params={model.nope: 'choice(1,2)'}"], "search.params.model.nope"),
    "malformed-expression": (['++search.params={model.hidden_size: "choice(1,"}'],
                             "search.params.model.hidden_size"),
    "unreachable-ray": ([f"study.storage={PG_URL}", "cluster.address=127.0.0.1:1"], "cluster.address"),
    "unreachable-storage": (["study.storage=postgresql://postgres@127.0.0.1:1/test"], "study.storage"),
}


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory, postgres_url):
    """Every config-error driver at once (they only start up and stop: no point in waiting for each in
    turn), each with its own GRADSTUDY_HOME. case -> (driver, home, study name, seconds to its exit)."""
    runs, ended = {}, {}
    for case, (extra, _) in ERRORS.items():
        home = tmp_path_factory.mktemp(case) / "home"
        home.mkdir()
        name = f"err-{case}-{uuid.uuid4().hex[:8]}"
        runs[case] = (Driver(["run"] + TINY + [f"study.name={name}"] + extra, home, home.parent / "logs"),
                      home, name)
    deadline = time.monotonic() + 180
    try:
        while len(ended) < len(runs) and time.monotonic() < deadline:
            for case, (d, _, _) in runs.items():
                if case not in ended and d.poll() is not None:
                    ended[case] = time.monotonic() - d.started
            time.sleep(0.1)
        yield {case: (d, home, name, ended.get(case)) for case, (d, home, name) in runs.items()}
    finally:
        for d, _, _ in runs.values():
            if d.poll() is None:
                d.kill_group()


def journal_study_names(home: Path) -> list[str]:
    path = home / "optuna" / "journal.log"
    return optuna.get_all_study_names(open_storage(str(path))) if path.exists() else []


@pytest.mark.ray        # its drivers start (and must not leave) a local Ray
@pytest.mark.timeout(240)
@pytest.mark.parametrize("case", list(ERRORS))
def test_cli_config_error_writes_nothing(case, error_runs):
    extra, key = ERRORS[case]
    d, home, name, took = error_runs[case]
    assert took is not None, f"`gradstudy run` did not stop within 180 s\n{d.output()}"
    assert d.returncode == 2, d.output()
    lines = d.stderr().strip().splitlines()
    assert len(lines) == 1, d.stderr()
    assert lines[0].startswith("gradstudy: config error: ") and key in lines[0], lines[0]
    if case == "unreachable-ray":
        # a clear error within seconds, not Ray's minute of retries (here: six drivers starting at once)
        assert took < 45, took
    if case == "unreachable-storage":     # the URL as written, not with the database driver gradstudy adds
        assert "'postgresql://postgres@127.0.0.1:1/test'" in lines[0] and "psycopg2" not in lines[0], lines[0]
    # nothing half-written: no study in the storage, no study folder
    assert not (home / "studies" / name).exists()
    assert name not in journal_study_names(home)
    if "study.storage=" + PG_URL in extra:
        assert name not in study_names(PG_URL)


# ----------------------------------------------------------------------------------------------------
# 7. One driver per study


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_second_driver_of_a_running_study_exits_3(home, drivers):
    name = "locked"
    # trials far longer than the test: the first driver is killed at the end
    args = ["run"] + TINY + ["train.steps=20000", "train.probe_every=1000", "study.n_trials=2", f"study.name={name}"]
    first = drivers.start(args)
    wait_until(lambda: count(trials_of(name), TrialState.RUNNING) >= 1, 150, "a RUNNING trial", proc=first)

    started = time.monotonic()
    second = drivers.run(args, timeout=120)
    took = time.monotonic() - started
    assert second.returncode == 3, second.output()
    assert "already being run" in second.stderr() and str(first.pid) in second.stderr(), second.stderr()
    assert took < 30, took
    assert first.poll() is None            # the first driver is unaffected
    trials = trials_of(name)
    drivers.worker_pids |= worker_pids(trials)     # its workers, should they outlive it at teardown
    assert len(trials) <= 2 and all("gradstudy.requeued" not in t.user_attrs for t in trials)
