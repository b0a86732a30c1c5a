"""tracking/runs/batch_logger.py: metrics queued by training, sent by a thread; `close` delivers the rest or
hands back what could not be sent in time (the caller keeps it for the back-fill)."""
from __future__ import annotations

from mlflow.entities import Param, RunTag

from tracking.runs.batch_logger import MAX_BATCH, BatchLogger


class Sink:
    """A send function that fails its first `failures` calls, then records every batch."""

    def __init__(self, failures: int = 0):
        self.failures, self.calls = failures, 0
        self.got: list[tuple[str, float, int]] = []
        self.requests: list[tuple[int, list[str], list[str]]] = []    # (metrics, param keys, tag keys) of each

    def __call__(self, batch, params=(), tags=()) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("server down")
        self.got += [(m.key, m.value, m.step) for m in batch]
        self.requests.append((len(batch), [p.key for p in params], [t.key for t in tags]))


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


def test_params_go_with_the_first_batch_and_closing_tags_with_the_last_one_request_for_a_short_trial():
    sink = Sink()
    logger = BatchLogger(sink, interval_s=60.0, params=[Param("model.cell", "rnn"), Param("train.lr", "0.01")])
    for step in range(5):
        logger.add("train/loss", float(step), step)
    assert logger.close(10.0, tags=[RunTag("gradstudy.state", "completed")]) == [] and logger.unsent == 0
    assert sink.requests == [(5, ["model.cell", "train.lr"], ["gradstudy.state"])]


def test_params_and_tags_over_the_batch_limits_go_in_further_requests_metrics_in_order():
    sink = Sink()
    params = [Param(f"p{i}", str(i)) for i in range(150)]          # MLflow: at most 100 params a request
    logger = BatchLogger(sink, interval_s=60.0, params=params)
    for step in range(2000):
        logger.add("train/loss", float(step), step)
    tags = [RunTag(f"t{i}", "x") for i in range(3)]
    assert logger.close(10.0, tags=tags) == [] and logger.unsent == 0
    assert sink.got == [("train/loss", float(s), s) for s in range(2000)]
    assert [k for _, ks, _ in sink.requests for k in ks] == [p.key for p in params]
    assert [k for _, _, ks in sink.requests for k in ks] == ["t0", "t1", "t2"]
    assert sink.requests[-1][2] == ["t0", "t1", "t2"]                # the tags with the last metrics
    assert all(n + len(ps) + len(ts) <= MAX_BATCH and len(ps) <= 100 for n, ps, ts in sink.requests)


def test_closing_tags_that_could_not_be_sent_are_counted_as_unsent():
    sink = Sink(failures=10**9)
    logger = BatchLogger(sink, interval_s=60.0, params=[Param("a", "1")])
    assert logger.close(0.5, tags=[RunTag("gradstudy.state", "completed")]) == []
    assert logger.unsent == 2 and logger.pending() == 0
