"""study/storage/lock.py: one driver per study. A journal storage: an exclusive flock(2) on a file in the data
directory; PostgreSQL: an advisory lock on the study's name held by a connection of its own. A second holder
gets StudyLocked at once, naming the study and who holds it; the lock is free again when the holder leaves,
or dies however it dies."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import pytest

from study.storage.lock import StudyLocked, advisory_key, lock_path, study_lock

REPO = Path(__file__).resolve().parents[3]
HOLD = ("import sys, time\n"
        "from study.storage.lock import study_lock\n"
        "with study_lock(sys.argv[1], sys.argv[2]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(120)\n")


class Holder:
    """Another process (another driver) holding the study's lock until it is killed."""

    def __init__(self, name: str, url: str):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, name, url], stdout=subprocess.PIPE, text=True,
                                     cwd=REPO, env=env)
        assert self.proc.stdout.readline().strip() == "held"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()


@pytest.fixture
def holders():
    made: list[Holder] = []

    def start(name, url):
        made.append(Holder(name, url))
        return made[-1]

    yield start
    for h in made:
        h.kill()


def acquired_within(name: str, url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with study_lock(name, url):
                return True
        except StudyLocked:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


# --- the file lock (journal storage) ---------------------------------------------------------------------
def test_a_second_holder_is_refused_naming_the_study_and_the_holder_then_it_is_free(home):
    url = str(home / "optuna" / "journal.log")
    with study_lock("night", url) as path:
        assert path == lock_path("night", url)
        assert path.parent == home.resolve() / "locks"
        assert path.read_text() == str(os.getpid())        # who holds it
        with pytest.raises(StudyLocked) as info:
            with study_lock("night", url):
                pytest.fail("a second holder got the lock")
        assert str(info.value).startswith(f"study 'night' is already being run by pid {os.getpid()};")
        assert isinstance(info.value, RuntimeError)
    with study_lock("night", url) as again:            # released on leaving
        assert again == path


def test_other_studies_and_other_storages_are_not_locked(home):
    url = str(home / "optuna" / "journal.log")
    with study_lock("night", url):
        with study_lock("day", url):
            pass
        with study_lock("night", str(home / "elsewhere.log")) as other:   # same name, another storage
            assert other != lock_path("night", url)


def test_a_lock_file_left_by_a_finished_driver_is_no_lock(home):
    url = ""
    path = lock_path("night", url)
    path.parent.mkdir(parents=True)
    path.write_text("99999999")                       # an old driver's pid; it holds no flock
    with study_lock("night", url):
        assert path.read_text() == str(os.getpid())


def test_a_killed_holder_releases_the_lock(home, holders):
    url = str(home / "optuna" / "journal.log")
    holder = holders("night", url)
    with pytest.raises(StudyLocked, match=f"study 'night' is already being run by pid {holder.proc.pid};"):
        with study_lock("night", url):
            pass
    holder.kill()                                     # SIGKILL: no cleanup of its own
    assert acquired_within("night", url, 5)


# --- the PostgreSQL advisory lock -------------------------------------------------------------------------
def held_advisory(postgres_url: str, name: str) -> int:
    key = advisory_key(name)
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND classid = %s AND objid = %s", ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_postgres_second_holder_is_refused_naming_the_study_and_the_driver(postgres_url, home):
    name = f"lock-{uuid.uuid4().hex[:12]}"
    with study_lock(name, postgres_url) as conn:
        assert not conn.closed
        assert held_advisory(postgres_url, name) == 1
        with pytest.raises(StudyLocked) as info:
            with study_lock(name, postgres_url.replace("postgresql://", "postgresql+psycopg2://")):
                pytest.fail("a second holder got the lock")
        me = f"gradstudy driver pid {os.getpid()} on {socket.gethostname()}"[:63]
        assert str(info.value).startswith(f"study {name!r} is already being run by {me} (a PostgreSQL advisory lock")
        with study_lock(f"{name}-other", postgres_url):          # another study: its own key
            pass
    assert conn.closed
    assert held_advisory(postgres_url, name) == 0
    assert not (home / "locks").exists()                         # not the file lock
    with study_lock(name, postgres_url):
        pass


def test_postgres_lock_of_a_killed_driver_is_released_by_the_server(postgres_url, home, holders):
    name = f"lock-{uuid.uuid4().hex[:12]}"
    holder = holders(name, postgres_url)
    with pytest.raises(StudyLocked, match=f"gradstudy driver pid {holder.proc.pid} "):
        with study_lock(name, postgres_url):
            pass
    holder.kill()
    assert acquired_within(name, postgres_url, 10)


def test_advisory_key_is_a_signed_bigint_of_the_name():
    keys = {advisory_key(f"study-{i}") for i in range(200)}
    assert len(keys) == 200
    assert all(-(1 << 63) <= k < (1 << 63) for k in keys)
    assert any(k < 0 for k in keys) and any(k > 0 for k in keys)
    assert advisory_key("night") == advisory_key("night")
