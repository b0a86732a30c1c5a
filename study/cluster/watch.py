"""Noticing that the Ray cluster is gone mid-study, and saying so before Ray ends the driver.

When the head of the cluster (its GCS) stops answering, Ray's driver waits for it
(`RAY_gcs_rpc_server_reconnect_timeout_s`, 60 s by default) and then ends the process from inside Ray's
C++ core: exit 1 and a log line about the GCS, nothing about the study. A watch thread here tries a TCP
connection to the GCS every `interval_s`; once it has not answered for `lost_after_s`:
- the driver's loop (study/driver/runner.py), which turns at least once a second, stops with ClusterLost: the
  trials in flight stay RUNNING in the storage, and the next driver of the study (`gradstudy resume`)
  finds them as orphans and queues them again, so nothing is lost;
- if the driver's main thread is stuck inside a Ray call instead, the watch says the same on stderr
  itself and ends the process (`exit_code`) `grace_s` later, still before Ray would.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import Optional


class ClusterLost(RuntimeError):
    """The Ray cluster stopped answering mid-study; the study stays resumable."""


def gcs_address() -> Optional[tuple[str, int]]:
    """(host, port) of the connected Ray's GCS, or None when it cannot be told."""
    import ray

    try:
        address = ray.get_runtime_context().gcs_address
        host, _, port = str(address).rpartition(":")
        return host, int(port)
    except Exception:   # not connected, or an address form without a port (Ray client)
        return None


def answers(address: tuple[str, int], timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


class ClusterWatch:
    """Watches one GCS address from a daemon thread: `check()` raises ClusterLost once it is lost."""

    def __init__(self, address: tuple[str, int], message: str, lost_after_s: float = 15.0,
                 interval_s: float = 1.0, grace_s: float = 20.0, exit_code: int = 7, shown_as: str = ""):
        self.address, self.message = address, message
        self.shown_as = shown_as or f"{address[0]}:{address[1]}"   # as the user wrote it (cluster.address)
        self.lost_after_s, self.interval_s, self.grace_s, self.exit_code = lost_after_s, interval_s, grace_s, exit_code
        self.lost_at: Optional[float] = None          # monotonic time it was declared lost
        self.handled = threading.Event()              # the main thread has taken the loss in hand
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gradstudy-cluster-watch", daemon=True)

    def __enter__(self) -> "ClusterWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    @property
    def lost(self) -> bool:
        return self.lost_at is not None

    def describe(self) -> str:
        return (f"the Ray cluster at {self.shown_as} stopped answering mid-study (no answer for "
                f"{self.lost_after_s:.0f} s). {self.message}")

    def check(self) -> None:
        """Raise ClusterLost if the cluster is lost (called by the driver's loop at each turn)."""
        if self.lost:
            self.handled.set()
            raise ClusterLost(self.describe())

    def _run(self) -> None:
        silent_since: Optional[float] = None
        while not self._stop.wait(self.interval_s):
            if answers(self.address, timeout=min(2.0, self.interval_s * 2)):
                silent_since = None
                continue
            now = time.monotonic()
            silent_since = silent_since or now
            if now - silent_since >= self.lost_after_s:
                self.lost_at = now
                break
        if self.lost and not self.handled.wait(self.grace_s) and not self._stop.is_set():
            # the main thread is stuck inside Ray: say it here, before Ray ends the process saying less
            print(f"gradstudy: cluster error: {self.describe()}", file=sys.stderr, flush=True)
            os._exit(self.exit_code)


__all__ = ["ClusterLost", "ClusterWatch", "gcs_address", "answers"]
