"""`gradstudy ui` as a server command, for real: `gradstudy ui` subprocesses serving a real local MLflow
store through a real `mlflow ui` (uvicorn) on a free port of 127.0.0.1.

  - a port that something else holds (a plain socket listener; another `gradstudy ui`'s MLflow server) is
    one line on stderr naming the port, exit 2, within seconds and before any `mlflow ui` starts;
  - stdout is "MLflow UI on …", the log's path, then the links, last; the server's own output (uvicorn's
    access log) goes to <data dir>/mlflow/ui.log, not to stdout;
  - SIGTERM, SIGKILL (the guardian process) and Ctrl-C (SIGINT) each leave no `mlflow ui` / uvicorn
    process behind and the port free.

The study whose links are printed is recorded in the store as `gradstudy run` records it (its MLflow
experiment and parent run, study/recording/tracked_study.py TrackedStudy.open), without running trials. Every process
a test starts is stopped by its pid at the end; the server processes (found as descendants of the
`gradstudy ui` the test started) by their process group, after checking that they are still ours.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from testkit.mlflow_server import free_port
from testkit.processes import Driver, alive, cmdline, wait_until

STUDY = "uix"
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never through a proxy
SERVER_WORDS = ("mlflow", "uvicorn", "study.cli.ui")                 # what our server processes run


def answers(url: str) -> bool:
    try:
        with DIRECT.open(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (children, grandchildren, …), from /proc."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, pp in parent.items() if pp in frontier]
        found += children
        frontier = children
    return found


def ours(pid: int) -> bool:
    return alive(pid) and any(word in cmdline(pid) for word in SERVER_WORDS)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A data directory whose MLflow store holds study STUDY (its experiment and parent run)."""
    home = tmp_path_factory.mktemp("ui-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADSTUDY_HOME", str(home))
        from study.config.compose import compose_root
        from study.recording.tracked_study import TrackedStudy

        TrackedStudy("", STUDY).open(compose_root(["experiment=demo", f"study.name={STUDY}"]), {})
    return home


@pytest.fixture
def uis(tmp_path):
    """Start `gradstudy ui …` drivers: `uis.start(args, home)`; `uis.servers(driver)` records the server
    processes under it. At teardown the drivers still running and the recorded server processes still
    alive (and still running mlflow/uvicorn/the guardian) are SIGKILLed."""

    class Uis:
        def __init__(self):
            self.drivers: list[Driver] = []
            self.server_pids: set[int] = set()

        def start(self, args: list[str], home: Path) -> Driver:
            d = Driver(args, home, tmp_path / "logs")
            self.drivers.append(d)
            return d

        def servers(self, d: Driver) -> list[int]:
            pids = [p for p in descendants(d.pid) if ours(p)]
            self.server_pids.update(pids)
            return pids

    u = Uis()
    yield u
    for d in u.drivers:
        if d.poll() is None:
            d.kill_group()
    for pid in u.server_pids:
        if ours(pid):
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def serve(uis, home: Path) -> tuple[Driver, int, list[int]]:
    """`gradstudy ui` on a free port, up to its links; (driver, port, its server's pids)."""
    port = free_port()
    d = uis.start(["ui", "--port", str(port)], home)
    wait_until(lambda: "report: " in d.stdout(), timeout=120, what="`gradstudy ui` printing its links",
               interval=0.25, proc=d)
    pids = uis.servers(d)
    assert pids and all(os.getpgid(p) != os.getpgid(d.pid) for p in pids), \
        [(p, cmdline(p)) for p in pids]                               # a process group of their own
    assert answers(f"http://127.0.0.1:{port}/health")
    return d, port, pids


def assert_server_gone(pids: list[int], port: int, timeout: float) -> float:
    """Every server process gone and the port free within `timeout` s; returns how long it took."""
    started = time.monotonic()
    wait_until(lambda: not [p for p in pids if alive(p)] and port_free(port), timeout=timeout,
               what=f"the server's processes {[(p, cmdline(p)) for p in pids if alive(p)]} gone, port {port} free",
               interval=0.1)
    assert not answers(f"http://127.0.0.1:{port}/health")
    return time.monotonic() - started


@pytest.mark.mlflow_server
@pytest.mark.services
@pytest.mark.timeout(120)
def test_a_port_held_by_a_listener_is_one_line_and_exit_2_before_mlflow_starts(home, uis):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        started = time.monotonic()
        d = uis.start(["ui", "--port", str(port)], home)
        rc = d.wait(60)
        took = time.monotonic() - started
        assert rc == 2, d.output()
        lines = d.stderr().splitlines()
        assert len(lines) == 1, d.output()
        assert f"port {port} on 127.0.0.1 is in use" in lines[0] and "--port picks another" in lines[0], lines
        assert d.stdout() == "", d.output()                       # no links, nothing else
        assert not (home / "mlflow" / "ui.log").exists()          # no `mlflow ui` was started
        assert took < 15, f"{took:.1f} s"                         # `mlflow ui` alone takes about 10 s to fail
    print(f"refused in {took:.1f} s: {lines[0]}")


@pytest.mark.mlflow_server
@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_links_come_last_the_servers_log_goes_to_its_file_and_ctrl_c_stops_it(store, tmp_path, uis):
    d, port, pids = serve(uis, store)
    url = f"http://127.0.0.1:{port}"
    log = store / "mlflow" / "ui.log"
    lines = d.stdout().splitlines()
    assert lines[0].startswith(f"MLflow UI on sqlite:///{store / 'mlflow' / 'mlflow.db'}: {url}"), lines
    assert lines[1] == f"its log (requests, server output): {log}", lines
    assert re.fullmatch(rf"{STUDY}\s+trials: {re.escape(url)}/#/experiments/\d+/runs\?\S+", lines[-2]), lines
    assert re.fullmatch(rf"\s+report: {re.escape(url)}/#/experiments/\d+/runs/\w+/artifacts/report/report\.html"
                        r"\?workflowType=machine_learning", lines[-1]), lines
    assert len(lines) == 5 and lines[2].startswith("filters"), lines     # nothing after the links
    # one request, in the log and not on our stdout or stderr
    token = uuid.uuid4().hex
    assert answers(f"{url}/health?probe={token}")
    wait_until(lambda: re.search(rf'"GET /health\?probe={token} HTTP/1.1" 200', log.read_text(errors="replace")),
               timeout=10, what=f"the request in {log}")
    text = log.read_text(errors="replace")
    assert f"gradstudy ui (pid {d.pid}): mlflow ui on 127.0.0.1:{port}" in text
    assert "Application startup complete" in text                 # uvicorn's own lines too
    assert "GET /health" not in d.stdout() + d.stderr() and "Uvicorn" not in d.stdout() + d.stderr(), d.output()
    assert d.stdout().splitlines() == lines                       # nothing printed since the links

    # the port is now held by another MLflow server: another store's `gradstudy ui` refuses it, printing
    # no links into this one
    other = tmp_path / "other-home"
    other.mkdir()
    second = uis.start(["ui", "--port", str(port)], other)
    assert second.wait(60) == 2, second.output()
    assert second.stdout() == "" and second.stderr().splitlines() == [
        f"gradstudy: config error: port {port} on 127.0.0.1 is in use (an MLflow server answers there): "
        "--port picks another"], second.output()

    os.kill(d.pid, signal.SIGINT)                                 # Ctrl-C
    assert d.wait(30) == 130, d.output()
    took = assert_server_gone(pids, port, timeout=15)
    print(f"Ctrl-C: server gone {took:.1f} s after gradstudy ui exited")


@pytest.mark.mlflow_server
@pytest.mark.services
@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signal_to_gradstudy_ui_leaves_no_server_behind(store, uis, sig):
    """SIGTERM: `gradstudy ui` stops its server's process group and exits 143. SIGKILL: it cannot, and its
    guardian (the group's leader) sees it gone and stops the group."""
    d, port, pids = serve(uis, store)
    assert len(pids) >= 3, [(p, cmdline(p)) for p in pids]       # the guardian, `mlflow ui`, uvicorn
    started = time.monotonic()
    os.kill(d.pid, sig)
    rc = d.wait(30)
    assert rc == (143 if sig == signal.SIGTERM else -signal.SIGKILL), d.output()
    if sig == signal.SIGTERM:
        assert d.stderr().splitlines() == ["gradstudy: stopped (SIGTERM)"], d.output()
    assert_server_gone(pids, port, timeout=15)
    print(f"{signal.Signals(sig).name}: server gone {time.monotonic() - started:.1f} s after the signal")


def test_port_help_shows_its_default_and_a_bad_port_is_one_line(home, capsys):
    from study import cli
    from study.cli.main import parser

    ui = next(a for a in parser()._subparsers._group_actions[0].choices.items() if a[0] == "ui")[1]
    assert "(default: 5000)" in " ".join(ui.format_help().split())
    assert cli.main(["ui", "--port", "70000"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["gradstudy: config error: --port=70000 is invalid; valid: a TCP port, 1 to 65535"], err


def test_the_server_answering_on_the_port_must_be_ours():
    """`gradstudy ui` prints links only when its own server's process group holds the listening socket:
    a listener of this process counts for this process's group, not for another group."""
    import subprocess
    import sys

    from study.cli.ui import serves_port

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert serves_port(os.getpgrp(), port)
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
        try:
            assert not serves_port(other.pid, port)
        finally:
            other.kill()
            other.wait()
    assert not serves_port(os.getpgrp(), port)                    # closed: nobody holds it
