"""MLflow names (the public contract in docs/mlflow.md, "What each trial's run holds") and the mapping from a
trial's reports to them.

Metrics: `train/loss`; `grad/global_norm`, `grad/norm/<group>`, `grad/vanishing_ratio`, `grad/span_ratio` (the ratio
over the task's dependency span, which the health verdict judges), `grad/decay_rate`, `grad/horizon`,
`grad/clipped_fraction`, `weights/lambda1/<layer>`, `weights/spectral_radius/<layer>`, `val/loss`,
`val/accuracy`; `final/test_loss`, `final/baseline_ratio`, `final/accuracy`, `final/solved`,
`final/steps_to_solve`, `final/seq_per_s`, `final/nrmse` and `final/free_run_nrmse` (mackey_glass), the AR(k)
baseline's `final/ar_order`, `final/ar_nrmse`, `final/ar_free_run_nrmse` (mackey_glass, workers/forecast/ar_baseline.py)
and an ESN's ridge λ `final/ridge`. Tags: `gradstudy.study`, `gradstudy.trial`,
`gradstudy.state`, `gradstudy.health`, `gradstudy.span` (the span in steps that the verdict judged: the summary's
`health_span`), `gradstudy.cell`. Layers are numbered from 0 (bottom).
"""
from __future__ import annotations

from typing import Any, Iterator

from workers.values import metric_value

TAG_STUDY, TAG_TRIAL, TAG_STATE = "gradstudy.study", "gradstudy.trial", "gradstudy.state"
TAG_HEALTH, TAG_CELL, TAG_ROLE = "gradstudy.health", "gradstudy.cell", "gradstudy.role"
TAG_SPAN = "gradstudy.span"
TAG_FAIL_REASON, TAG_BACKFILLED = "gradstudy.fail_reason", "gradstudy.backfilled"
TAG_PRUNE_REASON = "gradstudy.prune_reason"
TAG_OVERRIDES = "gradstudy.overrides"
PARENT = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"     # a run's (and an experiment's) description, markdown

FINAL = ("test_loss", "baseline_ratio", "accuracy", "solved", "steps_to_solve", "seq_per_s", "nrmse",
         "free_run_nrmse", "ar_order", "ar_nrmse", "ar_free_run_nrmse", "ridge")


def probe_metrics(probe: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """(name, value) pairs of one probe; non-finite values are left out (MLflow cannot hold NaN
    reliably across backends; the probe table artifact keeps everything)."""
    pairs: list[tuple[str, Any]] = [
        ("grad/global_norm", probe.get("global_norm")),
        ("grad/vanishing_ratio", probe.get("vanishing_ratio")),
        ("grad/span_ratio", probe.get("span_ratio")),
        ("grad/decay_rate", probe.get("decay_rate")),
        ("grad/horizon", probe.get("horizon")),
        ("val/loss", probe.get("val_loss")),
        ("val/accuracy", probe.get("val_accuracy")),
    ]
    pairs += [(f"grad/norm/{g}", v) for g, v in (probe.get("group_norms") or {}).items()]
    pairs += [(f"weights/lambda1/{i}", v) for i, v in enumerate(probe.get("lambda1") or [])]
    pairs += [(f"weights/spectral_radius/{i}", v) for i, v in enumerate(probe.get("spectral_radius") or [])]
    for name, value in pairs:
        number = metric_value(value)
        if number is not None:
            yield name, number


def final_metrics(final: dict[str, Any]) -> Iterator[tuple[str, float]]:
    for key in FINAL:
        number = metric_value(final.get(key))
        if number is not None:
            yield f"final/{key}", number


def metric_of_objective(objective: str) -> str:
    """The MLflow metric of a study objective (`final.test_loss` → `final/test_loss`)."""
    return objective.replace(".", "/")


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys → string values: MLflow params of a trial's resolved config."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = "null" if value is None else str(value)
    return out
