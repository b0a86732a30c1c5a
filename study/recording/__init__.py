"""MLflow attached to a study run (tracking/ does the writing; this room decides when).

    hook.py      `MlflowHook`: the driver hook that opens the parent run, a child run per trial, and closes them
    backfill.py  trials MLflow missed (it was down) recorded afterwards from their summary.json
    publish.py   the study report written and attached to the parent run with counts and the study's note
"""
from study.recording.hook import MlflowHook, tracking_hooks

__all__ = ["MlflowHook", "tracking_hooks"]
