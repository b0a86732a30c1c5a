"""A real `mlflow server` on 127.0.0.1 and a free port, with a SQLite backend and proxied artifacts in a
folder of the test; killed (its process group) by whoever made it."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from testkit.processes import kill_process_group


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
    --artifacts-destination <root>/art --host 127.0.0.1 --port <port> --workers 1` (or `workers`), in its own session
    (its process group holds uvicorn and its workers). The server's job runner is switched off
    (MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false): it is not used here and costs seconds of CPU."""

    def __init__(self, root: Path, port: Optional[int] = None, workers: int = 1):
        self.root, self.workers = Path(root), workers
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
                 "--workers", str(self.workers)],
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
