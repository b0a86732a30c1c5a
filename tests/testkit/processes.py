"""Processes of the tests: `gradstudy` driver subprocesses in their own session, /proc checks, and
polling with a deadline. Nothing here stops a process the tests did not start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]   # tests/testkit/processes.py -> the repository


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
