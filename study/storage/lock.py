"""One driver per study at a time.

- A PostgreSQL storage: a PostgreSQL advisory lock on the study's name, held by a connection of its own
  for the driver's life. Drivers on any machine that share the database see it; the server releases it
  when the session ends, so a killed driver (or a lost machine, once its TCP connection is gone) never
  leaves a stale lock.
- Any other storage (the journal file): an exclusive, non-blocking flock(2) on a file in the data directory,
  released by the kernel when the holder dies, however it dies.
A second driver gets StudyLocked (exit 3) at once.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from study.storage.paths import data_dir


class StudyLocked(RuntimeError):
    pass


def lock_path(study_name: str, storage_url: str) -> Path:
    digest = hashlib.sha1(storage_url.encode()).hexdigest()[:10]
    return data_dir() / "locks" / f"{study_name}-{digest}.lock"


@contextmanager
def study_lock(study_name: str, storage_url: str) -> Iterator[object]:
    scheme = storage_url.split("://", 1)[0].split("+", 1)[0] if "://" in storage_url else ""
    locker = _database_lock if scheme in ("postgresql", "postgres") else _file_lock
    with locker(study_name, storage_url) as held:
        yield held


def advisory_key(study_name: str) -> int:
    """The study's advisory lock key: 64 bits of its name's SHA-1, as PostgreSQL's signed bigint."""
    value = int.from_bytes(hashlib.sha1(f"gradstudy:{study_name}".encode()).digest()[:8], "big")
    return value - (1 << 64) if value >= 1 << 63 else value


@contextmanager
def _database_lock(study_name: str, storage_url: str) -> Iterator[object]:
    import psycopg2

    dsn = "postgresql://" + storage_url.split("://", 1)[1]
    key = advisory_key(study_name)
    me = f"gradstudy driver pid {os.getpid()} on {socket.gethostname()}"
    conn = psycopg2.connect(dsn, application_name=me[:63], connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            if not cur.fetchone()[0]:
                cur.execute("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s",
                            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF))
                row = cur.fetchone()
                holder = row[0] if row and row[0] else "another driver"
                raise StudyLocked(f"study {study_name!r} is already being run by {holder} (a PostgreSQL "
                                  "advisory lock on the storage); wait for it to finish (or stop it) and run again")
        yield conn
    finally:
        conn.close()    # the session's end releases the lock


@contextmanager
def _file_lock(study_name: str, storage_url: str) -> Iterator[Path]:
    path = lock_path(study_name, storage_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise StudyLocked(f"study {study_name!r} is already being run by pid {holder}; "
                              "wait for it to finish (or stop it) and run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)
