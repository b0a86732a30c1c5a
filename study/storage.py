"""The Optuna storage of studies: the source of truth for what was tried and its state.

- `study.storage` empty: a journal file `<data dir>/optuna/journal.log` (safe for several processes on
  one machine, unlike SQLite; optuna-dashboard reads it).
- A database URL (`postgresql://user@host/db`; a password is best given in `PGPASSWORD` or
  `~/.pgpass` rather than in the URL): Optuna's RDB storage, what a Ray cluster needs, since workers on
  other machines cannot reach a local file.

Errors show a URL with any password masked (`tracking.urls.scrub`).
"""
from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from study.paths import data_dir
from tracking.urls import scrub
from workers.config import ConfigError

RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")


def journal_path() -> Path:
    return data_dir() / "optuna" / "journal.log"


def resolve_url(url: str) -> str:
    """The storage URL studies use: the journal file's path when `url` is empty."""
    return url or str(journal_path())


def is_local_file(url: str) -> bool:
    return "://" not in url


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open (creating where needed) the storage; an unreachable or unknown one is a ConfigError."""
    url = resolve_url(url)
    if is_local_file(url):
        path = Path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise ConfigError("study.storage", url, f"a writable journal file path ({exc.strerror})") from None
    scheme = url.split("://", 1)[0].split("+", 1)[0]
    if scheme not in RDB_SCHEMES:
        raise ConfigError("study.storage", scrub(url),
                          "empty (the local journal file), a file path, or a database URL "
                          "(postgresql://user@host:5432/db)")
    url = with_driver(url)
    try:
        return RDBStorage(url, engine_kwargs=_engine_kwargs(scheme), skip_table_creation=False)
    except Exception as exc:  # sqlalchemy.exc.OperationalError and friends, driver errors
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError("study.storage", scrub(url), f"a reachable database ({reason})") from None


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


def load_study(name: str, url: str) -> optuna.Study:
    """An existing study; a ConfigError naming it when the storage has no such study."""
    try:
        return optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        raise ConfigError("NAME", name, "the name of an existing study (see `gradstudy list`)") from None
