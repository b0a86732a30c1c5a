"""Where a study's state lives: the Optuna storage (the source of truth) and the data directory.

    backend.py  the Optuna storage: a journal file by default, PostgreSQL for a cluster (`study.storage`)
    retry.py    storage outages waited out: every storage call retries transient errors
    trial_attrs.py  a trial's user attributes written together (one transaction on a database)
    lock.py     one driver per study at a time (an advisory lock, or a lock file beside the journal)
    paths.py    the data directory (`GRADSTUDY_HOME`, default ~/.gradstudy) and the folders inside it
"""
from study.storage.backend import is_local_file, load_study, open_storage, resolve_url
from study.storage.lock import StudyLocked, study_lock
from study.storage.paths import data_dir, new_trial_dir, study_dir, trial_dir
from study.storage.retry import StorageUnavailable

__all__ = ["is_local_file", "load_study", "open_storage", "resolve_url", "StudyLocked", "study_lock", "data_dir",
           "new_trial_dir", "study_dir", "trial_dir", "StorageUnavailable"]
