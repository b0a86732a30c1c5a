"""The driver's calls on single trials of an Optuna study, in one place.

The ask/tell pattern gives the driver `optuna.Trial` objects while it also has to change trials it does
not hold (a lost trial found RUNNING after a crash, a trial whose worker died): that needs the storage's
trial-level calls and a trial's storage id, which Optuna keeps private (`Study._storage`,
`Trial._trial_id`). This module is their only user; the rest of the driver calls `TrialCalls`. (It is
also where retries of transient storage errors belong.)
"""
from __future__ import annotations

from typing import Any, Union

import optuna
from optuna.trial import FrozenTrial, TrialState

AnyTrial = Union[optuna.Trial, FrozenTrial]


def trial_id(trial: Union[AnyTrial, int]) -> int:
    """The storage's id of a trial (not its number, which counts within the study); an id stays itself."""
    return trial if isinstance(trial, int) else trial._trial_id


class TrialCalls:
    def __init__(self, study: optuna.Study):
        self.study = study
        self._storage = study._storage

    def frozen(self, trial: Union[AnyTrial, int]) -> FrozenTrial:
        """The trial as the storage has it now."""
        return self._storage.get_trial(trial_id(trial))

    def set_attr(self, trial: Union[AnyTrial, int], key: str, value: Any) -> None:
        self._storage.set_trial_user_attr(trial_id(trial), key, value)

    def fail(self, trial: Union[AnyTrial, int]) -> None:
        """Mark a trial FAIL (one the driver does not hold as an `optuna.Trial`)."""
        self._storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
