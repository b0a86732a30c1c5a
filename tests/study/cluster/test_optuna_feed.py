"""study/cluster/optuna_feed.py: OptunaFeed, the reporter that feeds Optuna from inside a running trial: the
validation score as the trial's intermediate value at each probe's step, the worker that ran it, and the
study's pruner asked after each probe. An outage of the storage never stops training: what could not be
written is kept in order and written at the next probe that finds the storage back, no pruning decision is
made meanwhile, and at the end what still cannot be written is dropped with a warning.

A real Optuna journal storage in the test's folder; a real tiny trial (workers.trial.run_trial) where the
feed is the trial's reporter; the outage is the journal's folder moved away (what study/storage/retry.py
counts as transient)."""
from __future__ import annotations

import os
import socket
import time

import optuna
import pytest

from study.cluster.optuna_feed import OptunaFeed, intermediate_key, worker_storage
from study.driver.trial_calls import trial_id
from study.records.attrs import TrialAttr
from study.storage.backend import open_storage
from workers.config import from_dict
from workers.trial import run_trial

TINY = {"task": {"name": "adding", "seq_len": 10, "test_size": 64, "val_size": 32},
        "model": {"hidden_size": 8},
        "train": {"steps": 20, "probe_every": 10, "log_every": 5, "batch_size": 16, "device": "cpu"}}
NEVER = optuna.pruners.NopPruner()


def always_prunes(warmup: int = 0) -> optuna.pruners.BasePruner:
    return optuna.pruners.ThresholdPruner(upper=1e-12, n_warmup_steps=warmup)   # every loss is above it


@pytest.fixture
def journal(tmp_path) -> str:
    """A journal storage of its own (worker_storage keeps one per URL for the process's life)."""
    folder = tmp_path / "store"
    folder.mkdir()
    return str(folder / "journal.log")


def new_trial(url: str, directions=("minimize",)) -> tuple[str, int]:
    study = optuna.create_study(study_name="feed", storage=open_storage(url), directions=list(directions))
    return "feed", trial_id(study.ask())


def stored(url: str) -> optuna.trial.FrozenTrial:
    """The trial as a fresh reader of the journal sees it (not through the feed's storage object)."""
    return optuna.load_study(study_name="feed", storage=open_storage(url)).trials[0]


def test_a_real_trial_reports_its_validation_loss_at_every_probe(journal):
    name, tid = new_trial(journal)
    feed = OptunaFeed(journal, name, tid, "final.test_loss", prune=True, pruner=NEVER)
    summary = run_trial(from_dict(TINY), feed)
    assert summary["status"] == "completed"
    probes = {p["step"]: p["val_loss"] for p in summary["probes"]}
    assert list(probes) == [0, 10, 19]                   # step 0, every probe_every, the last step
    trial = stored(journal)
    assert trial.intermediate_values == pytest.approx(probes)
    assert trial.user_attrs[TrialAttr.WORKER] == {"pid": os.getpid(), "host": socket.gethostname(), "device": "cpu"}
    assert feed.pending == []


def test_the_studys_pruner_stops_a_real_trial_at_a_probe_and_says_why(journal):
    name, tid = new_trial(journal)
    feed = OptunaFeed(journal, name, tid, "final.test_loss", prune=True, pruner=always_prunes(warmup=5))
    summary = run_trial(from_dict(TINY), feed)
    assert summary["status"] == "pruned"
    assert summary["prune_reason"] == "ThresholdPruner: val_loss at step 10 against the other trials'"
    assert sorted(stored(journal).intermediate_values) == [0, 10]     # warm-up at 0; pruned at the next probe


def test_without_prune_the_pruner_is_never_asked(journal):
    name, tid = new_trial(journal)
    feed = OptunaFeed(journal, name, tid, "final.test_loss", prune=False, pruner=always_prunes())
    summary = run_trial(from_dict(TINY), feed)
    assert summary["status"] == "completed" and feed.stop_reason() is None
    assert sorted(stored(journal).intermediate_values) == [0, 10, 19]    # values are still reported


def test_the_intermediate_value_follows_the_objective():
    assert intermediate_key("final.accuracy") == "val_accuracy"
    assert intermediate_key("final.test_loss") == intermediate_key("final.nrmse") == "val_loss"


def test_an_accuracy_objective_reports_validation_accuracy(journal):
    name, tid = new_trial(journal, ["maximize"])
    feed = OptunaFeed(journal, name, tid, "final.accuracy", prune=True, pruner=NEVER, node="node-7")
    feed.on_start({"device": "cuda:0"})
    feed.on_probe({"step": 0, "val_loss": 2.0, "val_accuracy": 0.25})
    feed.on_probe({"step": 10, "val_loss": 1.0, "val_accuracy": None})     # a task without accuracy: nothing
    trial = stored(journal)
    assert trial.intermediate_values == {0: 0.25}
    assert trial.user_attrs[TrialAttr.WORKER]["node"] == "node-7"
    assert trial.user_attrs[TrialAttr.WORKER]["device"] == "cuda:0"


def test_a_non_finite_score_is_not_reported_and_no_decision_is_made_on_it(journal):
    name, tid = new_trial(journal)
    feed = OptunaFeed(journal, name, tid, "final.test_loss", prune=True, pruner=always_prunes())
    feed.on_probe({"step": 0, "val_loss": float("nan")})
    assert not feed.should_stop(0)                    # nothing reported at step 0: no decision
    feed.on_probe({"step": 10, "val_loss": 0.5})
    assert not feed.should_stop(7)                    # only at the step just reported
    assert feed.should_stop(10)
    assert feed.stop_reason() == "ThresholdPruner: val_loss at step 10 against the other trials'"
    assert stored(journal).intermediate_values == {10: 0.5}


def test_a_study_of_several_objectives_gets_no_intermediate_values(journal):
    name, tid = new_trial(journal, ["minimize", "maximize"])
    feed = OptunaFeed(journal, name, tid, "final.test_loss", prune=True, pruner=always_prunes())
    feed.on_start({"device": "cpu"})
    feed.on_probe({"step": 0, "val_loss": 0.5})       # Optuna has no report() for several objectives
    assert not feed.should_stop(0)
    trial = stored(journal)
    assert trial.intermediate_values == {} and TrialAttr.WORKER in trial.user_attrs


def test_one_storage_per_url_and_retry_budget_for_the_process(journal):
    assert worker_storage(journal, 0.0) is worker_storage(journal, 0.0)
    assert worker_storage(journal, 2.0) is not worker_storage(journal, 0.0)
    assert hasattr(worker_storage(journal, 2.0), "quick")         # outages waited out
    name, tid = new_trial(journal)
    a = OptunaFeed(journal, name, tid, "final.test_loss", prune=False)
    b = OptunaFeed(journal, name, tid, "final.test_loss", prune=False)
    assert a.storage is b.storage is worker_storage(journal, 0.0)
    assert isinstance(a.study.pruner, optuna.pruners.NopPruner)     # not Optuna's default MedianPruner


def test_an_outage_keeps_values_in_order_without_waiting_and_without_pruning(journal):
    name, tid = new_trial(journal)
    feed = OptunaFeed(journal, name, tid, "final.test_loss", prune=True, pruner=always_prunes(), retry_s=30.0)
    folder = os.path.dirname(journal)
    feed.on_probe({"step": 0, "val_loss": 1.0})
    os.rename(folder, folder + ".away")               # the storage is gone
    try:
        feed.on_start({"device": "cpu"})              # (order kept whatever the calls)
        started = time.monotonic()
        feed.on_probe({"step": 10, "val_loss": 2.0})  # tried once, kept: it returns at once, 30 s budget or not
        assert time.monotonic() - started < 3
        assert [p[0] for p in feed.pending] == ["attr", "value"]
        assert not feed.should_stop(10)               # no decision while anything is unwritten
    finally:
        os.rename(folder + ".away", folder)
    feed.on_probe({"step": 19, "val_loss": 3.0})      # back: everything written, in order
    assert feed.pending == []
    assert feed.should_stop(19)
    trial = stored(journal)
    assert trial.intermediate_values == {0: 1.0, 10: 2.0, 19: 3.0}
    assert trial.user_attrs[TrialAttr.WORKER]["device"] == "cpu"


def test_at_the_end_what_is_pending_is_written_or_dropped_with_a_warning(journal, capfd):
    name, tid = new_trial(journal)
    feed = OptunaFeed(journal, name, tid, "final.test_loss", prune=False, retry_s=0.6)
    folder = os.path.dirname(journal)
    os.rename(folder, folder + ".away")
    try:
        feed.on_probe({"step": 0, "val_loss": 1.0})
        feed.on_probe({"step": 10, "val_loss": 2.0})
    finally:
        os.rename(folder + ".away", folder)
    feed.on_end({})                                   # the storage is back: written now
    assert feed.pending == [] and stored(journal).intermediate_values == {0: 1.0, 10: 2.0}

    os.rename(folder, folder + ".away")
    try:
        feed.on_probe({"step": 19, "val_loss": 3.0})
        feed.on_end({})                               # still gone after the retry budget: dropped, never raised
    finally:
        os.rename(folder + ".away", folder)
    assert "gradstudy: trial 0: 1 intermediate value(s) not written" in capfd.readouterr().err
    assert 19 not in stored(journal).intermediate_values
