"""The driver of a study: Optuna asks, Ray runs, Optuna is told, until `study.n_trials` are finished.

    runner.py       the run loop (`StudyRunner`); it takes a list of hooks and knows none of them
    hooks.py        the points where other parts attach (`StudyHook`: on_start, on_launch, on_result,
                    on_lost, on_end) and `HookList`, several called in order
    progress.py     what a run shows while it runs (`Progress`) and what it returns (`Outcome`)
    tally.py        the running count of finished trials, O(1) per trial
    trial_calls.py  the driver's calls on single Optuna trials (`TrialCalls`)

`StudyRunner` loads Ray: import it from study.driver.runner.
"""
from study.driver.hooks import HookList, StudyHook
from study.driver.progress import Outcome, Progress
from study.driver.tally import Tally
from study.driver.trial_calls import TrialCalls, trial_id

__all__ = ["HookList", "StudyHook", "Outcome", "Progress", "Tally", "TrialCalls", "trial_id"]
