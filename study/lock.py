"""One driver per study at a time: an exclusive, non-blocking lock file in the data directory.

The lock is held with flock(2), so it is released by the kernel when the holder dies, however it dies:
a killed driver never leaves a stale lock behind. It covers drivers on this machine (the data
directory); drivers on several machines sharing one database would need a database lock.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from study.paths import data_dir


class StudyLocked(RuntimeError):
    pass


def lock_path(study_name: str, storage_url: str) -> Path:
    digest = hashlib.sha1(storage_url.encode()).hexdigest()[:10]
    return data_dir() / "locks" / f"{study_name}-{digest}.lock"


@contextmanager
def study_lock(study_name: str, storage_url: str) -> Iterator[Path]:
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
