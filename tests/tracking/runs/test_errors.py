"""tracking/runs/errors.py: TrackingError names the key `tracking.uri`, the value with its password masked,
and what is valid; it is a RuntimeError, and importing it does not import MLflow."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracking.runs.errors import TrackingError

REPO = Path(__file__).resolve().parents[3]


def test_names_key_value_and_what_is_valid():
    err = TrackingError("http://mlflow.example:5000", "an http(s) URL of a running MLflow server")
    assert isinstance(err, RuntimeError)
    assert (err.key, err.value, err.valid) == ("tracking.uri", "http://mlflow.example:5000",
                                                "an http(s) URL of a running MLflow server")
    assert str(err) == ("tracking.uri='http://mlflow.example:5000' is unusable; "
                        "valid: an http(s) URL of a running MLflow server")


def test_password_is_masked_in_value_and_message():
    err = TrackingError("postgresql://alice:s3cr/et@db.example:5432/mlflow", "a reachable database")
    assert err.value == "postgresql://alice:***@db.example:5432/mlflow"
    assert "s3cr" not in str(err) and "s3cr" not in repr(err.args) and "alice:***@db.example" in str(err)


def test_raised_and_caught_as_runtime_error():
    with pytest.raises(RuntimeError, match=r"tracking\.uri='nope://x' is unusable; valid: sqlite"):
        raise TrackingError("nope://x", "sqlite:///path or http(s)://host")


def test_importing_it_does_not_import_mlflow():
    code = ("import sys; import tracking.runs.errors; "
            "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
