"""A trial's user attributes written together (study/storage/trial_attrs.py): the same stored values as one
`set_trial_user_attr` call each, in one transaction on PostgreSQL and SQLite, one call each on the journal."""
from __future__ import annotations

import uuid

import optuna
import pytest
import sqlalchemy

from study.storage.backend import open_storage
from study.storage.trial_attrs import _rdb, set_user_attrs

ATTRS = {"gradstudy.health": "vanishing", "gradstudy.final": {"test_loss": 0.25, "accuracy": None},
         "gradstudy.steps": 12, "gradstudy.decay_rate": -0.031, "gradstudy.summary": "/x/summary.json",
         "gradstudy.span": None}


def commits(storage) -> list[str]:
    """The commits of the storage's database engine, counted from now (a SQLAlchemy event)."""
    seen: list[str] = []
    sqlalchemy.event.listen(_rdb(storage.inner).engine, "commit", lambda conn: seen.append("commit"))
    return seen


def two_trials(url: str):
    storage = open_storage(url, retry_s=30)            # as the driver opens it: retried, Optuna's cache, the RDB
    study = optuna.create_study(study_name=f"attrs-{uuid.uuid4().hex[:10]}", storage=storage)
    return storage, study, study.ask(), study.ask()


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_one_transaction_stores_what_one_call_each_stores(kind, postgres_url, tmp_path):
    url = postgres_url if kind == "postgresql" else f"sqlite:///{tmp_path / 'optuna.db'}"
    storage, study, batched, single = two_trials(url)
    seen = commits(storage)
    set_user_attrs(storage, batched._trial_id, ATTRS)
    assert seen == ["commit"]                                  # one transaction (6 before)
    for key, value in ATTRS.items():
        single.set_user_attr(key, value)
    assert len(seen) == 1 + len(ATTRS)
    got = {t.number: t.user_attrs for t in study.get_trials(deepcopy=False)}
    assert got[batched.number] == got[single.number] == ATTRS
    # an upsert: keys already there take the new values, the others stay
    set_user_attrs(storage, batched._trial_id, {"gradstudy.health": "healthy", "gradstudy.new": [1, 2]})
    assert storage.get_trial(batched._trial_id).user_attrs == {**ATTRS, "gradstudy.health": "healthy",
                                                              "gradstudy.new": [1, 2]}
    # a finished trial refuses, as set_trial_user_attr does, and nothing of the batch is written
    study.tell(batched, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(storage, batched._trial_id, {"gradstudy.late": 1})
    assert "gradstudy.late" not in storage.get_trial(batched._trial_id).user_attrs


def test_the_journal_takes_one_call_each(tmp_path):
    storage, study, batched, single = two_trials(str(tmp_path / "journal.log"))
    assert _rdb(storage.inner) is None
    set_user_attrs(storage, batched._trial_id, ATTRS)
    for key, value in ATTRS.items():
        single.set_user_attr(key, value)
    reopened = optuna.load_study(study_name=study.study_name, storage=open_storage(str(tmp_path / "journal.log")))
    got = {t.number: t.user_attrs for t in reopened.get_trials(deepcopy=False)}
    assert got[batched.number] == got[single.number] == ATTRS


def test_nothing_to_write_writes_nothing(postgres_url):
    storage, _, trial, _ = two_trials(postgres_url)
    seen = commits(storage)
    set_user_attrs(storage, trial._trial_id, {})
    assert seen == []
