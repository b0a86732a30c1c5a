"""A throwaway PostgreSQL server for the tests that stop one: `initdb` into a temporary folder and `pg_ctl`
on a free loopback port, so a test can stop it (as if it crashed) and start it again without touching
the machine's own server. Run as the `postgres` user when the tests run as root (initdb refuses root)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from testkit.mlflow_server import free_port


def pg_bin(tool: str) -> Optional[str]:
    """The path of a PostgreSQL server tool (Debian keeps them out of PATH), or None."""
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return candidates[-1] if candidates else None


class ThrowawayPostgres:
    """In its own folder under the system temp dir (the `postgres` user must reach it, which pytest's
    root-only tmp_path does not allow); `remove()` deletes it."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="gradstudy-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user = os.geteuid() == 0
        for tool in ("initdb", "pg_ctl", "postgres"):
            if pg_bin(tool) is None:
                raise RuntimeError(f"PostgreSQL's {tool} is not installed (Debian: postgresql)")

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [pg_bin(argv[0]) or argv[0], *argv[1:]]
        if self.as_user:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/")

    def init(self) -> "ThrowawayPostgres":
        self.sockets.mkdir(exist_ok=True)
        if self.as_user:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        done = self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                         "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        return self

    def start(self) -> "ThrowawayPostgres":
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=100")
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
                         "start")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-2000:]}\n{self.log_text()}")
        return self

    def pid(self) -> Optional[int]:
        """The postmaster's pid (from its pid file), or None when it is not running."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, mode: str = "immediate") -> None:
        """Stop this server only (`immediate`: no clean shutdown, as if it crashed)."""
        if self.pid() is None:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        deadline = time.monotonic() + 30
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    def remove(self) -> None:
        """Stop it and delete its folder."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""
