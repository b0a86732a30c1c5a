"""The libraries' chatter goes to a log file, not to the user's terminal.

Ray prints a token-authentication banner and C++ warnings on the process's stderr (file descriptor 2, not
through Python), Optuna warns that features are experimental, and Ray's threads may print a traceback after
an interrupt. The operator sees the command's own lines only; `paths.log_file()` keeps the rest, and the
messages that concern it name that file.

- `capture_python()`: Python warnings and the Ray/Optuna loggers → the file (again after `import ray`, which
  installs its own console handler).
- `chatter_to_log()`: a block whose fd-2 output (C++ libraries, child processes) lands in the file, while
  `sys.stderr`, the command's own voice, still reaches the terminal; a library thread's dying traceback
  (threading.excepthook) goes to the file too.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
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
        _handler = _LogFile(path)     # the file (and its folder) appear with the first record
        _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.captureWarnings(True)
        warnings.simplefilter("default")       # each distinct warning once per place, into the log
    # again after `import ray` (it sets its own console handler): call before ray.init
    for name in ("py.warnings", "ray", "optuna", "gradstudy.threads"):
        logger = logging.getLogger(name)
        logger.addHandler(_handler)
        logger.propagate = False
        for h in list(logger.handlers):
            if h is not _handler and isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                logger.removeHandler(h)
    return path


class _LogFile(logging.FileHandler):
    """A FileHandler that creates its folder with its first record; a record it cannot write is dropped (a data
    directory that access() let through but that cannot hold a file: /proc, a full disk)."""

    def __init__(self, path: Path):
        super().__init__(path, delay=True)

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:
        pass


@contextmanager
def chatter_to_log(what: str) -> Iterator[Optional[Path]]:
    """For the block: file descriptor 2 (what C++ libraries and child processes write) goes to the log file,
    under a heading naming `what`; Python's `sys.stderr` (the command's own messages, its live display) stays
    on the terminal. Left as is when stderr is not the process's own (a test capturing it, say)."""
    created = [p for p in (log_file(), *log_file().parents) if not p.exists()]   # the file and its new folders
    path = capture_python()
    if path is None or sys.stderr is not sys.__stderr__ or _fileno(sys.stderr) != 2:
        yield path
        return
    heading = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {what}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = path.open("a")
    except OSError:         # a data directory that cannot hold it: chatter stays where it goes
        yield None
        return
    with log:
        before = log.tell()
        log.write(heading)
        log.flush()
        sys.stderr.flush()
        terminal = os.dup(2)
        os.dup2(log.fileno(), 2)
    original = sys.stderr
    sys.stderr = open(terminal, "w", buffering=1, encoding=original.encoding, errors="backslashreplace",
                      closefd=False)
    previous_hook = threading.excepthook
    threading.excepthook = _thread_failure_to_log
    try:
        yield path
    finally:
        threading.excepthook = previous_hook
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)
        sys.stderr = original
        _forget_if_quiet(path, before, len(heading.encode()), created)


def _thread_failure_to_log(args: threading.ExceptHookArgs) -> None:
    """A library thread that dies (Ray's or Optuna's, typically after an interrupt: UpdateFinishedTrialError)
    leaves its traceback in the log file, not on the terminal."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("gradstudy.threads").error(
        "exception in %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _forget_if_quiet(path: Path, before: int, heading: int, created: list[Path]) -> None:
    """Nothing said but the heading: the file as it was (what the command created, removed)."""
    try:
        if path.stat().st_size != before + heading:
            return
        if path in created:
            path.unlink()
            for folder in created[1:]:     # the folders this command made for it, innermost first, if empty
                folder.rmdir()
        else:
            os.truncate(path, before)
    except OSError:
        pass


def _fileno(stream) -> int:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return -1
