"""A trial's user attributes written together: one transaction on a database, not one per attribute.

Optuna's storage API sets one attribute a call, and on an RDBStorage each call is a transaction of its own
(a pre-ping, a SELECT of the trial, the upsert, the commit: four round trips to PostgreSQL). The driver writes
a finished trial's record as 13 attributes (`study/records/attrs.py`), so on the cluster path a trial cost
~50 round trips in the driver's loop before its `tell`. `set_user_attrs` writes them in one transaction with
one multi-row upsert where the storage is a PostgreSQL or SQLite RDBStorage (behind Optuna's cache and
gradstudy's retrying wrapper; atomic, and retried whole through an outage, as the upsert is idempotent), and
one call each anywhere else (the journal file, another database, an Optuna whose private RDB names moved).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from optuna.storages import BaseStorage, RDBStorage

from study.storage.retry import _Retrying


def _rdb(storage: BaseStorage) -> RDBStorage | None:
    """The RDBStorage under Optuna's cache, or None."""
    from optuna.storages._cached_storage import _CachedStorage

    inner = storage._backend if isinstance(storage, _CachedStorage) else storage
    return inner if isinstance(inner, RDBStorage) else None


def _one_transaction(rdb: RDBStorage, trial_id: int, attrs: Mapping[str, Any]) -> bool:
    """The upsert of every attribute in one transaction; False where this Optuna or engine has no such path."""
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
    except ImportError:
        return False
    engine = rdb.engine.name
    if engine == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return False
    model = models.TrialUserAttributeModel
    rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]
    with _create_scoped_session(rdb.scoped_session, True) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        rdb.check_trial_is_updatable(trial_id, trial.state)
        statement = insert(model).values(rows)
        session.execute(statement.on_conflict_do_update(index_elements=[model.trial_id, model.key],
                                                        set_={"value_json": statement.excluded.value_json}))
    return True


def set_user_attrs(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any]) -> None:
    """`storage.set_trial_user_attr(trial_id, key, value)` for every item, in one transaction where it can."""
    if not attrs:
        return
    if isinstance(storage, _Retrying):
        storage.retried("set_trial_user_attr", lambda: set_user_attrs(storage.inner, trial_id, attrs))
        return
    rdb = _rdb(storage)
    if rdb is not None and _one_transaction(rdb, trial_id, attrs):
        return
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
