"""Fixtures of the study-driver tests: `composed`, the package's memo of valid compositions."""
from __future__ import annotations

import copy
from typing import Sequence

import pytest

from study.config.compose import Composed, compose_root, compose_trial
from workers.config import TrialConfig


class Compositions:
    """compose_root / compose_trial once per distinct override list for the whole package (Hydra's
    composition is the slow part of these tests); every caller gets its own deep copy. Tests of the
    composition's errors, or of Hydra's global state, call study.config.compose directly."""

    def __init__(self):
        self._roots: dict[tuple[str, ...], Composed] = {}
        self._trials: dict[tuple[str, ...], TrialConfig] = {}

    def root(self, overrides: Sequence[str] = ()) -> Composed:
        key = tuple(overrides)
        if key not in self._roots:
            self._roots[key] = compose_root(list(key))
        return copy.deepcopy(self._roots[key])

    def trial(self, overrides: Sequence[str] = ()) -> TrialConfig:
        key = tuple(overrides)
        if key not in self._trials:
            self._trials[key] = compose_trial(list(key))
        return copy.deepcopy(self._trials[key])


@pytest.fixture(scope="package")
def composed() -> Compositions:
    return Compositions()
