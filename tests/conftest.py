"""Fixtures shared by every test folder (tests/workers, tests/study, tests/tracking): a session-wide local
Ray shut down at the end, a data directory per test, `gradstudy` driver subprocesses stopped (with the Ray
processes they started) whatever the test does, the machine's PostgreSQL, and real `mlflow server`
processes; and `composed`, the session's memo of valid compositions. The helpers behind them are in
tests/testkit/.

Tests that use a real service are marked from the fixtures they use (`ray`, `postgres`, `mlflow_server`,
`browser`, and `services` for any of them), so `pytest -m "not services"` (`make test-fast`) runs the
part that needs none; `make test` runs everything.
"""
from __future__ import annotations

import copy
import os
import signal
import time
from pathlib import Path
from typing import Optional, Sequence

import pytest

from testkit.mlflow_server import MlflowServer
from testkit.processes import Driver, alive, cmdline

# The suite's own tensor work (in-process trials, probes) on one thread, and so the drivers and Ray
# workers it starts too (they inherit the variable; a trial sets its threads from its CPUs anyway). On a
# machine whose cores are already taken by the other pytest worker and by Ray, OpenMP threads that outnumber
# the free cores mostly wait on each other: three copies of two probe/training tests took 88 s and 65 CPU-s
# each on two threads, 21 s and 11 CPU-s on one (2 cores). Set before anything imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"    # the machine's PostgreSQL (trust auth)
SCHEMA_LOCK = 0x6772616473   # a PostgreSQL advisory lock key of our own ("grads")

# fixture → the marker of the real service it brings
SERVICE_FIXTURES = {"ray_session": "ray", "drivers": "ray", "ray_cluster": "ray", "postgres_url": "postgres",
                    "pg_server": "postgres", "mlflow_servers": "mlflow_server",
                    "shared_mlflow_server": "mlflow_server", "browser_page": "browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        marks = {SERVICE_FIXTURES[f] for f in item.fixturenames if f in SERVICE_FIXTURES}
        marks |= {m.name for m in item.iter_markers() if m.name in ("ray", "postgres", "mlflow_server", "browser")}
        for mark in marks:
            item.add_marker(getattr(pytest.mark, mark))
        if marks:
            item.add_marker(pytest.mark.services)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # `make test` runs two xdist workers, each taking a whole module at a time (--dist loadfile: a
        # module's fixtures, e.g. test_cluster.py's Ray cluster, are built once) in collection order, so the
        # modules with minute-long tests go first and the many short ones fill the end; otherwise one worker
        # could be left alone with a long module at the end. Stable: the order within a tier is kept.
        tier = {}
        for item in items:
            rank = 0 if item.get_closest_marker("long") else 1 if item.get_closest_marker("slow") else 2
            tier[item.module] = min(tier.get(item.module, 2), rank)
        items.sort(key=lambda item: tier[item.module])


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The machine's PostgreSQL (127.0.0.1:5432, database test); a test that needs it fails, not skips,
    when it does not answer: CI machines of this kind run one."""
    import psycopg2

    from study.storage.backend import open_storage

    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=3)
    except Exception as exc:  # psycopg2.OperationalError
        pytest.fail(f"PostgreSQL not reachable at {PG_URL}: {str(exc).strip().splitlines()[0]}")
    # Optuna creates its tables on first use; `make test` runs two pytest workers, and two first uses at
    # once on a fresh database would race on that: one worker at a time (a session advisory lock, released
    # with the connection) makes sure they exist.
    try:
        conn.autocommit = True
        conn.cursor().execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        open_storage(PG_URL)
    finally:
        conn.close()
    return PG_URL


@pytest.fixture(scope="session")
def ray_session():
    """The in-process studies share one local Ray (study.cluster.placement.connect starts it on first use with
    cluster.num_cpus=2, later runs reuse it); shut down when the session ends."""
    import ray

    if ray.is_initialized() and ray.cluster_resources().get("CPU", 0) < 2:
        ray.shutdown()          # an earlier test's smaller Ray: the studies here run two trials at once
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh GRADSTUDY_HOME for this test (in this process and in the drivers it starts)."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("GRADSTUDY_HOME", str(path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return path


@pytest.fixture
def drivers(home, tmp_path):
    """Start `gradstudy` drivers: `drivers.start([...])`. At teardown every driver still alive is
    killed with its process group, and Ray workers it used (pids in `drivers.worker_pids`) that
    outlive it are killed by pid."""

    class Drivers:
        def __init__(self):
            self.started: list[Driver] = []
            self.worker_pids: set[int] = set()

        def start(self, args: list[str]) -> Driver:
            d = Driver(args, home, tmp_path / "logs")
            self.started.append(d)
            return d

        def run(self, args: list[str], timeout: float) -> Driver:
            d = self.start(args)
            d.wait(timeout)
            return d

    ds = Drivers()
    yield ds
    for d in ds.started:
        if d.poll() is None:
            d.kill_group()
    deadline = time.monotonic() + 20
    for pid in ds.worker_pids:
        while alive(pid) and "ray::" in cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid) and "ray::" in cmdline(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def mlflow_servers(tmp_path):
    """Make servers: `mlflow_servers.new(name)` (not started); every one is killed at teardown."""

    class Servers:
        def __init__(self):
            self.made: list[MlflowServer] = []

        def new(self, name: str = "server", port: Optional[int] = None, workers: int = 1) -> MlflowServer:
            server = MlflowServer(tmp_path / name, port, workers)
            self.made.append(server)
            return server

    servers = Servers()
    yield servers
    for server in servers.made:
        server.kill()


@pytest.fixture(scope="module")
def shared_mlflow_server(tmp_path_factory):
    """One started server for the tests of a module that do not stop it."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def pg_server():
    """A throwaway PostgreSQL (initdb + pg_ctl on a free port) that the test may stop and start; stopped
    (this one only, by its data folder) and deleted at teardown."""
    from testkit.postgres import ThrowawayPostgres

    server = ThrowawayPostgres()
    try:
        yield server.init().start()
    finally:
        server.remove()


class Compositions:
    """compose_root / compose_trial once per distinct override list for the whole session (Hydra's
    composition is the slow part of the config tests); every caller gets its own deep copy. Tests of the
    composition's errors, or of Hydra's global state, call study.config.compose directly."""

    def __init__(self):
        self._roots: dict = {}
        self._trials: dict = {}

    def root(self, overrides: Sequence[str] = ()):
        from study.config.compose import compose_root

        key = tuple(overrides)
        if key not in self._roots:
            self._roots[key] = compose_root(list(key))
        return copy.deepcopy(self._roots[key])

    def trial(self, overrides: Sequence[str] = ()):
        from study.config.compose import compose_trial

        key = tuple(overrides)
        if key not in self._trials:
            self._trials[key] = compose_trial(list(key))
        return copy.deepcopy(self._trials[key])


@pytest.fixture(scope="session")
def composed() -> Compositions:
    """The session's memo of compositions: `composed.root([...])`, `composed.trial([...])`."""
    return Compositions()
