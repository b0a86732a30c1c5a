"""`gradstudy ui [NAME] [--open] [--port P] [--tracking-uri URI] [--no-serve]`: a link per study to its
trials in the MLflow UI (flat, sorted by the first objective, in the training view: tracking/ui/links.py).

- The local store (default): `mlflow ui` is started on 127.0.0.1:P over it and serves until Ctrl-C or
  SIGTERM; `--no-serve` prints the links only. Once the UI answers, stdout gets the "MLflow UI on …" line,
  the path of the UI's log, then the links, last. The server's own output (uvicorn's access log, its start
  and stop lines) is appended to that log, `<data dir>/mlflow/ui.log`, not to stdout.
- A tracking server (`--tracking-uri http(s)://…`, or an http(s) MLFLOW_TRACKING_URI): the server is its
  own UI; the links are printed, nothing is started.
`--open` opens the (first) link in the default browser. An unknown NAME is one line naming it and the
studies the store holds, exit 2.

A port that anything else holds (another MLflow UI on another store, any listener) is one line naming the
port, exit 2, before `mlflow ui` starts (the port is bind-tested); the same if `mlflow ui` exits before it
answers because the port was taken in the meantime. Links are printed only once the server answering on
the port is ours (on Linux the listening socket is looked up in /proc and must belong to our server's
processes), never those of another server that happens to answer there.

`mlflow ui` runs in a process group of its own (a session: the terminal's Ctrl-C reaches only us), with
its uvicorn server and workers, under a small guardian process that leads the group (`guard`). Whatever
ends `gradstudy ui` — Ctrl-C (SIGINT), SIGTERM, an error — stops that whole group (SIGTERM, then SIGKILL
after 10 s); if `gradstudy ui` dies without doing so (SIGKILL, a crash, the terminal closing), the
guardian sees its pipe from us close and stops the group itself. Exit codes while serving: 130 after
Ctrl-C / SIGINT ("interrupted", as every gradstudy command), 143 (128 + SIGTERM) after SIGTERM, else the
server's own exit code.
"""
from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import webbrowser
from pathlib import Path
from typing import Callable

from study.cli.exit_codes import Exit
from tracking.runs.errors import TrackingError
from tracking.runs.urls import scrub
from workers.config import ConfigError

PREFIX = "gradstudy/"
FILTERS = ("metrics.`final/test_loss` < 0.17", "tags.`gradstudy.health` = 'vanishing'",
           "params.`model.cell` = 'lstm'")
HOST = "127.0.0.1"
STOP_GRACE_S = 10.0                      # SIGTERM to the server's group, then SIGKILL


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never through http_proxy


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def study_links(client, ui: str, name: str | None) -> list[tuple[str, str, str]]:
    """(study, link to its trials, link to its report) of NAME or of every study in the store."""
    from tracking.ui.links import QUERY_TAG, run_url, trials_url

    experiments = client.search_experiments(max_results=1000, filter_string=f"name LIKE '{PREFIX}%'")
    by_study = {e.name[len(PREFIX):]: e for e in experiments}
    if name is not None and name not in by_study:
        known = ", ".join(sorted(by_study)) or "none"
        raise ConfigError("NAME", name, f"a study recorded in this MLflow store (studies there: {known})",
                          f"study {name!r} has no MLflow experiment `{PREFIX}{name}` in this store; studies there: "
                          f"{known}")
    out = []
    for study in ([name] if name is not None else sorted(by_study)):
        e = by_study[study]
        report = "(none yet)"
        parents = client.search_runs([e.experiment_id], filter_string="tags.`gradstudy.role` = 'study'", max_results=1)
        if parents:
            report = run_url(ui, e.experiment_id, parents[0].info.run_id, "artifacts/report/report.html")
        out.append((study, trials_url(ui, e.experiment_id, e.tags.get(QUERY_TAG)), report))
    return out


def _print_links(links: list[tuple[str, str, str]]) -> None:
    """The filter examples, then the links: the links are the last lines, where a terminal keeps them."""
    if not links:
        print("no studies recorded in this MLflow store yet: `gradstudy run …` first", flush=True)
        return
    print("filters (in the runs page's search box; names with / or . need backticks): " + " · ".join(FILTERS))
    width = max([len(s) for s, _, _ in links] + [5])
    for study, trials, report in links:
        print(f"{study:<{width}}  trials: {trials}")
        print(f"{'':<{width}}  report: {report}")
    sys.stdout.flush()


def log_path() -> Path:
    """Where the served `mlflow ui` writes (appends) its output: `<data dir>/mlflow/ui.log`."""
    from study.storage.paths import data_dir
    from tracking.runs.connection import local_root

    return local_root(data_dir()) / "ui.log"


def port_in_use(port: int, why: str) -> ConfigError:
    return ConfigError("--port", port, "a free port",
                       f"port {port} on {HOST} is in use ({why}): --port picks another")


def check_port_free(port: int) -> None:
    """Bind-test HOST:port as the server will bind it (SO_REUSEADDR, as uvicorn: a closed server's
    TIME_WAIT connections do not count); a listener there is a ConfigError naming the port."""
    if not 0 < port < 65536:
        raise ConfigError("--port", port, "a TCP port, 1 to 65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise ConfigError("--port", port, f"a port this user may listen on ({exc.strerror})") from None
            what = "an MLflow server answers there" if _answers(f"http://{HOST}:{port}/health") else \
                "another process listens there"
            raise port_in_use(port, what) from None


def _listening_inodes(port: int) -> set[str] | None:
    """The `socket:[inode]` names of the sockets listening on TCP `port` (IPv4 and IPv6); None without
    /proc/net (not Linux)."""
    found, read = set(), False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        read = True
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:   # 0A: LISTEN
                found.add(f"socket:[{cols[9]}]")
    return found if read else None


def serves_port(group: int, port: int) -> bool:
    """Whether a process of process group `group` holds the socket listening on `port` (True where /proc
    cannot tell: the bind test before the start is the check there)."""
    inodes = _listening_inodes(port)
    if inodes is None:
        return True
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != group:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return True
        except OSError:      # gone meanwhile, or not ours to read
            continue
    return False


class Terminated(Exception):
    """SIGTERM arrived while `gradstudy ui` served (raised by the handler `serve` installs)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def group_running(pgid: int, but: int = 0) -> bool:
    """Whether a process of process group `pgid` other than pid `but` still runs (zombies waiting for a
    reaper do not count); without /proc, whether the group exists at all."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not os.path.isdir("/proc/self"):
        return True
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == but:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                state, _ppid, group = f.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False


def stop_group(pgid: int, reap: Callable[[], object] = lambda: None, but: int = 0) -> None:
    """SIGTERM process group `pgid` (the guardian, `mlflow ui`, uvicorn and its workers), SIGKILL what is
    left of it after STOP_GRACE_S. `reap` reaps the caller's own child in the group, so that it does not
    linger as a zombie; `but` (the caller, when it is in the group) is not waited for."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        reap()
        if not group_running(pgid, but):
            return
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            reap()
            if not group_running(pgid, but):
                return
            time.sleep(0.1)


def guard(command: list[str]) -> int:
    """The server's guardian: the leader of the server's process group, run as `python -c …guard…` with
    the read end of a pipe on its stdin whose write end only `gradstudy ui` holds. It runs `command`
    (`mlflow ui …`) and returns its exit code; when the pipe reaches EOF first — `gradstudy ui` ended
    without stopping the server (SIGKILL, a crash, a hang-up) — it stops the group itself. Its SIGTERM
    (from `gradstudy ui`'s own stop) is a no-op: it ends with the server."""
    signal.signal(signal.SIGTERM, lambda signum, frame: None)   # a handler, not SIG_IGN: not inherited
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    orphaned = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), orphaned.set()), daemon=True).start()
    while server.poll() is None and not orphaned.wait(0.5):
        pass
    if orphaned.is_set():
        stop_group(os.getpgrp(), server.poll, but=os.getpid())
    return server.wait()


GUARD = "import sys; from study.cli.ui import guard; sys.exit(guard(sys.argv[1:]))"


def ui(args: argparse.Namespace) -> int:
    from study.storage.paths import data_dir
    from tracking.runs.connection import connect, resolve_uri
    from tracking.ui.links import ui_address

    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    uri = args.tracking_uri or (env if env.startswith(("http://", "https://")) else "")   # a server, or local
    remote = uri.startswith(("http://", "https://"))
    if uri and not remote:
        raise TrackingError(uri, "an http(s) tracking server, or no --tracking-uri for the local store")
    if not (remote or args.no_serve):
        check_port_free(args.port)          # a held port: one line before anything is loaded or started
    if not remote:
        from tracking.runs.connection import local_store

        store = local_store(data_dir())
        if not store.exists() and (args.name or args.no_serve):   # no study to show: nothing is created for it
            raise ConfigError("GRADSTUDY_HOME", str(data_dir()), "a data directory that holds MLflow records",
                              f"no study has been recorded in {store.parent} yet: `gradstudy run` records one "
                              "there (or give --tracking-uri http://host:port for a server)")
    client = connect(uri, data_dir())
    address = ui_address(uri, None if remote else args.port)
    if remote or args.no_serve:
        links = study_links(client, address, args.name)
        _print_links(links)
        if args.open and links:
            webbrowser.open(links[0][1])
        return 0

    links = study_links(client, address, args.name)     # an unknown NAME fails before anything starts
    return serve(args, resolve_uri("", data_dir()), address, links)


def serve(args: argparse.Namespace, store: str, address: str, links: list[tuple[str, str, str]]) -> int:
    """Run `mlflow ui` over `store` on HOST:args.port until it ends or we are stopped (module docstring)."""
    from study.storage.paths import data_dir
    from tracking.runs.connection import local_root

    beside = Path(sys.executable).parent / "mlflow"     # this environment's mlflow first
    mlflow = str(beside) if beside.exists() else shutil.which("mlflow") or "mlflow"
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
                                                                "false")}   # no background job runners
    command = [mlflow, "ui", "--backend-store-uri", store, "--default-artifact-root",
               (local_root(data_dir()) / "artifacts").as_uri(), "--host", HOST, "--port", str(args.port),
               "--workers", "1"]
    log = log_path()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    server = lifeline = None
    try:
        with open(log, "ab") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} gradstudy ui (pid {os.getpid()}): mlflow ui "
                    f"on {HOST}:{args.port} over {scrub(store)}\n".encode())
            f.flush()
            start = f.tell()
            read_end, lifeline = os.pipe()          # the guardian's stdin: EOF once we are gone, however
            try:
                server = subprocess.Popen([sys.executable, "-c", GUARD, *command], env=env, stdin=read_end,
                                          stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
            finally:
                os.close(read_end)
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:   # checked first: another server on the port must not pass for ours
                if _port_taken(args.port, log, start):
                    raise port_in_use(args.port, "taken while `mlflow ui` started")
                print(f"gradstudy: `mlflow ui` exited with code {server.returncode} before it answered; "
                      f"its log: {log}", file=sys.stderr)
                return Exit.CONFIG
            if _answers(f"{address}/health") and serves_port(server.pid, args.port):
                break
            if time.monotonic() > deadline:
                raise TrackingError(address, f"an MLflow UI answering within 120 s (its log: {log})")
            time.sleep(0.3)
        print(f"MLflow UI on {scrub(store)}: {address}  (Ctrl-C to stop)")
        print(f"its log (requests, server output): {log}")
        _print_links(links)
        if args.open and links:
            webbrowser.open(links[0][1])
        return server.wait()
    except Terminated:
        print("gradstudy: stopped (SIGTERM)", file=sys.stderr)
        return Exit.TERMINATED
    finally:
        if main_thread:    # no second signal cuts the clean-up short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if server is not None:
                stop_group(server.pid, server.poll)
                try:
                    server.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            if lifeline is not None:
                os.close(lifeline)
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, interrupt)
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _port_taken(port: int, log: Path, start: int) -> bool:
    """After `mlflow ui` exited before answering: was it the port? (held by another process now, or said
    so in what the server wrote to its log from byte `start` on)."""
    try:
        check_port_free(port)
    except ConfigError:
        return True
    try:
        with open(log, "rb") as f:
            f.seek(start)
            return b"address already in use" in f.read().lower()
    except OSError:
        return False
