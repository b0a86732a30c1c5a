"""The libraries' chatter goes to a log file, not to the user's terminal.

Ray prints a token-authentication banner and C++ warnings on the process's stderr (file descriptor 2, not
through Python), Optuna warns that features are experimental, and Ray's threads may print a traceback after
an interrupt. The operator sees the command's own lines only; `paths.log_file()` keeps the rest, and the
messages that concern it name that file.

- `capture_python()`: Python warnings and the Ray/Optuna loggers → the file (again after `import ray`, which
  installs its own console handler).
- `chatter_to_log()`: a block whose fd-2 output (C++ libraries, child processes) lands in the file, while
  `sys.stderr`, the command's own voice, still reaches the terminal.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from study.storage.paths import log_file

_handler: Optional[logging.Handler] = None


def _writable() -> Optional[Path]:
    """The log file when it can be written (None when the data directory is read-only: chatter is then
    left where it goes); nothing is created here."""
    path = log_file()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return path if os.access(probe, os.W_OK) else None


def capture_python() -> Optional[Path]:
    """Python warnings and the ray / optuna loggers' records go to the log file, not the terminal."""
    global _handler
    path = _writable()
    if path is None:
        return None
    if _handler is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _handler = logging.FileHandler(path, delay=True)     # the file appears with the first record
        _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.captureWarnings(True)
        warnings.simplefilter("default")       # each distinct warning once per place, into the log
    # again after `import ray` (it sets its own console handler): call before ray.init
    for name in ("py.warnings", "ray", "optuna"):
        logger = logging.getLogger(name)
        logger.addHandler(_handler)
        logger.propagate = False
        for h in list(logger.handlers):
            if h is not _handler and isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                logger.removeHandler(h)
    return path


@contextmanager
def chatter_to_log(what: str) -> Iterator[Optional[Path]]:
    """For the block: file descriptor 2 (what C++ libraries and child processes write) goes to the log file,
    under a heading naming `what`; Python's `sys.stderr` (the command's own messages, its live display) stays
    on the terminal. Left as is when stderr is not the process's own (a test capturing it, say)."""
    created = [p for p in (log_file().parent, log_file()) if not p.exists()]
    path = capture_python()
    if path is None or sys.stderr is not sys.__stderr__ or _fileno(sys.stderr) != 2:
        yield path
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    original = sys.stderr
    sys.stderr = open(terminal, "w", buffering=1, encoding=original.encoding, errors="backslashreplace",
                      closefd=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    heading = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {what}\n"
    with path.open("a") as log:
        before = log.tell()
        log.write(heading)
        log.flush()
        os.dup2(log.fileno(), 2)
    try:
        yield path
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)
        sys.stderr = original
        _forget_if_quiet(path, before, len(heading.encode()), created)


def _forget_if_quiet(path: Path, before: int, heading: int, created: list[Path]) -> None:
    """Nothing said but the heading: the file as it was (what the command created, removed)."""
    try:
        if path.stat().st_size != before + heading:
            return
        if path in created:
            path.unlink()
            if path.parent in created:
                path.parent.rmdir()
        else:
            os.truncate(path, before)
    except OSError:
        pass


def _fileno(stream) -> int:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return -1
