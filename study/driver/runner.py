"""The driver of a study: Optuna asks, Ray runs, Optuna is told — until `study.n_trials` are finished.

    ask ─> sample the search space ─> compose the trial config ─> Ray task ─> summary ─> tell

The Optuna study is the source of truth, so the driver can die at any point and a re-run (the same
`gradstudy run …` or `gradstudy resume NAME`) finishes the job:
- one driver per study (study/storage/lock.py); the holder of the lock knows that any trial still RUNNING in the
  storage was orphaned by a dead driver: it is marked FAIL, tagged `gradstudy.requeued`, and its
  parameters are queued again (Optuna `enqueue_trial`), so nothing is lost and nothing counts twice;
- a trial whose Ray worker dies is handled the same way, up to `cluster.max_requeues` times, then it is a
  final FAIL; an exception in the trial's own code is a final FAIL with the error kept as an attribute;
- a diverged trial is a result: COMPLETE with the objective at its worst (+inf when minimizing);
- trials are only asked for while finished + in flight < n_trials, so exactly n_trials count;
- a Ray cluster that stops answering mid-study (study/cluster/watch.py) ends the run with ClusterLost, its
  running trials left RUNNING for the next driver to queue again.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import asdict
from typing import Any, Optional, Sequence

import optuna
import ray
import yaml
from optuna.trial import TrialState

from study.cluster import placement
from study.cluster.trial_task import TrialJob
from study.cluster.watch import ClusterLost, ClusterWatch, gcs_address
from study.config.compose import Composed
from study.config.objectives import lookup, objective_values
from study.config.schema import RootConfig
from study.config.trial_composer import TrialComposer
from study.driver.hooks import HookList, StudyHook
from study.driver.progress import Outcome, Progress
from study.driver.tally import Tally
from study.driver.trial_calls import TrialCalls, trial_id
from study.records.attrs import StudyAttr, TrialAttr, TrialRecord
from study.search.check import validate_keys
from study.search.memory_check import check_memory
from study.search.samplers import make_pruner, make_sampler
from study.search.space import SearchSpace
from study.storage.backend import is_local_file, open_storage, resolve_url
from study.storage.lock import study_lock
from study.storage.paths import trial_dir
from study.storage.retry import StorageUnavailable
from study.storage.trial_attrs import set_user_attrs
from workers.config import ConfigError, TrialConfig, to_dict
from workers.summary import write_trial_folder

# Keys added after studies could have been started: a stored identity without one of them is the same study
# when the key is at its schema default (`gradstudy resume` keeps working across upgrades).
LATER_KEYS = (("study", "health_patience"), ("task", "free_run"), ("model", "washout"), ("model", "ridge"),
              ("train", "max_memory_gb"))


def same_identity(stored: str, current: str) -> bool:
    if stored == current:
        return True
    old, new = yaml.safe_load(stored) or {}, yaml.safe_load(current) or {}
    defaults = RootConfig()
    for section, key in LATER_KEYS:
        if key not in (old.get(section) or {}) and (new.get(section) or {}).get(key) == getattr(
                getattr(defaults, section), key):
            new[section].pop(key)
    return old == new


class StudyRunner:
    def __init__(self, composed: Composed):
        self.composed = composed
        self.root = composed.root
        self.name = self.root.study.name
        self.space = SearchSpace.from_config(self.root.search.params, self.root.search.conditions)
        self.base = [o for o in composed.overrides if not o.startswith("study.name=")]
        self.metrics = [o.metric for o in self.root.study.objectives]
        self.directions = [o.direction.value for o in self.root.study.objectives]
        self.storage_url = resolve_url(self.root.study.storage)
        self.hooks = HookList()            # set by run(): the hooks the command built
        self.validated = False
        self.watch: Optional[ClusterWatch] = None   # set by run(): notices a Ray cluster lost mid-study
        self.tally: Optional[Tally] = None          # set by run(): the finished trials, counted as they end

    # --- set-up ---------------------------------------------------------------------------------------
    @property
    def base_config(self) -> TrialConfig:
        """The trial config before sampling: what a condition on an unsampled key reads."""
        if not hasattr(self, "_base_config"):
            self._base_config = self.trial_config({})
        return self._base_config

    @property
    def composer(self) -> TrialComposer:
        """Trial configs of this study, composed fast (study/config/trial_composer.py)."""
        if not hasattr(self, "_composer"):
            self._composer = TrialComposer(self.base + list(self.root.study.fixed))
        return self._composer

    def trial_config(self, values: dict[str, Any]) -> TrialConfig:
        """The trial's config: the study's base with the sampled `values`."""
        return self.composer(values, self.space.overrides(values))

    def validate(self) -> None:
        """Every search key and value composes: caught here, before any trial runs. Each check goes through
        the composer (the same config or ConfigError as a full Hydra composition, without ~0.3 s of Hydra
        per value checked)."""
        validate_keys(self.space, self.composer.from_overrides)
        # the largest trial the search space can sample must fit in memory (study/search/memory_check.py); on a
        # Ray cluster the driver cannot know a worker's memory: only train.max_memory_gb here, the worker the rest
        on_cluster = bool(placement.cluster_address(self.root.cluster))
        check_memory(self.space, self.base_config, self.composer.from_overrides, measure=not on_cluster)
        self.validated = True
        if not on_cluster:
            return
        # a cluster: workers on other machines cannot reach (or would each write) a file on their own disk
        if is_local_file(self.storage_url):
            raise ConfigError("study.storage", "(the local journal file)",
                              "a database URL (postgresql://…) when cluster.address joins a Ray cluster: "
                              "workers on other machines cannot reach a local file")
        uri = self.root.tracking.uri
        if self.root.tracking.enabled and not uri.startswith(("http://", "https://", "databricks")):
            raise ConfigError("tracking.uri", uri or "(the local MLflow store)",
                              "an MLflow server URL (http://host:5000) or tracking.enabled=false when "
                              "cluster.address joins a Ray cluster: each worker would write its metrics and "
                              "artifacts to a file on its own disk")

    def open_study(self, storage: optuna.storages.BaseStorage) -> optuna.Study:
        sampler = make_sampler(self.root.study, self.space)
        study = optuna.create_study(study_name=self.name, storage=storage, sampler=sampler,
                                    pruner=make_pruner(self.root.study), directions=self.directions,
                                    load_if_exists=True)
        existing = study.user_attrs.get(StudyAttr.CONFIG)
        if existing is not None and not same_identity(existing, self.identity()):
            raise ConfigError("study.name", self.name,
                              "a new name: a study of this name exists with another configuration "
                              f"(`gradstudy resume {self.name}` continues it as it was)")
        if existing is None:
            study.set_user_attr(StudyAttr.CONFIG, self.identity())
            study.set_user_attr(StudyAttr.OVERRIDES, self.composed.overrides)
            study.set_user_attr(StudyAttr.SEARCH, self.space.structured())
            study.set_user_attr(StudyAttr.OBJECTIVES, self.metrics)
        study.set_user_attr(StudyAttr.N_TRIALS, self.root.study.n_trials)
        study.set_user_attr(StudyAttr.EXPECT, [asdict(rule) for rule in self.root.expect])   # checks, not identity
        if study.metric_names != self.metrics:   # the objectives' names (optuna-dashboard), older studies too
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(self.metrics)
        return study

    def identity(self) -> str:
        """The part of the configuration that makes two runs the same study (not counts or placement)."""
        root = yaml.safe_load(self.composed.yaml)
        for section in ("cluster", "tracking", "nightly", "expect"):
            root.pop(section, None)
        for key in ("n_trials", "timeout_s", "storage"):
            root.get("study", {}).pop(key, None)
        return yaml.safe_dump(root, sort_keys=True)

    # --- bookkeeping ----------------------------------------------------------------------------------
    def requeue(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial, reason: str,
                counts_attempt: bool) -> None:
        """Mark a lost trial FAIL and queue its parameters again (or leave it a final FAIL)."""
        attempts = frozen.user_attrs.get(TrialAttr.ATTEMPT, 0) + (1 if counts_attempt else 0)
        calls = TrialCalls(study)
        again = attempts <= self.root.cluster.max_requeues
        calls.set_attr(frozen, TrialAttr.FAIL_REASON, reason)
        if again:   # before FAIL: Optuna refuses attributes on a finished trial (UpdateFinishedTrialError)
            calls.set_attr(frozen, TrialAttr.REQUEUED, True)
            # queued again before it is marked FAIL: a driver dying in between leaves a RUNNING trial,
            # which the next driver recovers, never a lost configuration
            already = any(t.state == TrialState.WAITING and t.user_attrs.get(TrialAttr.REQUEUE_OF) == frozen.number
                          for t in study.get_trials(deepcopy=False))
            if not already:
                study.enqueue_trial(self.rerun_params(frozen), user_attrs={TrialAttr.ATTEMPT: attempts,
                                                               TrialAttr.REQUEUE_OF: frozen.number},
                                    skip_if_exists=False)
        if frozen.state == TrialState.RUNNING:
            calls.fail(frozen)
        if not again:   # a final FAIL (or the state it had, if it was not running)
            final = TrialState.FAIL if frozen.state == TrialState.RUNNING else frozen.state
            self._count(frozen.number, final, frozen.values)
        self.hooks.on_lost(frozen, "requeued" if again else "failed", reason)

    def rerun_params(self, frozen: optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The parameters a lost trial is queued again with: its own. A trial lost while it was being sampled
        holds only some; on a grid, Optuna's GridSampler refuses a queued trial with any missing, so they are
        completed from the grid point the sampler gave it (the `search_space` and `grid_id` it records on the
        trial: keys sorted, the last varying fastest, as itertools.product); other samplers draw the rest."""
        params = dict(frozen.params)
        grid, index = frozen.system_attrs.get("search_space"), frozen.system_attrs.get("grid_id")
        if grid is None or index is None or self.space.sampled_all(params, lambda k: lookup(self.base_config, k)):
            return params
        point = {}
        for key in reversed(list(grid)):
            index, i = divmod(index, len(grid[key]))
            point[key] = grid[key][i]
        return {**point, **params}

    def recover_orphans(self, study: optuna.Study) -> int:
        orphans = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
        for t in orphans:
            self.requeue(study, t, "driver_lost", counts_attempt=False)
        return len(orphans)

    def record(self, study: optuna.Study, trial: optuna.Trial, result: dict) -> None:
        summary = result["summary"]
        path = write_trial_folder(trial_dir(self.name, trial.number), summary, result.get("history", []))
        attrs = self.hooks.on_result(trial, summary, result.get("tracking", {}))
        attrs.update(TrialRecord.from_summary(summary, str(path)).to_user_attrs())
        set_user_attrs(trial.storage, trial_id(trial), attrs)        # one transaction on a database
        if summary["status"] == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
            self._count(trial.number, TrialState.PRUNED)
        else:
            values = objective_values(summary, self.metrics, self.directions)
            study.tell(trial, values)
            self._count(trial.number, TrialState.COMPLETE, values)

    def _count(self, number: int, state: TrialState, values: Optional[list[float]] = None) -> None:
        """A trial this driver finished, into the running count (none before the loop starts)."""
        if self.tally is not None:
            self.tally.count(number, state, values)

    def fail(self, study: optuna.Study, trial: optuna.Trial, reason: str, error: str) -> None:
        set_user_attrs(trial.storage, trial_id(trial), {TrialAttr.FAIL_REASON: reason, TrialAttr.ERROR: error[-2000:]})
        study.tell(trial, state=TrialState.FAIL)
        self._count(trial.number, TrialState.FAIL)
        self.hooks.on_lost(TrialCalls(study).frozen(trial), "failed", f"{reason}: {error[-500:]}")

    # --- the loop -------------------------------------------------------------------------------------
    def run(self, hooks: Sequence[StudyHook] = (), release_ray: bool = False) -> Outcome:
        """Run the study to `study.n_trials` (or the budget), calling `hooks` (study/driver/hooks.py) in their
        order at each point; an `on_end`, with the study lock still held, may set `outcome.code` (the nightly
        comparison). A hook that must refuse the run (MLflow unreachable) does so when it is built, before this.
        `release_ray` (the CLI, whose process ends after one study): Ray is shut down once the trials are over,
        while the `on_end` hooks write the study's end (the report), not after them at the process's exit."""
        if not self.validated:
            self.validate()
        # unreachable storage, MLflow or Ray: an error; later storage outages are waited out
        storage = open_storage(self.storage_url, self.root.study.storage_retry_s)
        # The lock first: a second driver of the study stops at once, without starting Ray.
        with study_lock(self.name, self.storage_url):
            placement.connect(self.root.cluster)      # before anything is written
            plan = placement.plan(self.root.cluster)
            study = self.open_study(storage)
            self.hooks = HookList(hooks)
            self.hooks.on_start(study)
            address = gcs_address()
            self.watch = None if address is None else ClusterWatch(address, (
                f"Nothing is lost: the trials that were running stay RUNNING in the study storage, and "
                f"`gradstudy resume {self.name}` queues them again once a cluster answers (with "
                f"cluster.address=… after it, if the cluster moved)"), shown_as=self.root.cluster.address)
            try:
                with self.watch or contextlib.nullcontext():
                    self.recover_orphans(study)
                    self.tally = Tally(study.directions[0], study.get_trials(deepcopy=False))
                    outcome = self._loop(study, plan)
            except StorageUnavailable as exc:
                raise StorageUnavailable(f"{exc}. Nothing is lost: `gradstudy resume {self.name}` continues "
                                         "the study once the storage answers") from exc
            closing = placement.shutdown_in_background() if release_ray else None
            try:
                outcome.code = self.hooks.on_end(outcome)
            finally:
                if closing is not None:
                    closing.join()
            return outcome

    def _progress(self, progress: Progress, running: int) -> int:
        """Update the display from the tally; returns how many trials count as finished."""
        tally = self.tally
        progress.done, progress.running = tally.done, running
        progress.pruned, progress.failed, progress.best = tally.pruned, tally.failed, tally.best_value
        self.hooks.on_progress(progress)
        return tally.done

    def _loop(self, study: optuna.Study, plan: placement.Placement) -> Outcome:
        total, budget = self.root.study.n_trials, self.root.study.timeout_s
        deadline = time.monotonic() + budget if budget > 0 else math.inf
        in_flight: dict[ray.ObjectRef, optuna.Trial] = {}
        progress = Progress(total=total)
        try:
            while True:
                if self.watch:
                    self.watch.check()
                done = self._progress(progress, len(in_flight))
                if time.monotonic() >= deadline:
                    self._stop_in_flight(study, in_flight, "budget")
                    self._progress(progress, 0)
                    return Outcome(study, timed_out=True)
                plan.refresh()
                while len(in_flight) < plan.max_concurrent and done + len(in_flight) < total:
                    if not self._launch(study, plan, in_flight):
                        done += 1                  # failed before it was placed: a final FAIL
                if not in_flight and done >= total:
                    break
                wait = max(0.05, min(1.0, deadline - time.monotonic()))
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait)
                for ref in ready:
                    self._collect(study, ref, in_flight.pop(ref))
                    progress.done_here += 1
        except ClusterLost:
            # Ray cannot be asked anything now: what ran stays RUNNING, and the next driver of the study
            # (`gradstudy resume`) recovers those trials as orphans and queues them again
            in_flight.clear()
            raise
        except StorageUnavailable:
            # nothing can be written now: cancel what runs; its trials stay RUNNING in the storage, and the
            # next driver of the study (`gradstudy resume`) recovers them as orphans and queues them again
            self._cancel(in_flight)
            raise
        except BaseException:
            self._stop_in_flight(study, in_flight, "interrupted")
            raise
        self._progress(progress, 0)
        return Outcome(study)

    def _launch(self, study: optuna.Study, plan: placement.Placement, in_flight: dict) -> bool:
        """Ask for a trial and place it; False when it failed first (bad sampled config, submit)."""
        trial = study.ask()
        try:
            values = self.space.sample(trial, lambda key: lookup(self.base_config, key))
            cfg = self.trial_config(values)
        except ConfigError as exc:
            self.fail(study, trial, "config", str(exc))
            return False
        s = self.root.study
        prune = s.pruner.value not in ("none", "health") and len(self.metrics) == 1
        health = s.pruner.value in ("health", "median_health")
        job = TrialJob(self.storage_url, self.name, trial_id(trial), trial.number, cfg, self.metrics[0], prune,
                       pruner=study.pruner, threads=max(1, int(plan.cpu)),
                       storage_retry_s=s.storage_retry_s,
                       health_patience=s.health_patience if health else 0, health_warmup_steps=s.pruner_warmup_steps,
                       **self.hooks.on_launch(trial, to_dict(cfg)))
        try:
            in_flight[plan.submit(job)] = trial
            return True
        except Exception as exc:   # not placed at all: a final FAIL, never a trial left RUNNING
            self.fail(study, trial, "submit", f"{type(exc).__name__}: {exc}")
            return False

    def _collect(self, study: optuna.Study, ref: ray.ObjectRef, trial: optuna.Trial) -> None:
        try:
            result = ray.get(ref)
        except placement.LOST as exc:
            self.requeue(study, TrialCalls(study).frozen(trial), f"worker_lost: {type(exc).__name__}",
                         counts_attempt=True)
            return
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, placement.LOST):
                self.requeue(study, TrialCalls(study).frozen(trial), "worker_lost", counts_attempt=True)
            else:
                self.fail(study, trial, "error", str(exc.cause if exc.cause is not None else exc))
            return
        except ray.exceptions.RayError as exc:   # killed for memory, unschedulable, raylet gone…
            self.requeue(study, TrialCalls(study).frozen(trial), f"worker_lost: {type(exc).__name__}",
                         counts_attempt=True)
            return
        self.record(study, trial, result)

    def _stop_in_flight(self, study: optuna.Study, in_flight: dict, reason: str) -> None:
        """Budget spent or driver interrupted: keep what has already finished, cancel what runs and
        queue it again for the next run."""
        if in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
            for ref in ready:
                self._collect(study, ref, in_flight.pop(ref))
        for trial in self._cancel(in_flight):
            frozen = TrialCalls(study).frozen(trial)
            if frozen.state == TrialState.RUNNING:
                self.requeue(study, frozen, reason, counts_attempt=False)

    @staticmethod
    def _cancel(in_flight: dict) -> list[optuna.Trial]:
        """Cancel every trial in flight (their Ray tasks); returns their trials."""
        for ref in in_flight:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        trials = list(in_flight.values())
        in_flight.clear()
        return trials


def started_with(study: optuna.Study) -> list[str]:
    """The overrides a study was started with, to run it again as it was."""
    return list(study.user_attrs.get(StudyAttr.OVERRIDES, []))


__all__ = ["StudyRunner", "Progress", "Outcome", "started_with"]
