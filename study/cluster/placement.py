"""Placing trials on Ray workers.

- `cluster.address` empty and no `RAY_ADDRESS`: an embedded local Ray (`ray.init()`), sized by
  `cluster.num_cpus` (0 = every CPU here). Otherwise join that cluster (`host:port`, `auto`, `ray://…`);
  an address that does not answer, or answers without being Ray (Redis on 6379, any other listener), is
  one line within seconds, not a hang: before `ray.init` the address is asked, over gRPC, the question
  `ray.init` asks first (the GCS's GetClusterId; the Ray client server's PING for `ray://`).
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
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import grpc
import ray
from ray._private.ray_constants import GLOBAL_GRPC_OPTIONS
from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc, ray_client_pb2, ray_client_pb2_grpc

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


def _host_port(address: str) -> Optional[tuple[str, int]]:
    """(host, port) of a `host:port` or `ray://host:port` address; None for `auto` or a form without a port."""
    target = address.split("://", 1)[-1]
    if target == "auto" or ":" not in target:
        return None
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        raise ConfigError("cluster.address", address, "host:port, ray://host:port or auto (the port a number)")
    return host.strip("[]"), int(port)       # [::1]:6379 → ::1


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a host:port (or ray://host:port) that does not accept connections."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError("cluster.address", address, "", (
            f"cluster.address={address!r} does not answer (TCP connect: {exc.__class__.__name__}: {exc}); "
            f"check the head's address and port and that this machine can reach it")) from None


ASK_S = 5.0     # how long the address has to answer as Ray does


@dataclass(frozen=True)
class Answer:
    """What an address said when asked as Ray (`ask_ray`)."""
    ray: bool
    what: str           # in a few words, for the user's line
    raw: str = ""       # the gRPC status and details as received, for the log


def ask_ray(address: str, timeout: float = ASK_S) -> Answer:
    """Ask `address` what `ray.init` asks first: a `host:port` as a GCS (NodeInfoGcsService.GetClusterId), a
    `ray://host:port` as a Ray client server (its PING). Ray is a reply or UNAUTHENTICATED (Ray's token
    authentication refusing a call without a token: Ray answers an unknown method UNIMPLEMENTED, and a server
    that does not speak gRPC never gets that far); anything else within `timeout` is not Ray. No token is
    sent: the address is not known to be Ray yet."""
    target = address.split("://", 1)[-1]
    # Ray's own channel options: no HTTP proxy (a proxy's answer is not the address's)
    channel = grpc.insecure_channel(target, options=list(GLOBAL_GRPC_OPTIONS))
    try:
        if address.startswith("ray://"):
            ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
                ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING), timeout=timeout)
        else:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=timeout)
        return Answer(True, "a reply")
    except grpc.RpcError as exc:
        code, details = exc.code(), " ".join(str(exc.details() or "").split())
        raw = f"{code.name}: {details}"
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return Answer(True, "a Ray that asks for its token", raw)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Answer(False, f"the port accepted the connection, then said nothing for {timeout:g} s", raw)
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return Answer(False, f"another gRPC or HTTP/2 server is there, answering {raw[:160]}", raw)
        if "Failed parsing HTTP/2" in details or "Socket closed" in details:
            return Answer(False, "the port speaks another protocol than gRPC", raw)
        return Answer(False, raw[:200], raw)
    finally:
        channel.close()


def _check_is_ray(address: str) -> None:
    """A ConfigError, within ASK_S, when `address` (host:port or ray://host:port) is not a Ray cluster; what
    it answered goes to the log file, which the line names."""
    if _host_port(address) is None:
        return
    answer = ask_ray(address)
    if answer.ray:
        return
    client = address.startswith("ray://")
    server, port = ("Ray client server", "its Ray client port (10001 by default)") if client else \
        ("GCS", "the GCS port that `ray start --head` printed (6379 by default)")
    logged = _to_log(f"cluster.address={address!r}: no {server} answered (asked {'PING' if client else 'GetClusterId'}"
                     f" over gRPC for {ASK_S:g} s): {answer.raw}")
    raise ConfigError("cluster.address", address, "", (
        f"cluster.address={address!r} is not a Ray cluster (no {server} answered: {answer.what}); "
        f"check the head's address and {port}; `ray status --address host:port` on the head checks it"
        + (f"; its full answer and Ray's log: {logged}" if logged else "")))


def _to_log(line: str) -> Optional[Path]:
    """`line`, timestamped, appended to the log file (study/storage/library_log.py); its path, or None when the
    data directory cannot be written."""
    path = capture_python()
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {__name__} {line}\n")
    except OSError:
        return None
    return path


def cluster_address(cfg: ClusterConfig) -> str:
    """The Ray cluster trials run on: `cluster.address`, else RAY_ADDRESS; "" = a local Ray started here."""
    return cfg.address or os.environ.get("RAY_ADDRESS", "")


def connect(cfg: ClusterConfig) -> str:
    """Start or join Ray; returns "local" or the address joined."""
    if ray.is_initialized():
        return "local"
    address = cluster_address(cfg)
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
    _check_is_ray(address)     # a listener that is not Ray would keep ray.init retrying for ever
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


def shutdown_in_background() -> Optional[threading.Thread]:
    """`shutdown()` in a thread of its own (join it): a local Ray takes ~1.5 s to stop its processes and a
    remote one ~2 s to let the driver go, time the study's end (its report, 2–5 s) can run beside."""
    if not ray.is_initialized():
        return None
    thread = threading.Thread(target=shutdown, name="gradstudy-ray-shutdown")
    thread.start()
    return thread
