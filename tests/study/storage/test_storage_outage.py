"""Storage outages are waited out (study/storage/retry.py, study/cluster/optuna_feed.py): a real `gradstudy run`
driver on a local Ray, its storage taken away for 15 s mid-study, then given back.

- PostgreSQL: a throwaway server of the test's own (initdb + pg_ctl on a free port), stopped with
  `pg_ctl -m immediate` (as if it crashed) and started again on the same data.
- The journal file: its folder replaced by a plain file for 15 s (every open of the journal or its lock
  fails, as on a lost mount; a read-only folder would not stop root, who runs these tests). 15 s is longer than a
  trial here (~3–5 s), so the trials in flight end during the outage and wait it out.
Each ends with exactly n_trials finished, no FAIL, every intermediate value written, exit 0; and the
unit tests below check which errors count as transient and the retry budget on a stopped server.
"""
from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from study.storage.backend import open_storage
from study.storage.retry import RetryingStorage, StorageUnavailable, transient
from testkit.processes import wait_until
from testkit.tiny import TINY

# trials of a few seconds each, so that some are in flight when the storage goes
STEADY = [*TINY, "train.steps=600", "train.probe_every=100", "task.seq_len=20", "model.hidden_size=16",
          "study.sampler=random", "study.pruner=none",
          "++search.params={model.init: scaled, model.init_gain: 'choice(0.5, 0.9)', model.activation: tanh}"]
OUTAGE_S = 15      # longer than a trial: every trial in flight ends inside it


def states(storage_url: str, name: str) -> list[TrialState]:
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except Exception:      # not created yet, or the storage is down right now
        return []
    return [t.state for t in study.get_trials(deepcopy=False)]


def check_outage_survived(driver, storage_url: str, name: str, n: int) -> None:
    assert driver.returncode == 0, driver.output()
    # the driver may not have touched the storage during the outage (its trials' workers waited it out
    # at their end); if it did, it said that it waits, never a traceback
    assert "Traceback" not in driver.stderr(), driver.output()
    study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == n, [(t.number, t.state.name) for t in trials]
    # no FAIL or requeue, none left RUNNING
    assert len(trials) == n, [(t.number, t.state.name, t.user_attrs.get("gradstudy.fail_reason"),
                               t.user_attrs.get("gradstudy.error"))
                              for t in trials if t.state != TrialState.COMPLETE]
    for t in trials:      # every probe's value reached the storage, those taken during the outage too
        assert sorted(t.intermediate_values) == [0, 100, 200, 300, 400, 500, 599], (t.number, t.intermediate_values)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_postgresql_outage_mid_study_is_waited_out(home, drivers, pg_server):
    name, n = "pg-outage", 6
    driver = drivers.start(["run", *STEADY, f"study.name={name}", f"study.n_trials={n}",
                            f"study.storage={pg_server.url}", "study.storage_retry_s=300"])
    wait_until(lambda: TrialState.COMPLETE in states(pg_server.url, name)
               and TrialState.RUNNING in states(pg_server.url, name), 180,
               "a COMPLETE trial and one in flight", interval=0.3, proc=driver)
    pg_server.stop("immediate")
    time.sleep(OUTAGE_S)
    assert driver.poll() is None, driver.output()    # still waiting, not dead
    pg_server.start()
    driver.wait(240)
    check_outage_survived(driver, pg_server.url, name, n)


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_journal_outage_mid_study_is_waited_out(home, drivers):
    name, n = "journal-outage", 6
    journal = home / "optuna" / "journal.log"
    driver = drivers.start(["run", *STEADY, f"study.name={name}", f"study.n_trials={n}",
                            "study.storage_retry_s=300"])
    wait_until(lambda: TrialState.COMPLETE in states(str(journal), name)
               and TrialState.RUNNING in states(str(journal), name), 180,
               "a COMPLETE trial and one in flight", interval=0.3, proc=driver)
    folder, away = journal.parent, journal.parent.with_name("optuna.away")
    folder.rename(away)
    folder.write_text("not a folder: the journal is gone for a while\n")
    try:
        time.sleep(OUTAGE_S)
        assert driver.poll() is None, driver.output()
    finally:
        folder.unlink()
        away.rename(folder)
    driver.wait(240)
    check_outage_survived(driver, str(journal), name, n)


# ----------------------------------------------------------------------------------------------------
# The retry layer on its own


def test_transient_errors_are_told_from_the_others(pg_server):
    """A stopped server's errors (as SQLAlchemy and Optuna raise them) are transient; a missing study or a
    finished trial are not."""
    storage = open_storage(pg_server.url)
    study = optuna.create_study(study_name="t", storage=storage)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(Exception) as missing:
        storage.get_study_id_from_name("nope")
    assert not transient(missing.value)
    with pytest.raises(Exception) as finished:
        storage.set_trial_user_attr(trial._trial_id, "k", 1)
    assert not transient(finished.value)
    pg_server.stop("immediate")
    with pytest.raises(Exception) as down:
        storage.get_all_trials(study._study_id)
    assert transient(down.value), repr(down.value)
    assert transient(NotADirectoryError(20, "Not a directory"))


def test_a_transaction_cut_by_a_restart_is_transient(pg_server):
    """A suite run's driver died after a PostgreSQL outage: StorageInternalError, caused by SQLAlchemy's
    PendingRollbackError (a session whose connection died mid-transaction, used again before its
    rollback). The same error, made here for real, is transient, and a rollback cures it."""
    import sqlalchemy
    from sqlalchemy.orm import Session

    from study.storage.backend import with_driver

    engine = sqlalchemy.create_engine(with_driver(pg_server.url))
    session = Session(engine)
    session.execute(sqlalchemy.text("select 1"))                  # a transaction is open
    pg_server.stop("immediate")
    with pytest.raises(sqlalchemy.exc.OperationalError):
        session.execute(sqlalchemy.text("select 1"))
    pg_server.start()
    with pytest.raises(sqlalchemy.exc.PendingRollbackError) as pending:
        session.execute(sqlalchemy.text("select 1"))
    try:
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from pending.value
    except optuna.exceptions.StorageInternalError as exc:         # as Optuna's RDB storage raises it
        assert transient(exc), repr(exc)
    session.rollback()
    assert session.execute(sqlalchemy.text("select 1")).scalar() == 1
    session.close()
    engine.dispose()


def test_the_budget_ends_in_a_clear_error_and_quick_does_not_wait(pg_server):
    warnings: list[str] = []
    storage = RetryingStorage(open_storage(pg_server.url), budget_s=3, warn=warnings.append)
    study = optuna.create_study(study_name="b", storage=storage)
    pg_server.stop("immediate")
    start = time.monotonic()
    with pytest.raises(StorageUnavailable, match=r"stayed unreachable for \d+ s \(study.storage_retry_s=3\)"):
        study.get_trials(deepcopy=False)
    assert 3 <= time.monotonic() - start < 15
    assert len(warnings) == 1 and "retrying for up to 3 s" in warnings[0]
    start = time.monotonic()
    with storage.quick(), pytest.raises(StorageUnavailable, match="unreachable"):
        study.get_trials(deepcopy=False)
    assert time.monotonic() - start < 3


def test_an_outage_shorter_than_the_budget_is_invisible(pg_server):
    storage = RetryingStorage(open_storage(pg_server.url), budget_s=60, warn=lambda m: None)
    study = optuna.create_study(study_name="c", storage=storage)
    study.enqueue_trial({"x": 1})
    pg_server.stop("immediate")
    import threading

    threading.Timer(4.0, pg_server.start).start()
    trial = study.ask()                      # waits for the server, then goes on
    study.tell(trial, 2.0)
    assert storage.outages == 1
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]


def test_storage_retry_s_is_validated():
    from study.config.compose import compose_root
    from workers.config import ConfigError

    assert compose_root([]).root.study.storage_retry_s == 600
    with pytest.raises(ConfigError, match=r"study.storage_retry_s=-1.0 is invalid; valid: a number of seconds ≥ 0"):
        compose_root(["study.storage_retry_s=-1"])


def test_journal_path_is_unchanged_by_the_wrapper(home):
    """The wrapper is transparent: a study written through it reads back through a plain storage."""
    path = Path(home) / "optuna" / "journal.log"
    wrapped = open_storage(str(path), retry_s=5)
    optuna.create_study(study_name="j", storage=wrapped).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    plain = optuna.load_study(study_name="j", storage=open_storage(str(path)))
    assert len(plain.trials) == 2


def test_a_journal_lock_lost_with_its_folder_is_an_outage(home):
    """A process that holds the journal's lock when the folder goes away cannot release it: Optuna's lock
    raises a bare RuntimeError ("did not possess lock") while handling the OSError. It is an outage to
    wait out, not the trial's error (a suite run lost a trial to it mid-outage). The real lock, the real
    folder taken away as the outage test does."""
    from optuna.storages.journal import JournalFileSymlinkLock

    folder = Path(home) / "optuna"
    folder.mkdir(parents=True)
    lock = JournalFileSymlinkLock(str(folder / "journal.log"))
    lock.acquire()
    away = folder.with_name("optuna.away")
    folder.rename(away)
    folder.write_text("not a folder\n")
    try:
        try:
            open(folder / "journal.log", "ab")          # the write under the lock, as the backend does it
        except OSError:
            lock.release()
    except RuntimeError as exc:
        lost = exc
    finally:
        folder.unlink()
        away.rename(folder)
    assert "did not possess lock" in str(lost) and isinstance(lost.__context__, OSError), repr(lost)
    assert transient(lost)
    assert not transient(RuntimeError("Error: did not possess lock"))   # not after an OSError: not an outage
