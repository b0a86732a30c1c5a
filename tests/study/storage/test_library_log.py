"""study/storage/library_log.py in a real process whose file descriptor 2 is a real pipe: what C++ libraries
write on fd 2 and what a dying library thread prints go to $GRADSTUDY_HOME/logs/gradstudy.log under a heading
naming the command, while the command's own `sys.stderr` reaches the terminal; a block that said nothing
leaves no log file and no folder behind."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from testkit.processes import REPO

CHILD = textwrap.dedent("""
    import os, sys, threading, warnings
    from study.storage.library_log import chatter_to_log
    quiet = sys.argv[1] == "quiet"
    with chatter_to_log("gradstudy test-command") as path:
        print(f"own voice, log at {path}", file=sys.stderr, flush=True)
        if not quiet:
            os.write(2, b"C++ chatter on fd 2\\n")
            warnings.warn("an experimental feature", FutureWarning)
            def die():
                raise RuntimeError("UpdateFinishedTrialError-like, in a library thread")
            t = threading.Thread(target=die, name="ray-like-thread")
            t.start(); t.join()
    print("after the block", file=sys.stderr, flush=True)
""")


def run_child(home: Path, mode: str) -> str:
    env = {**os.environ, "GRADSTUDY_HOME": str(home), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_chatter_goes_to_the_log_and_the_commands_voice_to_the_terminal(tmp_path):
    home = tmp_path / "home"
    terminal = run_child(home, "chatty")
    log = (home / "logs" / "gradstudy.log").read_text()
    assert terminal.splitlines() == [f"own voice, log at {home / 'logs' / 'gradstudy.log'}", "after the block"]
    assert log.startswith("--- ") and "gradstudy test-command" in log.splitlines()[0]
    assert "C++ chatter on fd 2" in log
    assert "FutureWarning: an experimental feature" in log
    assert "exception in ray-like-thread" in log and "RuntimeError: UpdateFinishedTrialError-like" in log


def test_a_quiet_block_leaves_no_log_file_and_no_folder(tmp_path):
    home = tmp_path / "new" / "home"
    terminal = run_child(home, "quiet")
    assert "own voice" in terminal
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()                          # a log file that was there keeps what it had
    home = tmp_path / "kept"
    (home / "logs").mkdir()
    (home / "logs" / "gradstudy.log").write_text("earlier\n")
    run_child(home, "quiet")
    assert (home / "logs" / "gradstudy.log").read_text() == "earlier\n"
