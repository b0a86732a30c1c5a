"""tracking/runs/batch_logger.py: metrics queued by training, sent by a thread; `close` delivers the rest or
hands back what could not be sent in time (the caller keeps it for the back-fill)."""
from __future__ import annotations

from tracking.runs.batch_logger import BatchLogger


class Sink:
    """A send function that fails its first `failures` calls, then records every batch."""

    def __init__(self, failures: int = 0):
        self.failures, self.calls = failures, 0
        self.got: list[tuple[str, float, int]] = []

    def __call__(self, batch) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("server down")
        self.got += [(m.key, m.value, m.step) for m in batch]


def test_close_delivers_everything_in_order_once():
    sink = Sink()
    logger = BatchLogger(sink, interval_s=60.0)      # the thread sends only when woken by close
    for step in range(2500):                          # more than two of MLflow's 1000-metric batches
        logger.add("train/loss", float(step), step)
    assert logger.close(10.0) == []
    assert sink.got == [("train/loss", float(s), s) for s in range(2500)]


def test_close_retries_failed_sends_until_they_go_through():
    sink = Sink(failures=3)
    logger = BatchLogger(sink, interval_s=60.0)
    logger.add("a", 1.0, 0)
    logger.add("b", 2.0, 1)
    assert logger.close(20.0) == []
    assert sink.got == [("a", 1.0, 0), ("b", 2.0, 1)] and sink.calls == 4


def test_close_hands_back_what_could_not_be_sent_in_time():
    sink = Sink(failures=10**9)
    logger = BatchLogger(sink, interval_s=60.0)
    logger.add("a", 1.0, 0)
    left = logger.close(0.5)
    assert [(m.key, m.value, m.step) for m in left] == [("a", 1.0, 0)]
    assert sink.got == [] and logger.pending() == 0
