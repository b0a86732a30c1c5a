"""Shared helpers for the tests that run real studies (tests/test_study_run.py): a session-wide local Ray
that is shut down at the end, a data directory per test, and `gradstudy` driver subprocesses that are
stopped (with the Ray processes they started) whatever the test does."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

REPO = Path(__file__).resolve().parent.parent


def gradstudy_command() -> list[str]:
    """The `gradstudy` entry point of the interpreter running the tests (the venv's)."""
    script = Path(sys.executable).parent / "gradstudy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "study.cli"]


def cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GRADSTUDY_HOME"] = str(home)
    env.pop("RAY_ADDRESS", None)            # a local Ray, never a cluster someone else runs
    env["PYTHONUNBUFFERED"] = "1"
    return env


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1,
               proc: Optional["Driver"] = None):
    """Poll `predicate` until it returns something truthy (returned); fail after `timeout` seconds, or at
    once if the driver `proc` exits in the meantime."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the driver exited (rc={proc.returncode}) before: {what}\n{proc.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for: {what}"
                        + (f"\n{proc.output()}" if proc is not None else ""))
        time.sleep(interval)



def kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session, and everything in its group; reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass

class Driver:
    """A `gradstudy …` subprocess in its own session (so its process group holds it and the Ray
    head processes it starts); stdout and stderr go to files, so a chatty driver never blocks."""

    def __init__(self, args: list[str], home: Path, logs: Path):
        logs.mkdir(parents=True, exist_ok=True)
        n = len(list(logs.glob("*.out")))
        self.out_path, self.err_path = logs / f"{n}.out", logs / f"{n}.err"
        self.args = args
        self.started = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(gradstudy_command() + args, cwd=REPO, env=cli_env(home),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.pid = self.proc.pid

    def poll(self) -> Optional[int]:
        return self.proc.poll()

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            pytest.fail(f"`gradstudy {' '.join(self.args)}` did not finish within {timeout:.0f} s\n"
                        f"{self.output()}")

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout()[-3000:]}\n--- stderr ---\n{self.stderr()[-3000:]}"

    def kill_group(self) -> None:
        """SIGKILL the driver's whole process group (the driver, Ray's GCS, raylet, agents…)."""
        kill_process_group(self.proc)


@pytest.fixture(scope="session")
def ray_session():
    """The in-process studies share one local Ray (study.placement.connect starts it on first use with
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


# ----------------------------------------------------------------------------------------------------
# MLflow tracking servers for tests/test_tracking.py: a real `mlflow server` on 127.0.0.1 and a free
# port, with a SQLite backend and proxied artifacts in a folder of the test; killed at teardown.


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


class MlflowServer:
    """`mlflow server --backend-store-uri sqlite:///<root>/server.db --serve-artifacts
    --artifacts-destination <root>/art --host 127.0.0.1 --port <port> --workers 1`, in its own session
    (its process group holds uvicorn and its workers). The server's job runner is switched off
    (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false): it is not used here and costs seconds of CPU."""

    def __init__(self, root: Path, port: Optional[int] = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.db = self.root / "server.db"
        self.art = self.root / "art"
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> "MlflowServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        mlflow = Path(sys.executable).parent / "mlflow"
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        env.pop("MLFLOW_TRACKING_URI", None)
        self.starts += 1
        self.log = self.root / f"server-{self.starts}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{self.db}", "--serve-artifacts",
                 "--artifacts-destination", str(self.art), "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", "1"],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not http_ok(f"{self.url}/health"):
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited (rc={self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"mlflow server did not answer {self.url}/health within {timeout:.0f} s:\n"
                            f"{self.log.read_text()[-3000:]}")
            time.sleep(0.25)
        return self

    def kill(self) -> None:
        """SIGKILL the server's whole process group (as if its machine died)."""
        if self.proc is None:
            return
        kill_process_group(self.proc)
        deadline = time.monotonic() + 10          # the port is free again before a restart
        while http_ok(f"{self.url}/health", timeout=0.5) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture
def mlflow_servers(tmp_path):
    """Make servers: `mlflow_servers.new(name)` (not started); every one is killed at teardown."""

    class Servers:
        def __init__(self):
            self.made: list[MlflowServer] = []

        def new(self, name: str = "server", port: Optional[int] = None) -> MlflowServer:
            server = MlflowServer(tmp_path / name, port)
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
