"""Closing a trial's child run: its final `gradstudy.state` (and health with the span it judged,
`gradstudy.span`; failure reason), its colour (the health's, `mlflow.runColor`) and MLflow status.

The worker closes the run of a trial that returned (tracking/runs/trial_recorder.py), in parallel with the other
workers; the driver closes the runs of trials it knows more of (lost, failed before placement, closed
late after an MLflow outage) through tracking/runs/study_runs.py.
"""
from __future__ import annotations

from typing import Optional

from mlflow import MlflowClient
from mlflow.entities import Param, RunTag

from tracking.figures.colours import health_colour
from tracking.runs import names
from tracking.runs.batch_logger import MAX_PARAMS_TAGS
from tracking.runs.urls import scrub
from tracking.ui.run_look import COLOUR_TAG

STATUS = {"completed": "FINISHED", "diverged": "FINISHED", "pruned": "KILLED", "failed": "FAILED",
          "requeued": "FAILED"}


def closing_tags(state: str, health: Optional[str] = None, reason: Optional[str] = None,
                 extra_tags: Optional[dict[str, str]] = None, span: Optional[int] = None,
                 colour: Optional[str] = None) -> list[RunTag]:
    """The tags that close a trial's run (see `end_trial_run`); the worker sends them with its last metrics."""
    tags = [RunTag(names.TAG_STATE, state), RunTag(COLOUR_TAG, colour or health_colour(health))]
    tags += [RunTag(k, v) for k, v in (extra_tags or {}).items()]
    if health:
        tags.append(RunTag(names.TAG_HEALTH, health))
    if span is not None:
        tags.append(RunTag(names.TAG_SPAN, str(int(span))))
    if reason:
        tag = names.TAG_PRUNE_REASON if state == "pruned" else names.TAG_FAIL_REASON
        tags.append(RunTag(tag, scrub(reason)[:5000]))
    return tags


def end_trial_run(client: MlflowClient, run_id: str, state: str, health: Optional[str] = None,
                  reason: Optional[str] = None, extra_tags: Optional[dict[str, str]] = None,
                  span: Optional[int] = None, colour: Optional[str] = None,
                  params: Optional[dict[str, str]] = None) -> None:
    """`span`: the summary's `health_span`, the steps over which the verdict judged the gradient;
    `colour`: the run's colour where the study colours by something else than health (tracking/ui/run_look.py);
    `params`: the trial's params where the worker may not have logged them (sent in the same request as
    the tags; logging a param again with the same value is allowed). Two requests: the tags (and params),
    then the status."""
    tags = closing_tags(state, health, reason, extra_tags, span, colour)
    params_list = [Param(k, v) for k, v in (params or {}).items()]
    for i in range(0, max(len(params_list), 1), MAX_PARAMS_TAGS):
        client.log_batch(run_id, tags=tags if i == 0 else [], params=params_list[i:i + MAX_PARAMS_TAGS])
    client.set_terminated(run_id, STATUS.get(state, "FAILED"))


__all__ = ["STATUS", "closing_tags", "end_trial_run"]
