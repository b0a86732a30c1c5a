"""Placing trials on Ray workers.

- `cluster.address` empty and no `RAY_ADDRESS`: an embedded local Ray (`ray.init()`), sized by
  `cluster.num_cpus` (0 = every CPU here). Otherwise join that cluster (`host:port`, `auto`, `ray://…`);
  an address that does not answer is a clear error within seconds, not a hang.
- Each trial is one Ray task asking for `cluster.trial_resources` ({cpu: 1, gpu: 0.25}: fractional GPUs
  share a card; Ray does not isolate their memory). If the cluster has no GPU the request falls back to
  CPU with a warning. Ray's own retries are off: a lost worker is handled by the study (re-queued in
  Optuna), so every attempt stays visible.
- `max_concurrent` 0 means as many trials at once as the cluster's resources hold, looked at again every
  few seconds: a node added mid-study receives trials, a node lost takes its share away.
"""
from __future__ import annotations

import logging
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field

import ray

from study.cluster.trial_task import TrialJob, execute
from study.config.schema import ClusterConfig
from study.storage.library_log import capture_python
from workers.config import ConfigError

log = logging.getLogger(__name__)

# Errors that mean the worker (not the trial's code) was lost.
LOST = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ActorDiedError,
        ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError, ray.exceptions.TaskCancelledError)


@dataclass
class Placement:
    cpu: float
    gpu: float
    max_concurrent: int
    follows_cluster: bool = False      # cluster.max_concurrent=0: the limit follows the cluster's size
    every_s: float = 5.0
    checked: float = field(default_factory=time.monotonic)

    def refresh(self) -> None:
        """The limit again from the cluster's resources now (at most every `every_s`), when it follows them."""
        if not self.follows_cluster or time.monotonic() - self.checked < self.every_s:
            return
        self.checked = time.monotonic()
        try:
            self.max_concurrent = _fit(ray.cluster_resources(), self.cpu, self.gpu)
        except Exception:   # the cluster does not answer now: keep the limit (study/cluster/watch.py tells)
            pass

    def submit(self, job: TrialJob) -> ray.ObjectRef:
        return _remote.options(num_cpus=self.cpu, num_gpus=self.gpu).remote(job)


@ray.remote(max_retries=0)
def _remote(job: TrialJob) -> dict:
    # the Ray node the trial runs on, for its record (which machine ran it, when a node is lost)
    return execute(job, node=ray.get_runtime_context().get_node_id())


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a host:port (or ray://host:port) that does not accept connections."""
    target = address.split("://", 1)[-1]
    if target == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ConfigError("cluster.address", address,
                          f"the address of a running Ray cluster (GCS host:port or ray://host:10001); "
                          f"{exc.__class__.__name__}: {exc}") from None


def connect(cfg: ClusterConfig) -> str:
    """Start or join Ray; returns "local" or the address joined."""
    if ray.is_initialized():
        return "local"
    address = cfg.address or os.environ.get("RAY_ADDRESS", "")
    capture_python()    # Ray's banners (token authentication…) to the log file, not the terminal
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if not address:
        try:
            ray.init(num_cpus=cfg.num_cpus or None, include_dashboard=False, **quiet)
        except Exception as exc:   # e.g. "The current node timed out during startup"
            raise ConfigError("cluster.address", "", "a local Ray that starts",
                              f"cluster.address='' (a local Ray) did not start: {_first_line(exc)}; "
                              "see /tmp/ray/session_latest/logs, or join a running cluster with "
                              "cluster.address=host:6379") from None
        return "local"
    _check_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except Exception as exc:   # ConnectionError, RuntimeError, TimeoutError, an auth refusal…
        raise ConfigError("cluster.address", address,
                          f"the address of a running Ray cluster ({_first_line(exc)})") from None
    return address


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def plan(cfg: ClusterConfig) -> Placement:
    """Resources per trial and the concurrency limit on the connected cluster."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    want = cfg.trial_resources
    gpu = want.gpu
    if gpu > 0 and gpus == 0:
        warnings.warn(f"cluster.trial_resources.gpu={gpu} but the Ray cluster has no GPU: trials run on CPU")
        gpu = 0.0
    cpu = min(want.cpu, cpus)
    limit = cfg.max_concurrent or _fit(resources, cpu, gpu)
    return Placement(cpu=cpu, gpu=gpu, max_concurrent=limit, follows_cluster=not cfg.max_concurrent)


def _fit(resources: dict, cpu: float, gpu: float) -> int:
    """How many trials of `cpu` CPUs and `gpu` GPUs the cluster's resources hold at once (at least 1)."""
    fit = math.floor(resources.get("CPU", 0.0) / cpu + 1e-9)     # cpu > 0: validate_root
    if gpu > 0:
        fit = min(fit, math.floor(resources.get("GPU", 0.0) / gpu + 1e-9))
    return max(1, fit)


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()
