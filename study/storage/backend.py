"""The Optuna storage of studies: the source of truth for what was tried and its state.

- `study.storage` empty: a journal file `<data dir>/optuna/journal.log` (safe for several processes on
  one machine, unlike SQLite; optuna-dashboard reads it).
- A database URL (`postgresql://user@host/db`; a password is best given in `PGPASSWORD` or
  `~/.pgpass` rather than in the URL): Optuna's RDB storage, what a Ray cluster needs, since workers on
  other machines cannot reach a local file.

Errors show a URL with any password masked (`tracking.runs.urls.scrub`). A storage that cannot be opened is a
ConfigError (exit 2, nothing written) naming where the URL came from: `study.storage`, or the command-line
option that gave it (`--storage`: a URL with an `option` attribute, study/cli/arguments.py's OptionValue);
once open, `retry_s` > 0 wraps it so that outages are waited out (study/storage/retry.py).
"""
from __future__ import annotations

import time
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from study.storage.paths import data_dir
from study.storage.retry import RetryingStorage
from tracking.runs.urls import scrub
from workers.config import ConfigError

RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")


def journal_path() -> Path:
    return data_dir() / "optuna" / "journal.log"


def resolve_url(url: str) -> str:
    """The storage URL studies use: the journal file's path when `url` is empty."""
    return url or str(journal_path())


def origin(url: str) -> str:
    """The name an error about `url` gives: the command-line option it came from (a str with an `option`
    attribute, such as `gradstudy status --storage URL`'s), else the config key `study.storage`."""
    return getattr(url, "option", None) or "study.storage"


def is_local_file(url: str) -> bool:
    return "://" not in url


def open_storage(url: str, retry_s: float = 0.0, wait_to_open: bool = False) -> optuna.storages.BaseStorage:
    """Open (creating where needed) the storage; an unreachable or unknown one is a ConfigError. With
    `retry_s` > 0 its calls wait out outages of up to that many seconds (RetryingStorage), and with
    `wait_to_open` so does the opening (a worker whose trial starts during an outage; a driver does not
    wait: an unreachable storage at its start is a configuration error)."""
    deadline = time.monotonic() + retry_s
    while True:
        try:
            storage = _open(url)
            break
        except ConfigError:
            if not wait_to_open or time.monotonic() >= deadline:
                raise
            time.sleep(2.0)
    return RetryingStorage(storage, retry_s) if retry_s > 0 else storage


def _open(url: str) -> optuna.storages.BaseStorage:
    key = origin(url)
    url = resolve_url(url)
    if is_local_file(url):
        path = Path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConfigError(key, url, f"a writable journal file path ({exc.strerror})") from None
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme not in RDB_SCHEMES:
        raise ConfigError(key, scrub(url),
                          "empty (the local journal file), a file path, or a database URL "
                          "(postgresql://user@host:5432/db)")
    given = scrub(url)      # the URL as the user wrote it: the driver's name below is ours, not theirs
    try:
        rdb = RDBStorage(with_driver(url), engine_kwargs=_engine_kwargs(scheme), skip_table_creation=False)
    except Exception as exc:  # sqlalchemy.exc.OperationalError and friends, driver errors
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(key, given, f"a reachable database ({reason})") from None
    # Optuna caches finished trials in front of a database (as optuna.load_study does for an RDBStorage,
    # which it no longer sees once wrapped): the one use of a private Optuna module outside trial_store.
    from optuna.storages._cached_storage import _CachedStorage

    return _CachedStorage(rdb)


def with_driver(url: str) -> str:
    """postgres:// and postgresql:// → postgresql+psycopg2:// (SQLAlchemy 2.1's default driver is
    psycopg 3, which is not a dependency)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _engine_kwargs(scheme: str) -> dict:
    if scheme == "postgresql":
        return {"connect_args": {"connect_timeout": 5}, "pool_pre_ping": True}
    return {}


def read_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage for a command that only reads (`list`, `status`, `check`, …): a local journal file that does
    not exist yet is an empty storage, and nothing is created (no data directory, no journal file)."""
    resolved = resolve_url(url)
    if is_local_file(resolved) and not Path(resolved).exists():
        return optuna.storages.InMemoryStorage()
    return open_storage(url)


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study; a ConfigError naming it when the storage has no such study (a local journal file that
    does not exist is not created to say so)."""
    try:
        return optuna.load_study(study_name=name, storage=read_storage(url))
    except KeyError:
        raise ConfigError("NAME", name, "the name of an existing study (see `gradstudy list`)") from None
