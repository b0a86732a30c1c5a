"""Real oversized configs on the command line (issue #28 points 3 and 8): `gradstudy trial` and `gradstudy run`
refuse a trial whose estimated peak memory cannot fit (workers/memory.py) with exit 2 and one stderr line naming
the keys and the estimate, within seconds, before anything is allocated or written: no trial folder, no study in
the journal, and the process's own peak memory stays that of an idle command."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from study.cli.exit_codes import Exit
from testkit.processes import cli_env, gradstudy_command
from testkit.tiny import TINY

IDLE_PEAK = 1024 ** 3    # the command's peak resident set, bytes: ~250 MB idle; the huge batch alone is ~40 GB


def gradstudy(args: list[str], home: Path, tmp_path: Path) -> tuple[int, str, int, float]:
    """(exit code, stderr, the process's peak resident set in bytes, wall seconds)."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    start = time.monotonic()
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(gradstudy_command() + args, env=cli_env(home), stdout=o, stderr=e,
                                stdin=subprocess.DEVNULL)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            proc.returncode = 0   # reaped here
    return os.waitstatus_to_exitcode(status), err.read_text(), usage.ru_maxrss * 1024, time.monotonic() - start


def written(home: Path) -> list[str]:
    """What the command left in its data directory besides the writability check's nothing."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


def test_gradstudy_trial_refuses_a_huge_batch_before_it_allocates(tmp_path):
    home = tmp_path / "home"
    code, err, peak, wall = gradstudy(["trial", "train.batch_size=100000000"], home, tmp_path)
    assert code == Exit.CONFIG, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradstudy: config error: train.batch_size=100000000 × task.seq_len=50 × "
                               "model.hidden_size=64 × model.layers=1 (model.cell=rnn) needs about ")
    assert " GiB (training step " in lines[0] and "lower train.batch_size or set train.max_memory_gb" in lines[0]
    assert wall < 30 and peak < IDLE_PEAK, (wall, peak)
    assert not (home / "trials").exists() and written(home) == []


def test_gradstudy_trial_refuses_a_tiny_trial_over_train_max_memory_gb(tmp_path):
    home = tmp_path / "home"
    code, err, _, _ = gradstudy(["trial", *TINY, "train.max_memory_gb=0.001"], home, tmp_path)
    assert code == Exit.CONFIG, err
    assert len(err.strip().splitlines()) == 1
    assert "needs about 0.0" in err and "this worker has 0.001 GiB (train.max_memory_gb=0.001)" in err
    assert not (home / "trials").exists()


def test_gradstudy_run_refuses_a_search_space_whose_largest_trial_cannot_fit(tmp_path):
    home = tmp_path / "home"
    args = ["run", *TINY, "study.name=memory", '++search.params={train.batch_size: "choice(32, 100000000)"}']
    code, err, peak, wall = gradstudy(args, home, tmp_path)
    assert code == Exit.CONFIG, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradstudy: config error: the largest trial of the search space "
                               "(train.batch_size=100000000): train.batch_size=100000000 × task.seq_len=10 × ")
    assert wall < 30 and peak < IDLE_PEAK, (wall, peak)
    assert written(home) == []          # no journal, so no study in it; no trial folder
