"""Metrics sent to MLflow in batches from a background thread, so training never waits on the network.

`add()` only appends to a queue. The thread sends up to 1000 metrics per request (MLflow's batch limit)
about once a second; a request that fails (server gone, SQLite busy) is retried with back-off and the
metrics stay queued — nothing is dropped. `close(timeout)` sends what is left and returns the metrics
that could not be delivered in time, so the caller can keep them for a later back-fill.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Sequence

from mlflow.entities import Metric

MAX_BATCH = 1000


class BatchLogger:
    def __init__(self, send: Callable[[Sequence[Metric]], None], interval_s: float = 1.0):
        self._send, self._interval = send, interval_s
        self._queue: list[Metric] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._deadline = math.inf      # set by close(): until when a failed send is retried
        self._close_backoff = 0.1
        self._thread = threading.Thread(target=self._run, name="mlflow-batches", daemon=True)
        self._thread.start()

    def add(self, key: str, value: float, step: int) -> None:
        metric = Metric(key, value, int(time.time() * 1000), step)
        with self._lock:
            self._queue.append(metric)
            if len(self._queue) >= MAX_BATCH:
                self._wake.set()

    def _flush_once(self) -> bool:
        with self._lock:
            batch = self._queue[:MAX_BATCH]
        if not batch:
            return True
        try:
            self._send(batch)
        except Exception:
            return False
        with self._lock:
            del self._queue[:len(batch)]
        return True

    def _run(self) -> None:
        backoff = self._interval
        while True:
            self._wake.wait(backoff)
            self._wake.clear()
            ok = True
            while ok and self.pending():
                ok = self._flush_once()
            if self._stopped and (ok or time.monotonic() >= self._deadline):
                return              # closed: all sent, or the time to send it is up
            backoff = self._interval if ok else min(backoff * 2, 30.0)
            if self._stopped:       # closing and a send failed: retry within the time left
                backoff = min(self._close_backoff, max(0.0, self._deadline - time.monotonic()))
                self._close_backoff = min(self._close_backoff * 2, 5.0)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def close(self, timeout_s: float = 30.0) -> list[Metric]:
        """Deliver what is queued, waiting at most `timeout_s` (plus a send already under way); returns the
        undelivered metrics. The thread is woken to send the rest, retrying a failed send with back-off
        until the deadline, and joined: no polling, so a trial's worker slot is held only as long as the
        sending takes."""
        self._deadline = time.monotonic() + timeout_s
        self._stopped = True
        self._wake.set()
        self._thread.join(min(timeout_s, threading.TIMEOUT_MAX))
        with self._lock:
            left, self._queue = list(self._queue), []
        return left
