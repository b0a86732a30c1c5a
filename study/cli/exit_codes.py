"""Every exit code of `gradstudy`, one meaning each (shown by `gradstudy --help` and in README)."""
from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    ERROR = 1            # an unexpected error: a bug (a traceback)
    CONFIG = 2           # a bad configuration, or a storage, MLflow or Ray that cannot be reached (nothing written)
    LOCKED = 3           # the study is being run by another driver
    BUDGET = 4           # study.timeout_s ran out before study.n_trials were finished (resumable)
    REGRESSION = 5       # `gradstudy nightly`: the study regressed against the previous night
    STORAGE = 6          # the storage stayed unreachable for study.storage_retry_s mid-study (resumable)
    CLUSTER = 7          # the Ray cluster stopped answering mid-study (resumable)
    CLAIM_FAILED = 8     # `gradstudy check`: an expectation (a published result) did not hold
    INTERRUPTED = 130    # Ctrl-C (SIGINT) (resumable)
    TERMINATED = 143     # SIGTERM (`gradstudy ui`)


MEANING = {
    Exit.OK: "done",
    Exit.ERROR: "an unexpected error (a bug: please report the traceback)",
    Exit.CONFIG: "a bad configuration, or a storage, MLflow or Ray that cannot be reached (nothing written)",
    Exit.LOCKED: "the study is being run by another driver",
    Exit.BUDGET: "study.timeout_s ran out first (`gradstudy resume NAME` continues)",
    Exit.REGRESSION: "nightly: the study regressed against the previous night",
    Exit.STORAGE: "the storage stayed unreachable mid-study (resume once it is back)",
    Exit.CLUSTER: "the Ray cluster stopped answering mid-study (resume continues)",
    Exit.CLAIM_FAILED: "check: a published claim (an `expect:` rule) did not hold",
    Exit.INTERRUPTED: "interrupted (Ctrl-C); resume continues",
    Exit.TERMINATED: "terminated (SIGTERM)",
}


def table() -> str:
    """The exit codes as lines for `gradstudy --help`."""
    return "\n".join(f"  {int(code):>3}  {MEANING[code]}" for code in Exit)
