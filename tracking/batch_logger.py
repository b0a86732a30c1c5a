"""Metrics sent to MLflow in batches from a background thread, so training never waits on the network.

`add()` only appends to a queue. The thread sends up to 1000 metrics per request (MLflow's batch limit)
about once a second; a request that fails (server gone, SQLite busy) is retried with back-off and the
metrics stay queued — nothing is dropped. `close(timeout)` sends what is left and returns the metrics
that could not be delivered in time, so the caller can keep them for a later back-fill.
"""
from __future__ import annotations

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
        while not self._stopped:
            self._wake.wait(backoff)
            self._wake.clear()
            ok = True
            while ok and self.pending():
                ok = self._flush_once()
            backoff = self._interval if ok else min(backoff * 2, 30.0)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def close(self, timeout_s: float = 30.0) -> list[Metric]:
        """Deliver what is queued, waiting at most `timeout_s`; returns the undelivered metrics. The thread
        is woken to send the rest and joined (no polling: a trial's worker slot is not held longer than
        the send); what it could not send is retried here, with back-off, until the deadline."""
        deadline = time.monotonic() + timeout_s
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout_s)
        delay = 0.1
        while not self._thread.is_alive() and self.pending() and time.monotonic() < deadline:
            if not self._flush_once():
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 5.0)
        with self._lock:
            left, self._queue = list(self._queue), []
        return left
