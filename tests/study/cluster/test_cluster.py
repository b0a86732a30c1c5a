"""Studies on a real multi-node Ray cluster: a head (no CPUs, so no trial runs there) and worker nodes of
one CPU each, every node a `ray start --block` process of its own, with Ray's token authentication on
(tests/testkit/ray_cluster.py). The driver is the real `gradstudy run … cluster.address=host:port`, the
storage the machine's PostgreSQL, the tracking a real `mlflow server`.

Covers: a study whose trials run on the worker nodes and reach MLflow; a node added mid-study receiving
trials; a node lost mid-trial (its trial re-queued, the study still finishing exactly n trials); the whole
cluster lost mid-study (its GCS killed: one line, exit 7, and `gradstudy resume` finishes the study on a new
cluster); a local file store with a cluster address refused before Ray is contacted.

The module shares one cluster (head + w1 to begin with); the tests that lose a node, then the cluster,
run last.
"""
from __future__ import annotations

import functools
import socket
import time
import uuid

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from study.records import results
from study.storage.backend import open_storage
from testkit import tiny
from testkit.mlflow_server import free_port
from testkit.processes import wait_until
from testkit.ray_cluster import RayCluster


def longer(steps: int, probe_every: int) -> list[str]:
    """Trials of `steps` steps, for a node joined or lost mid-study: ~2.5 ms a step here (unloaded), so
    800 steps train for ~2 s after the worker's first-trial imports, 1500 for ~4 s and 3000 for ~7.5 s."""
    return [*tiny.TINY, f"train.steps={steps}", f"train.probe_every={probe_every}", "task.seq_len=20",
            "model.hidden_size=16", "cluster.num_cpus=0", "tracking.enabled=true", "study.pruner=none",
            "study.sampler=random"]


# Short trials: the tiny trial of testkit.tiny as a 16-unit RNN on the adding problem with T = 20, 300 steps
# probed every 100; random sampling of the demo's space, every trial kept; the CPUs are the cluster nodes'
# (cluster.num_cpus is a local Ray's), MLflow on.
TINY = longer(300, 100)
MEDIUM_LONG = longer(1500, 500)
# A node killed after the trial's step-0 probe: its worker outlives the raylet by about a second (it looks
# for its raylet every second; measured 0.95 s here, unloaded, more on a loaded machine), so the trial must
# have much longer than that left, or it finishes and its result reaches the driver (800 steps did not).
LONGEST = longer(3000, 500)


@pytest.fixture(scope="module")
def ray_cluster():
    """A head (--num-cpus=0) and one worker node `w1` (--num-cpus=1); tests add nodes as they need
    (`ensure_workers`). Every process of it is killed at the end of the module."""
    cluster = RayCluster()
    try:
        cluster.start_head()
        cluster.add_worker("w1")
        yield cluster
    finally:
        cluster.stop()


def ensure_workers(cluster: RayCluster, n: int) -> None:
    """At least `n` live worker nodes (after a test that lost one)."""
    while len(cluster.alive_workers()) < n:
        cluster.add_worker(f"w{len(cluster.workers) + 1}")
    cluster.wait_alive(1 + len(cluster.alive_workers()))


@pytest.fixture
def on_cluster(ray_cluster, monkeypatch):
    """The cluster, with its token in this process's environment, which the drivers inherit."""
    for key, value in ray_cluster.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    return ray_cluster


@functools.lru_cache(maxsize=None)
def storage_at(url: str) -> optuna.storages.BaseStorage:
    """One storage (one connection pool) per URL for the module's polling and clean-up: opening one per poll cost a
    PostgreSQL backend and Optuna's schema checks every 0.3 s."""
    return open_storage(url)


@pytest.fixture
def pg_study(postgres_url):
    """A unique study name in the machine's PostgreSQL; the study is deleted afterwards."""
    name = f"gradstudy-cluster-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=storage_at(postgres_url))
    except KeyError:
        pass


def trials_of(name: str, storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage_at(storage)).get_trials(deepcopy=False)
    except KeyError:
        return []


def worker_node(cluster: RayCluster, t: optuna.trial.FrozenTrial):
    """The node the trial ran on, by the Ray node id its worker recorded (or None)."""
    node_id = (t.user_attrs.get("gradstudy.worker") or {}).get("node")
    return cluster.node_by_id(node_id) if node_id else None


def check_finished(trials, n: int) -> None:
    assert len(results.finished(trials)) == n, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], \
        [(t.number, t.state.name) for t in trials]


def check_ran_on_workers(cluster: RayCluster, trials, driver_pid: int) -> dict[int, str]:
    """Every trial that started ran on a worker node (not the head, not in the driver), by the Ray node
    id its worker recorded (not by its pid: this machine's pids wrap at 32768 within a test suite).
    Returns {trial number: node name}."""
    where = {}
    for t in trials:
        info = t.user_attrs.get("gradstudy.worker")
        if info is None:
            continue
        assert info["host"] == socket.gethostname(), info
        assert info["pid"] != driver_pid, info
        node = worker_node(cluster, t)
        assert node is not None, (t.number, info, [(n.name, n.node_id) for n in cluster.nodes])
        assert not node.head, (t.number, info, node)
        where[t.number] = node.name
    return where


def cluster_args(cluster: RayCluster, name: str, storage: str, n: int) -> list[str]:
    return [f"cluster.address={cluster.address}", f"study.storage={storage}", f"study.name={name}",
            f"study.n_trials={n}"]


# ----------------------------------------------------------------------------------------------------
# 1. A local store with a cluster address: refused before Ray is contacted


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", ["journal-storage", "local-tracking"])
def test_local_store_with_a_cluster_address_exits_2(case, drivers, home, postgres_url):
    """Nothing listens at the address: an error about the cluster would name `cluster.address`; the
    storage / tracking check comes first, and quickly."""
    name = f"gradstudy-local-{uuid.uuid4().hex[:10]}"
    nowhere = f"127.0.0.1:{free_port()}"
    if case == "journal-storage":       # the default journal file; MLflow off (not the point here)
        extra, key = ["tracking.enabled=false"], "study.storage"
    else:                               # PostgreSQL, but the default (local) MLflow store, tracking on
        extra, key = [f"study.storage={postgres_url}", "tracking.enabled=true"], "tracking.uri"
    started = time.monotonic()
    d = drivers.run(["run"] + TINY + [f"study.name={name}", f"cluster.address={nowhere}"] + extra, timeout=60)
    took = time.monotonic() - started
    assert d.returncode == 2, d.output()
    lines = d.stderr().strip().splitlines()
    assert len(lines) == 1, d.stderr()
    assert lines[0].startswith(f"gradstudy: config error: {key}="), lines[0]     # not cluster.address
    assert took < 30, took
    assert not (home / "studies" / name).exists()
    if case == "local-tracking":
        assert name not in optuna.get_all_study_names(storage_at(postgres_url))
        assert not (home / "mlflow").exists()


# ----------------------------------------------------------------------------------------------------
# 2. A node added mid-study receives trials


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_node_added_mid_study_receives_trials(on_cluster, drivers, pg_study, postgres_url):
    # One trial at a time on the first node (one CPU) until the driver sees the new node (it looks at the
    # cluster's size every 5 s); then two at once, one of them on the new node. Trials of ~4 s each
    # (unloaded): a loaded machine joins the node while several are still to start.
    cluster, name, n = on_cluster, pg_study, 6
    before = {node.name for node in cluster.alive_workers()}
    assert before, cluster.nodes
    driver = drivers.start(["run"] + MEDIUM_LONG + ["tracking.enabled=false"]
                           + cluster_args(cluster, name, postgres_url, n))
    wait_until(lambda: any(t.state == TrialState.RUNNING and worker_node(cluster, t)
                           for t in trials_of(name, postgres_url)),
               150, "a trial RUNNING on the first worker node", interval=0.3, proc=driver)
    new = cluster.add_worker(f"w{len(cluster.workers) + 1}")
    cluster.wait_alive(1 + len(before) + 1)
    # the driver creates a trial when it launches it: two still to come means that, while the next runs
    # on w1, the driver's next look at the cluster (≤ 5 s, a trial lasting longer) sends one to the new node
    started = len(trials_of(name, postgres_url))
    assert driver.poll() is None and started <= n - 2, \
        f"{started} of {n} trials had started when the new node joined: make the trials longer"

    assert driver.wait(200) == 0, driver.output()
    trials = trials_of(name, postgres_url)
    check_finished(trials, n)
    assert all(t.state == TrialState.COMPLETE for t in trials), [(t.number, t.state.name) for t in trials]
    where = check_ran_on_workers(cluster, trials, driver.pid)
    assert new.name in where.values(), (where, new, cluster.logs())


# ----------------------------------------------------------------------------------------------------
# 3. A study on the cluster: PostgreSQL storage, an MLflow server, trials on the worker nodes


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_study_on_the_cluster_records_every_trial(on_cluster, drivers, pg_study, postgres_url, shared_mlflow_server):
    cluster, name, n, server = on_cluster, pg_study, 4, shared_mlflow_server
    ensure_workers(cluster, 2)
    driver = drivers.run(["run"] + TINY + [f"tracking.uri={server.url}"]
                         + cluster_args(cluster, name, postgres_url, n), timeout=200)
    assert driver.returncode == 0, driver.output()

    trials = trials_of(name, postgres_url)
    check_finished(trials, n)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * n, [(t.number, t.state.name) for t in trials]
    where = check_ran_on_workers(cluster, trials, driver.pid)
    assert sorted(where) == [t.number for t in trials], where

    client = MlflowClient(tracking_uri=server.url)
    experiment = client.get_experiment_by_name(f"gradstudy/{name}")
    assert experiment is not None, [e.name for e in client.search_experiments()]
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("gradstudy.role") == "study"]
    children = [r for r in runs if r.data.tags.get("gradstudy.role") != "study"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    assert sorted(int(r.data.tags["gradstudy.trial"]) for r in children) == [t.number for t in trials]
    for run in children:
        rid = run.info.run_id
        assert run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id, run.data.tags
        assert run.info.status == "FINISHED", (rid, run.info.status)
        assert client.get_metric_history(rid, "train/loss"), rid
        assert "summary.json" in {a.path for a in client.list_artifacts(rid)}, rid
    for t in trials:
        assert t.user_attrs.get("gradstudy.mlflow") == "synced", t.user_attrs

    # The trials wrote nothing on the worker nodes' disks: everything went to PostgreSQL and MLflow.
    for node in cluster.workers:
        left = sorted(str(p.relative_to(node.root)) for p in (node.root / "gradstudy").rglob("*"))
        assert left == [], (node.name, left)


# ----------------------------------------------------------------------------------------------------
# 4. A node lost mid-trial (last: it leaves the cluster a node short)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_node_lost_mid_trial_is_requeued(on_cluster, drivers, pg_study, postgres_url):
    cluster, name, n = on_cluster, pg_study, 2
    ensure_workers(cluster, 2)
    driver = drivers.start(["run"] + LONGEST + ["tracking.enabled=false"]
                           + cluster_args(cluster, name, postgres_url, n))

    def training_on_a_worker_node():
        for t in trials_of(name, postgres_url):
            # past its step-0 probe: the trial is training
            if t.state == TrialState.RUNNING and 0 in t.intermediate_values:
                node = worker_node(cluster, t)
                if node is not None and not node.head and not node.killed:
                    return t.number, node
        return None

    number, node = wait_until(training_on_a_worker_node, 150, "a trial training on a worker node",
                              interval=0.3, proc=driver)
    cluster.kill(node)
    # the kill landed mid-trial: not finished (a quick driver may have recorded the loss already)
    assert trials_of(name, postgres_url)[number].state in (TrialState.RUNNING, TrialState.FAIL)

    assert driver.wait(200) == 0, driver.output()
    trials = trials_of(name, postgres_url)
    check_finished(trials, n)
    lost = trials[number]
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs.get(results.REQUEUED) is True, lost.user_attrs
    assert str(lost.user_attrs.get("gradstudy.fail_reason", "")).startswith("worker_lost"), lost.user_attrs
    again = [t for t in trials if t.user_attrs.get("gradstudy.requeue_of") == number]
    assert len(again) == 1 and again[0].params == lost.params, [(t.number, t.user_attrs) for t in trials]
    assert again[0].state == TrialState.COMPLETE, again[0]
    assert len(trials) == n + 1, [(t.number, t.state.name) for t in trials]
    where = check_ran_on_workers(cluster, trials, driver.pid)
    assert where[number] == node.name and where[again[0].number] != node.name, where


# ----------------------------------------------------------------------------------------------------
# 5. The cluster lost mid-study (last: it ends the module's cluster)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cluster_lost_mid_study_says_so_and_resume_finishes_on_a_new_cluster(on_cluster, drivers, pg_study,
                                                                               postgres_url, monkeypatch):
    cluster, name, n = on_cluster, pg_study, 2
    ensure_workers(cluster, 1)
    # MEDIUM_LONG: the trials must outlast the watch's 15 s after the GCS is killed (800 steps once both ended
    # inside it on a quiet machine, and the driver finished the study instead of noticing)
    driver = drivers.start(["run"] + MEDIUM_LONG + ["tracking.enabled=false"]
                           + cluster_args(cluster, name, postgres_url, n))
    wait_until(lambda: any(t.state == TrialState.RUNNING and 0 in t.intermediate_values
                           for t in trials_of(name, postgres_url)),
               150, "a trial training on the cluster", interval=0.3, proc=driver)
    cluster.kill_gcs()

    assert driver.wait(90) == 7, driver.output()
    last = driver.stderr().strip().splitlines()[-1]
    assert last.startswith(f"gradstudy: cluster error: the Ray cluster at {cluster.address} stopped answering "
                           "mid-study"), driver.stderr()
    assert f"`gradstudy resume {name}`" in last, last
    trials = trials_of(name, postgres_url)
    # unfinished, nothing failed for it; a trial whose node outlived the GCS may still have finished
    assert len(results.finished(trials)) < n, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state == TrialState.FAIL], [(t.number, t.state.name) for t in trials]
    left_running = [t.number for t in trials if t.state == TrialState.RUNNING]

    # a new cluster (another address and token): resume, pointed at it, finishes exactly n trials
    fresh = RayCluster()
    try:
        fresh.start_head()
        fresh.add_worker("w1")
        for key, value in fresh.env().items():
            monkeypatch.setenv(key, value)
        again = drivers.run(["resume", name, "--storage", postgres_url, f"cluster.address={fresh.address}"],
                            timeout=200)
    finally:
        fresh.stop()
    assert again.returncode == 0, again.output()
    trials = trials_of(name, postgres_url)
    check_finished(trials, n)
    # what was left RUNNING was queued again by the resume, and finished
    requeued = sorted(t.number for t in trials if t.user_attrs.get(results.REQUEUED))
    assert requeued == left_running, [(t.number, t.state.name, t.user_attrs) for t in trials]
    redone = sorted(t.user_attrs.get("gradstudy.requeue_of") for t in trials if t.state == TrialState.COMPLETE
                    and t.user_attrs.get("gradstudy.requeue_of") is not None)
    assert redone == left_running, [(t.number, t.state.name, t.user_attrs) for t in trials]
