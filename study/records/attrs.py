"""gradstudy's Optuna user attributes, each name defined once, and the typed record of a finished trial.

The Optuna study is the source of truth: what the driver learns of a trial is written on it as user
attributes, read back by `gradstudy status`, the study report and the nightly comparison.

Study attributes (`StudyAttr`): the identity of its config, the overrides it was started with, the search
space as structured data, the objectives, the target trial count, the nightly comparison, and the MLflow
back-fills (a finished trial is read-only, so they are recorded on the study, one key per trial number).
Trial attributes (`TrialAttr`): the `TrialRecord` fields, failure and requeue bookkeeping, the worker that
ran it and its MLflow run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

PREFIX = "gradstudy."


class StudyAttr:
    CONFIG = PREFIX + "config"            # the identity of the study's config (what may not change on resume)
    OVERRIDES = PREFIX + "overrides"      # the overrides it was started with
    SEARCH = PREFIX + "search"            # {key: {"expression", "fixed", "condition"}}
    OBJECTIVES = PREFIX + "objectives"    # the objective metrics, in order
    N_TRIALS = PREFIX + "n_trials"        # the target count of finished trials
    NIGHTLY = PREFIX + "nightly"          # the comparison with the previous night
    EXPECT = PREFIX + "expect"            # the experiment's expectation rules (published claims)
    BACKFILL = PREFIX + "mlflow_backfill."  # + trial number: the MLflow run that now holds the trial


class TrialAttr:
    HEALTH = PREFIX + "health"
    SPAN = PREFIX + "span"                # the steps over which the health verdict judged the gradient
    STATUS = PREFIX + "status"
    CELL = PREFIX + "cell"
    SUMMARY = PREFIX + "summary"
    FINAL = PREFIX + "final"
    STEPS = PREFIX + "steps"
    VANISHING_RATIO = PREFIX + "vanishing_ratio"
    SPAN_RATIO = PREFIX + "span_ratio"
    DECAY_RATE = PREFIX + "decay_rate"
    SEQ_LEN = PREFIX + "seq_len"
    FAIL_REASON = PREFIX + "fail_reason"
    PRUNE_REASON = PREFIX + "prune_reason"
    ERROR = PREFIX + "error"
    REQUEUED = PREFIX + "requeued"        # a lost trial whose configuration was queued again
    ATTEMPT = PREFIX + "attempt"          # on the queued copy: how many times the configuration was lost
    REQUEUE_OF = PREFIX + "requeue_of"    # on the queued copy: the number of the lost trial
    WORKER = PREFIX + "worker"            # {"pid", "host", "device", "node": the Ray node id}
    MLFLOW_RUN = PREFIX + "mlflow_run"
    MLFLOW_SYNC = PREFIX + "mlflow"       # running | synced | pending


@dataclass
class TrialRecord:
    """What the driver records of a trial that returned a result (None where it is not known)."""
    health: Optional[str] = None
    status: Optional[str] = None
    cell: Optional[str] = None
    summary: Optional[str] = None          # the path of its summary.json
    final: Optional[dict] = None
    steps: Optional[int] = None
    vanishing_ratio: Optional[float] = None   # of the last probe
    decay_rate: Optional[float] = None        # of the last probe
    seq_len: Optional[int] = None
    prune_reason: Optional[str] = None        # a pruned trial: which rule stopped it
    span: Optional[int] = None                # the summary's health_span: the steps the verdict judged
    span_ratio: Optional[float] = None        # of the last probe: the ratio over that span

    @classmethod
    def from_summary(cls, summary: dict[str, Any], path: str) -> "TrialRecord":
        last = summary["probes"][-1] if summary.get("probes") else {}
        config = summary["config"]
        return cls(health=summary["health"], status=summary["status"], cell=config["model"]["cell"],
                   summary=path, final=summary["final"], steps=summary["steps"],
                   vanishing_ratio=last.get("vanishing_ratio"), decay_rate=last.get("decay_rate"),
                   seq_len=config["task"]["seq_len"], prune_reason=summary.get("prune_reason"),
                   span=summary.get("health_span"), span_ratio=last.get("span_ratio"))

    def to_user_attrs(self) -> dict[str, Any]:
        return {PREFIX + name: value for name, value in asdict(self).items()}

    @classmethod
    def from_frozen(cls, trial) -> "TrialRecord":
        attrs = trial.user_attrs
        return cls(**{f.name: attrs.get(PREFIX + f.name) for f in fields(cls)})


def describe_search(search: dict[str, Any]) -> dict[str, str]:
    """The study's structured search space (`StudyAttr.SEARCH`) as one line per key:
    "expression [if condition]" (studies from before the structured form held these lines already)."""
    out = {}
    for key, spec in (search or {}).items():
        if isinstance(spec, dict):
            out[key] = spec["expression"] + (f" if {spec['condition']}" if spec.get("condition") else "")
        else:
            out[key] = str(spec)
    return out
