"""Storage outages waited out: an Optuna storage whose every call retries transient errors.

A PostgreSQL restart, a dropped connection or a journal file whose directory is gone for a while must not
kill an unattended study. `RetryingStorage` wraps the storage the driver and the workers use; a call that
fails with a *transient* error (the database unreachable, a connection refused or reset, an I/O error on
the journal file) is tried again with backoff (0.5 s doubling to 10 s) until it succeeds or the outage has
lasted `budget_s` (`study.storage_retry_s`); then `StorageUnavailable` is raised: the driver exits with
EXIT_STORAGE and, since the storage is the source of truth, `gradstudy resume NAME` continues later.
Any other error (no such study, a finished trial, a bad value) is raised at once.

`quick()` makes the calls inside it try once (no waiting): the workers' Optuna reporter uses it so that
training never waits on the storage; it keeps its intermediate values and writes them when it is back.

Retrying is safe for Optuna's calls: most set values (idempotent). `set_trial_state_values` retried after a
success whose answer was lost finds the trial finished, which is taken as done. `create_new_trial` retried
in that rare case leaves one extra RUNNING trial, which the next driver of the study recovers as an orphan
(its configuration queued again): nothing is lost, but that run may end with it still RUNNING.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import optuna
from optuna.storages import BaseStorage

BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 10.0


class StorageUnavailable(RuntimeError):
    """The storage stayed unreachable for the whole retry budget (or, under quick(), at the first try)."""


def transient(exc: BaseException) -> bool:
    """True for errors that an outage causes and that a later try can cure: the error itself, or one it
    was raised from or while handling (the chain Python's traceback shows). Optuna's journal lock, for one,
    cannot be released while its folder is gone and says so with a bare RuntimeError ("did not possess
    lock") raised while it handles the OSError; the write under it failed (or may be repeated: above)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        module = type(exc).__module__
        name = type(exc).__name__
        # PendingRollbackError: a session whose connection died mid-transaction (the server restarted)
        # is used again before its rollback; Optuna rolls the session back as it raises, so a retry works
        if module.startswith(("sqlalchemy", "psycopg2")) and name in (
                "OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError", "PendingRollbackError"):
            return True
        if isinstance(exc, OSError) and not isinstance(exc, (FileExistsError, IsADirectoryError)):
            return True
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return False


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc.__cause__ or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200]


def _warn(message: str) -> None:
    print(f"gradstudy: {message}", file=sys.stderr, flush=True)


class _Retrying(BaseStorage):
    def __init__(self, inner: BaseStorage, budget_s: float, warn: Callable[[str], None] = _warn):
        self.inner, self.budget_s, self.warn = inner, float(budget_s), warn
        self._quick = 0
        self.outages = 0            # outages waited out (for tests and the soak benchmark)

    @contextmanager
    def quick(self) -> Iterator[None]:
        """Calls inside try once; a transient error raises StorageUnavailable at once."""
        self._quick += 1
        try:
            yield
        finally:
            self._quick -= 1

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.inner, name)
        return self.retried(name, lambda: method(*args, **kwargs))

    def retried(self, name: str, call: Callable[[], Any]) -> Any:
        """`call()` (which works on `self.inner`) tried through outages as a storage method `name` is."""
        first_failure: Optional[float] = None
        delay = BACKOFF_START_S
        while True:
            try:
                return call()
            except optuna.exceptions.UpdateFinishedTrialError:
                if first_failure is not None and name == "set_trial_state_values":
                    return True     # the failed try had finished it: its answer was what got lost
                raise
            except Exception as exc:
                if not transient(exc):
                    raise
                now = time.monotonic()
                if self._quick:
                    raise StorageUnavailable(f"the study storage is unreachable: {_reason(exc)}") from exc
                if first_failure is None:
                    first_failure = now
                    self.outages += 1
                    self.warn(f"the study storage is unreachable ({_reason(exc)}); retrying for up to "
                              f"{self.budget_s:.0f} s (study.storage_retry_s)")
                if now - first_failure >= self.budget_s:
                    raise StorageUnavailable(
                        f"the study storage stayed unreachable for {now - first_failure:.0f} s "
                        f"(study.storage_retry_s={self.budget_s:g}): {_reason(exc)}") from exc
                time.sleep(min(delay, max(0.0, first_failure + self.budget_s - now)))
                delay = min(delay * 2, BACKOFF_MAX_S)


def _delegate(name: str) -> Callable[..., Any]:
    def call(self: _Retrying, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"BaseStorage.{name}, retried through outages."
    return call


# Every storage method Optuna calls, abstract or not, goes to the wrapped storage through _call.
_METHODS = [name for name in dir(BaseStorage) if not name.startswith("_") and callable(getattr(BaseStorage, name))]
RetryingStorage = type("RetryingStorage", (_Retrying,), {name: _delegate(name) for name in _METHODS})
RetryingStorage.__doc__ = "An Optuna storage that waits out outages of the storage it wraps (see the module)."
RetryingStorage.__module__ = __name__
