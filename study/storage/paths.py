"""The data directory: every local store lives under one folder, with absolute paths.

`GRADSTUDY_HOME` sets it; the default is `~/.gradstudy`. Inside: `trials/` (single trial runs),
`studies/` (one folder per study: the Optuna journal, its trial folders), `mlflow/` (the local MLflow
SQLite store and artifacts).
"""
from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("GRADSTUDY_HOME") or Path.home() / ".gradstudy").expanduser().resolve()


def study_dir(study: str) -> Path:
    """A study's folder: its trials' files, its report, the nightly comparison."""
    return data_dir() / "studies" / study


def trial_dir(study: str, number: int) -> Path:
    """Where the driver keeps a study trial's summary.json, history.json and config.yaml."""
    return study_dir(study) / "trials" / f"{number:05d}"


def new_trial_dir(task: str, cell: str) -> Path:
    """A fresh, unique folder for one `gradstudy trial` run (not created here)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return data_dir() / "trials" / f"{stamp}-{task}-{cell}-{secrets.token_hex(3)}"


def log_file() -> Path:
    """What the libraries say that is not for the terminal (Ray's banners and C++ warnings, Optuna's
    experimental warnings, tracebacks of Ray's threads after an interrupt): appended here, with a timestamp."""
    return data_dir() / "logs" / "gradstudy.log"


def require_writable(command: str) -> Path:
    """The data directory, checked by writing a file in it, before the command does any work; a ConfigError
    naming GRADSTUDY_HOME, the folder and the reason when it cannot be written. Folders made for the check
    are removed again: the command creates what it needs when it needs it (a refused run leaves nothing)."""
    from workers.config import ConfigError

    home = data_dir()
    made = [p for p in (home, *home.parents) if not p.exists()]
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".gradstudy-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError("GRADSTUDY_HOME", str(home), "a writable folder",
                          f"GRADSTUDY_HOME={home} cannot be written ({exc.strerror or exc}): `gradstudy {command}` "
                          "keeps its studies, trials and locks there; point GRADSTUDY_HOME at a writable folder "
                          "(status, list and check only read it)") from None
    finally:
        for folder in made:      # innermost first
            try:
                folder.rmdir()
            except OSError:
                pass
    return home
