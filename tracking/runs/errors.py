"""The error of an unusable MLflow configuration, importable without importing MLflow."""
from __future__ import annotations

from tracking.runs.urls import scrub


class TrackingError(RuntimeError):
    """MLflow cannot be used as configured: names `tracking.uri`, the value and what is needed."""

    def __init__(self, uri: str, valid: str):
        self.key, self.value, self.valid = "tracking.uri", scrub(uri), valid
        super().__init__(f"tracking.uri={self.value!r} is unusable; valid: {valid}")
