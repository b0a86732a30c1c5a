"""What an operator gets wrong, run for real (issue #28 points 2, 4, 5, 6 and 8): a read-only data directory
(a read-only bind mount of a populated GRADSTUDY_HOME, or an unwritable folder where mounting is not allowed),
`gradstudy trial` given study keys, a study whose trials would all be one trial, Ctrl-C in the middle of a
study, `resume` of a study that is already finished, and the libraries' chatter kept off the terminal.

Every refusal is one stderr line and exit 2, before anything runs; the commands that only read keep working.
"""
from __future__ import annotations

import io
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from study.cli.exit_codes import Exit
from study.cli.main import main, warn_if_identical
from study.config.compose import compose_root
from study.search.space import SearchSpace
from study.storage.backend import open_storage
from testkit.processes import cli_env, gradstudy_command, wait_until
from testkit.tiny import TINY

WRITING = [["run", *TINY, "study.name=second"], ["resume", "first", "study.n_trials=10"], ["report", "first"],
           ["trial", *TINY], ["ui", "first", "--port", "1"]]
READING = [["status", "first"], ["list"], ["check", "first"]]


def gradstudy(args: list[str], home: Path, timeout: float = 120) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, wall seconds) of `gradstudy ARGS` with GRADSTUDY_HOME=home."""
    start = time.monotonic()
    proc = subprocess.run(gradstudy_command() + args, env=cli_env(home), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, start_new_session=True)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class ReadOnly:
    """`folder` seen read-only at `view`: a bind mount remounted read-only (root), else the folder's own write
    bits taken away (an unwritable folder; root ignores those, so without mount rights the test is skipped).
    Undoes only what it did."""

    def __init__(self, folder: Path, view: Path):
        self.folder, self.view, self.mounted, self.modes = folder, view, False, {}

    def __enter__(self) -> Path:
        self.view.mkdir()
        if os.geteuid() == 0:
            bind = subprocess.run(["mount", "--bind", str(self.folder), str(self.view)], capture_output=True)
            if bind.returncode == 0:
                self.mounted = True
                ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(self.view)], capture_output=True)
                if ro.returncode == 0:
                    return self.view
            pytest.skip(f"a read-only bind mount is not allowed here: {bind.stderr or ro.stderr!r}")
        for path in [self.folder, *self.folder.rglob("*")]:
            if path.is_dir():
                self.modes[path] = path.stat().st_mode
                path.chmod(0o555)
        return self.folder

    def __exit__(self, *exc) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.view)], check=True)
        for path, mode in self.modes.items():
            path.chmod(mode)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_read_only_data_directory_refuses_writes_in_one_line_and_still_reads(home, tmp_path, drivers):
    first = drivers.run(["run", *TINY, "study.name=first", "study.n_trials=2"], 180)
    assert first.returncode == 0, first.output()
    # quiet by default (point 6): Ray's token-auth banner and Optuna's warnings went to the log, not the terminal
    # (whether Ray prints its banner depends on the token set-up the environment gives it; where the log goes is
    # tests/study/storage/test_library_log.py's business)
    assert "Token authentication" not in first.stderr() and "Warning" not in first.stderr(), first.stderr()
    # resume of a finished study (point 6): one line, exit 0, no Ray (starting one takes longer than 5 s here)
    code, out, err, wall = gradstudy(["resume", "first"], home)
    assert code == 0 and err == "", err
    assert out.strip().splitlines() == [
        "study first is finished: 2 of 2 trials (COMPLETE 2); nothing to resume. `gradstudy status first` shows the "
        "results; `gradstudy resume first study.n_trials=12` would run 10 more"]
    assert wall < 5, wall
    before = files_under(home)
    with ReadOnly(home, tmp_path / "read-only") as view:
        for args in WRITING:
            code, out, err, wall = gradstudy(args, view)
            lines = err.strip().splitlines()
            assert code == Exit.CONFIG, (args, err)
            assert len(lines) == 1, (args, err)
            assert lines[0].startswith(f"gradstudy: config error: GRADSTUDY_HOME={view} cannot be written ("), err
            assert f"`gradstudy {args[0]}` keeps its studies" in lines[0] and out == "", (args, out)
            assert wall < 20, (args, wall)                 # refused before Ray, Hydra or a trial
        for args in READING:
            code, out, err, _ = gradstudy(args, view)
            assert code == 0, (args, err)
            assert "first" in out, (args, out)
    assert files_under(home) == before


def test_an_unwritable_data_directory_that_does_not_exist_is_refused_and_not_created(tmp_path, monkeypatch, capsys):
    home = Path("/proc/gradstudy-test/home")                # cannot be created, not even by root
    code, out, err, _ = gradstudy(["trial", *TINY], home)
    assert code == Exit.CONFIG and len(err.strip().splitlines()) == 1, err
    assert f"GRADSTUDY_HOME={home} cannot be written (No such file or directory)" in err
    # writable but not there yet: checked, and a refusal leaves no folder (in this process, where the log
    # file's own clean-up does not run: the check's clean-up alone)
    monkeypatch.setenv("GRADSTUDY_HOME", str(tmp_path / "new" / "home"))
    assert main(["trial", *TINY, "tracking.uri=http://127.0.0.1:1"]) == Exit.CONFIG
    assert "does not use tracking.uri" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_reading_commands_on_a_data_directory_that_does_not_exist_create_nothing(tmp_path):
    """`list` on a new GRADSTUDY_HOME is an empty list; `status`, `check`, `report`, `resume` and `ui` of a study
    it does not hold are the one-line error: none of them creates the folder, an empty journal file or a store."""
    home = tmp_path / "never-made"
    code, out, err, _ = gradstudy(["list"], home)
    assert code == Exit.OK and "studies" in out and not err.strip(), (out, err)
    for command in (["status", "nope"], ["check", "nope"], ["report", "nope"], ["resume", "nope"]):
        code, out, err, _ = gradstudy(command, home)
        assert code == Exit.CONFIG and "NAME='nope'" in err and len(err.strip().splitlines()) == 1, (command, err)
    assert not home.exists()
    # MLflow's local store is not there (`gradstudy ui` alone serves a new one)
    for command in (["ui", "nope"], ["ui", "--no-serve"]):
        code, out, err, _ = gradstudy(command, home)
        assert code == Exit.CONFIG and f"no study has been recorded in {home / 'mlflow'} yet" in err, (command, err)
        assert len(err.strip().splitlines()) == 1, err
    assert not home.exists()


@pytest.mark.parametrize("override, key", [
    ("tracking.uri=http://127.0.0.1:5000", "tracking.uri"), ("study.n_trials=5", "study.n_trials"),
    ('++search.params={train.seed: "range(0, 4)"}', "search.params"), ("cluster.address=10.0.0.1:6379",
                                                                       "cluster.address"),
    ("nightly.tolerance=0.5", "nightly.tolerance"), ("expect=[]", "expect")])
def test_gradstudy_trial_refuses_keys_it_does_not_use(override, key, home, capsys):
    code = main(["trial", *TINY, override])
    err = capsys.readouterr().err.strip()
    assert code == Exit.CONFIG, err
    assert err == (f"gradstudy: config error: `gradstudy trial` does not use {key}: it runs one trial here, without "
                   "Optuna, Ray or MLflow, and reads only task.*, model.*, train.* and experiment=; `gradstudy run` "
                   "takes study.*, search.*, cluster.*, tracking.* and nightly.* keys (study.n_trials=1 for a study "
                   "of one trial)")
    assert files_under(home) == []


def test_gradstudy_trial_takes_an_experiment_and_trial_keys(home, capsys):
    assert main(["trial", "experiment=test_tiny", "train.steps=2", "model.hidden_size=4"]) == 0
    assert len(list((home / "trials").iterdir())) == 1


def identical_warning(overrides: list[str]) -> str:
    buffer = io.StringIO()
    warn_if_identical(compose_root(overrides), Console(file=buffer, width=10_000))
    return buffer.getvalue().strip()


def test_a_study_of_identical_trials_is_warned_about_with_a_remedy_that_works():
    base = ["study.name=same", "train.seed=3"]
    warning = identical_warning([*base, "study.n_trials=8"])
    assert warning.startswith("gradstudy: warning: search.params is empty, so the 8 trials of this study are one "
                              "configuration with one seed (train.seed=3): 8 identical runs.")
    assert identical_warning([*base, "study.n_trials=1"]) == ""        # one trial: nothing repeats
    assert identical_warning([*base, "experiment=demo"]) == ""        # a search space
    # the remedy it prints, taken from the line as a shell would, is a valid study of 8 different seeds
    remedy = re.search(r"Vary the seed with (.*?), or add", warning).group(1)
    composed = compose_root([*base, "study.n_trials=8", *shlex.split(remedy)])
    grid = SearchSpace.from_config(composed.root.search.params).grid()
    assert composed.root.study.sampler.value == "grid" and grid == {"train.seed": list(range(8))}
    assert identical_warning([*base, "study.n_trials=8", *shlex.split(remedy)]) == ""


def test_a_grid_smaller_than_n_trials_is_warned_about_with_a_remedy_that_works():
    warning = identical_warning([*TINY, "study.n_trials=12"])          # test_tiny: a 3 × 3 grid
    assert warning.startswith("gradstudy: warning: the grid has 9 combinations and study.n_trials=12, so 3 trials "
                              "repeat a combination with the same seed (train.seed=0); set study.n_trials=9"), warning
    assert identical_warning([*TINY, "study.n_trials=9"]) == ""
    remedy = re.search(r"\(e\.g\. (.*?) makes the grid 27\)", warning).group(1)
    composed = compose_root([*TINY, "study.n_trials=27", *shlex.split(remedy)])
    grid = SearchSpace.from_config(composed.root.search.params).grid()
    assert len(grid) == 3 and grid["train.seed"] == [0, 1, 2]
    assert identical_warning([*TINY, "study.n_trials=27", *shlex.split(remedy)]) == ""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ctrl_c_names_the_resume_command(home, tmp_path, drivers):
    # long trials (each ~20 s), two at a time: Ctrl-C lands while trials run
    d = drivers.start(["run", *TINY, "study.name=intr", "train.steps=20000", "task.seq_len=50"])
    storage = open_storage("")
    wait_until(lambda: any(t.state == optuna.trial.TrialState.RUNNING
                           for t in optuna.load_study(study_name="intr", storage=storage).trials)
               if "intr" in optuna.get_all_study_names(storage) else False, 90, "a running trial", 0.5, d)
    time.sleep(2)
    os.kill(d.pid, signal.SIGINT)
    assert d.wait(60) == Exit.INTERRUPTED, d.output()
    lines = d.stderr().strip().splitlines()
    assert lines[-1] == ("gradstudy: interrupted; `gradstudy resume intr` continues the study (finished trials "
                         "are kept)"), d.output()
    assert "Traceback" not in d.stderr() and "Error" not in d.stderr(), d.output()

