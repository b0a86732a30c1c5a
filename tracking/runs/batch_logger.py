"""Metrics sent to MLflow in batches from a background thread, so training never waits on the network.

`add()` only appends to a queue. The thread sends up to 1000 metrics per request (MLflow's batch limit)
about once a second, the first time after `first_s` (the TrialRecorder's: 5 s, so that a trial shorter
than that sends its metrics in one request at its end); a request that fails (server gone, SQLite busy)
is retried with back-off and the metrics stay queued — nothing is dropped. `close(timeout)` sends what
is left and returns the metrics that could not be delivered in time, so the caller can keep them for a
later back-fill.

A run's params (`params=`) go with the first batch and its closing tags (`close(tags=…)`) with the last, so a
short trial's whole record is one request (MLflow takes up to 100 params and 100 tags in a batch, 1000
entities in all; more go in further batches). `send` is called as `send(metrics)`, or as
`send(metrics, params=…, tags=…)` when a batch carries either.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Sequence

from mlflow.entities import Metric, Param, RunTag

MAX_BATCH = 1000          # metrics per request, and entities of every kind together (MLflow's limits)
MAX_PARAMS_TAGS = 100     # params per request, and tags per request


class BatchLogger:
    def __init__(self, send: Callable[..., None], interval_s: float = 1.0, params: Sequence[Param] = (),
                 first_s: float | None = None):
        self._send, self._interval = send, interval_s
        self._first = interval_s if first_s is None else first_s
        self._queue: list[Metric] = []
        self._params: list[Param] = list(params)      # with the first batch(es)
        self._tags: list[RunTag] = []                 # the closing tags: with the last batch(es)
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

    def _next(self) -> tuple[list[Metric], list[Param], list[RunTag]]:
        """The next request's metrics, params and tags (under the lock): params first, the tags once the
        metrics left fit beside them."""
        params = self._params[:MAX_PARAMS_TAGS]
        room = MAX_BATCH - len(params)
        tags: list[RunTag] = []
        if self._tags and len(params) == len(self._params):
            tags = self._tags[:MAX_PARAMS_TAGS]
            if len(self._queue) > room - len(tags):
                tags = []                       # metrics left over: the tags go with a later batch
        return self._queue[:room - len(tags)], params, tags

    def _flush_once(self) -> bool:
        with self._lock:
            batch, params, tags = self._next()
        if not (batch or params or tags):
            return True
        try:
            if params or tags:
                self._send(batch, params=params, tags=tags)
            else:
                self._send(batch)
        except Exception:
            return False
        with self._lock:
            del self._queue[:len(batch)]
            del self._params[:len(params)]
            del self._tags[:len(tags)]
        return True

    def _run(self) -> None:
        backoff = self._first
        while True:
            self._wake.wait(backoff)
            self._wake.clear()
            ok = True
            while ok and self.pending():
                ok = self._flush_once()
            if self._stopped and ((ok and not self.pending()) or time.monotonic() >= self._deadline):
                return              # closed: all sent, or the time to send it is up
            backoff = self._interval if ok else min(backoff * 2, 30.0)
            if self._stopped and ok:    # the closing tags came in after the last look: send them now
                backoff = 0.0
            elif self._stopped:     # closing and a send failed: retry within the time left
                backoff = min(self._close_backoff, max(0.0, self._deadline - time.monotonic()))
                self._close_backoff = min(self._close_backoff * 2, 5.0)

    def pending(self) -> int:
        """Metrics, params and tags not sent yet."""
        with self._lock:
            return len(self._queue) + len(self._params) + len(self._tags)

    def close(self, timeout_s: float = 30.0, tags: Sequence[RunTag] = ()) -> list[Metric]:
        """Deliver what is queued, with `tags` in the last request, waiting at most `timeout_s` (plus a send
        already under way); returns the undelivered metrics (`unsent` says whether params or tags were left
        too). The thread is woken to send the rest, retrying a failed send with back-off until the deadline,
        and joined: no polling, so a trial's worker slot is held only as long as the sending takes."""
        with self._lock:
            self._tags += list(tags)
        self._deadline = time.monotonic() + timeout_s
        self._stopped = True
        self._wake.set()
        self._thread.join(min(timeout_s, threading.TIMEOUT_MAX))
        with self._lock:
            left, self._queue = list(self._queue), []
            self.unsent = len(left) + len(self._params) + len(self._tags)
            self._params, self._tags = [], []
        return left
