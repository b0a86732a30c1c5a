"""A real multi-node Ray cluster on this machine for the tests: a head and worker nodes, each one
`ray start … --block` process in its own session, with Ray's token authentication on.

    cluster = RayCluster()
    cluster.start_head()                  # --num-cpus=0: trials run on worker nodes only
    w1 = cluster.add_worker("w1")         # --num-cpus=1; returns when the GCS sees it alive
    env = cluster.env()                   # RAY_AUTH_MODE=token, RAY_AUTH_TOKEN=… for a driver
    … `gradstudy run cluster.address=<cluster.address> …` with that env …
    cluster.node_by_id(node_id)           # the node a trial ran on (the Ray node id its worker recorded)
    cluster.kill(w1)                      # SIGKILL its raylet only: "a node lost"
    cluster.kill_gcs()                    # SIGKILL the head's GCS: "the cluster lost"
    cluster.stop()                        # SIGKILL every process (group) it started

Kept apart from anything else on the machine:
- every port Ray opens on a node is a free one picked here (GCS, Ray client server, node manager, object
  manager, dashboard agent, runtime env agent, metrics export; workers bind random ports), so it never
  collides with another Ray here, e.g. the tests' own `ray.init()` in the pytest process; no dashboard,
  no log monitor (nothing here reads them; they cost CPU on a small machine);
- every node has its own folder with its HOME, TMPDIR, GRADSTUDY_HOME and Ray `--temp-dir`: the latter
  also keeps `ray_current_cluster` out of /tmp/ray, where a plain `ray.init()` elsewhere on the machine
  would take it for "the existing cluster" and join this one. The folder is short (under /tmp, not
  pytest's tmp_path) because Ray's Unix sockets live in it (a socket path is at most 107 bytes);
- a token generated here (`secrets.token_hex(32)`, as `ray get-auth-token --generate` does) is in the
  environment of every node (and must be in every driver's: `env()`); HOME is the node's own, so no
  `~/.ray/auth_token` of the machine is read or written.

Nothing here stops a process it did not start: `stop()` kills the process groups of its `ray start`
processes and, by pid (checked against the start time it saw), the processes seen under them (Ray puts
its workers in process groups of their own).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from testkit.mlflow_server import free_port
from testkit.processes import cmdline

RAY = str(Path(sys.executable).parent / "ray")
HOST = "127.0.0.1"

# Run in a subprocess (the pytest process may hold a Ray of its own, with another token): the nodes the
# GCS holds, as JSON lines [{"id", "alive", "head", "temp_dir"}], once `want` of them are alive (or at
# the deadline).
_NODES_SCRIPT = r"""
import json, sys, time
from ray._raylet import GcsClient
address, want, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
client, nodes, error = None, [], ""
while True:
    try:
        if client is None:
            client = GcsClient(address=address)
        infos = client.get_all_node_info(timeout=5).values()
        nodes = [{"id": i.node_id.hex(), "alive": i.state == 0, "head": bool(i.is_head_node),
                  "temp_dir": i.temp_dir} for i in infos]
        error = ""
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    if sum(n["alive"] for n in nodes) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.25)
print(json.dumps({"nodes": nodes, "error": error}))
"""


def _stat(pid: int) -> Optional[tuple[int, int, str]]:
    """(ppid, start time in clock ticks, state) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[1]), int(rest[19]), rest[0]
    except (OSError, IndexError, ValueError):
        return None


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, start time) of every live process."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[2] != "Z":
                table[int(entry)] = (st[0], st[1])
    return table


def _descendants(root: int, table: dict[int, tuple[int, int]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass
class Node:
    """One `ray start --block` process (the leader of its own process group) and its folder."""
    name: str
    head: bool
    root: Path                  # its folder: home/, tmp/, gradstudy/, ray/ (the --temp-dir), ray-start.log
    proc: subprocess.Popen
    ports: dict[str, int]
    raylet_pid: Optional[int] = None
    node_id: Optional[str] = None
    killed: bool = False        # its raylet was SIGKILLed (kill())
    seen: dict[int, int] = field(default_factory=dict)   # pid -> start time of every process seen under it

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pgid(self) -> int:
        return self.proc.pid    # start_new_session: the leader of its group

    @property
    def temp_dir(self) -> Path:
        return self.root / "ray"

    @property
    def log(self) -> Path:
        return self.root / "ray-start.log"

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __repr__(self) -> str:
        return f"Node({self.name}, pid={self.pid}, raylet={self.raylet_pid})"


class RayClusterError(RuntimeError):
    pass


class RayCluster:
    def __init__(self, root: Optional[Path] = None, object_store_mb: int = 100):
        # short: Ray's sockets live under each node's --temp-dir (see the module's docstring)
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="gsray-", dir="/tmp"))
        self.token = secrets.token_hex(32)
        self.object_store_bytes = object_store_mb * 1024 * 1024
        self.nodes: list[Node] = []
        self.gcs_port: Optional[int] = None
        self._lock = threading.Lock()
        self._stop_watch = threading.Event()
        self._watcher: Optional[threading.Thread] = None
        self.failed: list[Node] = []          # nodes whose `ray start` failed (tried again once)

    # --- what a driver needs ------------------------------------------------------------------------
    @property
    def address(self) -> str:
        assert self.gcs_port is not None, "start_head() first"
        return f"{HOST}:{self.gcs_port}"

    def env(self) -> dict[str, str]:
        """Token authentication as Ray ships it: for every node and every driver of this cluster."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    @property
    def head(self) -> Node:
        return next(n for n in self.nodes if n.head)

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if not n.head]

    def alive_workers(self) -> list[Node]:
        return [n for n in self.workers if not n.killed and n.proc.poll() is None]

    # --- starting nodes -----------------------------------------------------------------------------
    def _node_env(self, folder: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAY_", "GRADSTUDY_", "MLFLOW_", "PYTEST_"))}
        for sub in ("home", "tmp", "gradstudy"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        env.update(self.env())
        env.update(HOME=str(folder / "home"), TMPDIR=str(folder / "tmp"), GRADSTUDY_HOME=str(folder / "gradstudy"),
                   RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
        return env

    def _start(self, name: str, head: bool, num_cpus: int, timeout: float, folder_name: str = "") -> Node:
        if any(n.name == name for n in self.nodes):
            raise ValueError(f"a node named {name!r} exists already")
        folder = self.root / (folder_name or name)
        folder.mkdir(parents=True)
        ports = {key: free_port() for key in ("node_manager", "object_manager", "agent_http", "agent_grpc",
                                              "runtime_env_agent", "metrics_export")}
        args = [RAY, "start", "--block", f"--num-cpus={num_cpus}", "--num-gpus=0",
                f"--node-ip-address={HOST}", f"--temp-dir={folder / 'ray'}",
                f"--object-store-memory={self.object_store_bytes}",
                f"--node-manager-port={ports['node_manager']}", f"--object-manager-port={ports['object_manager']}",
                f"--dashboard-agent-listen-port={ports['agent_http']}",
                f"--dashboard-agent-grpc-port={ports['agent_grpc']}",
                f"--runtime-env-agent-port={ports['runtime_env_agent']}",
                f"--metrics-export-port={ports['metrics_export']}",
                "--min-worker-port=0", "--max-worker-port=0",       # workers: random free ports
                "--include-log-monitor=false", "--disable-usage-stats", "--log-style=record"]
        if head:
            ports["gcs"], ports["client_server"] = free_port(), free_port()
            args += ["--head", f"--port={ports['gcs']}", f"--ray-client-server-port={ports['client_server']}",
                     "--include-dashboard=false"]
        else:
            args += [f"--address={self.address}"]
        with open(folder / "ray-start.log", "wb") as log:
            proc = subprocess.Popen(args, cwd=folder, env=self._node_env(folder), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        node = Node(name, head, folder, proc, ports)
        with self._lock:
            self.nodes.append(node)
        if head:
            self.gcs_port = ports["gcs"]
            if self._watcher is None:
                self._watch()
        try:
            self._wait_registered(node, timeout)
        except BaseException:
            self._kill_node(node)
            raise
        return node

    def start_head(self, timeout: float = 120) -> Node:
        assert not self.nodes, "the head is the first node"
        return self._start_retrying("head", True, 0, timeout)

    def add_worker(self, name: str, num_cpus: int = 1, timeout: float = 120) -> Node:
        """Start a worker node; returns once the GCS holds it alive and its raylet pid is known."""
        return self._start_retrying(name, False, num_cpus, timeout)

    def _start_retrying(self, name: str, head: bool, num_cpus: int, timeout: float) -> Node:
        """A `ray start` that exits at once is tried once more with other free ports (one picked here may
        have been taken by another process before Ray bound it)."""
        try:
            return self._start(name, head, num_cpus, timeout)
        except RayClusterError as first:
            with self._lock:
                failed = next(n for n in self.nodes if n.name == name)
                self.nodes.remove(failed)
            failed.name = f"{name}-failed"
            self.failed.append(failed)
            try:
                return self._start(name, head, num_cpus, timeout, folder_name=f"{name}-again")
            except RayClusterError as second:
                raise RayClusterError(f"{second}\n(first try: {first})") from None

    def _wait_registered(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if node.proc.poll() is not None:
                raise RayClusterError(f"`ray start` of {node.name} exited (rc={node.proc.returncode}):\n"
                                      f"{node.log_tail()}")
            if node.raylet_pid is None:
                node.raylet_pid = self._find_raylet(node)
            if node.raylet_pid is not None:
                found = [n for n in self.gcs_nodes(timeout=max(1.0, deadline - time.monotonic()))
                         if n["alive"] and Path(n["temp_dir"]) == node.temp_dir]
                if found:
                    node.node_id = found[0]["id"]
                    return
            if time.monotonic() > deadline:
                raise RayClusterError(f"{node.name} did not register with the GCS at {self.address} within "
                                      f"{timeout:.0f} s:\n{node.log_tail()}")
            time.sleep(0.25)

    @staticmethod
    def _is_raylet(node: Node, pid: int) -> bool:
        """`pid` is the node's raylet: a child of its `ray start` running the raylet binary. Only a child:
        a process the raylet forks (its agents, its workers) carries the raylet's command line until it
        execs, and a loaded machine can be caught in that moment."""
        st = _stat(pid)
        return st is not None and st[0] == node.pid and "/raylet/raylet " in cmdline(pid) + " "

    def _find_raylet(self, node: Node) -> Optional[int]:
        return next((pid for pid, (ppid, _) in _processes().items()
                     if ppid == node.pid and self._is_raylet(node, pid)), None)

    # --- what the GCS sees --------------------------------------------------------------------------
    def gcs_nodes(self, want_alive: int = 0, timeout: float = 30) -> list[dict]:
        """The nodes the GCS holds [{"id", "alive", "head", "temp_dir"}], asked by a small subprocess
        with this cluster's token; with `want_alive`, it waits (up to `timeout`) until that many are."""
        env = self._node_env(self.root / "client")
        try:
            done = subprocess.run([sys.executable, "-c", _NODES_SCRIPT, self.address, str(want_alive),
                                   str(timeout)], env=env, cwd=self.root, capture_output=True, text=True,
                                  timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            raise RayClusterError(f"asking the GCS at {self.address} for its nodes hung") from None
        if done.returncode != 0:
            raise RayClusterError(f"asking the GCS at {self.address} failed:\n{done.stderr[-2000:]}")
        reply = json.loads(done.stdout.strip().splitlines()[-1])
        return reply["nodes"]

    def wait_alive(self, n: int, timeout: float = 60) -> list[dict]:
        """Wait until the GCS holds exactly `n` alive nodes (the head included); returns them."""
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.gcs_nodes(want_alive=n, timeout=max(1.0, deadline - time.monotonic()))
            alive = [x for x in nodes if x["alive"]]
            if len(alive) == n:
                return alive
            if time.monotonic() > deadline:
                raise RayClusterError(f"the GCS holds {len(alive)} alive node(s), not {n}: {nodes}")
            time.sleep(0.5)

    # --- which processes ran under a node ----------------------------------------------------------
    def _watch(self) -> None:
        """Sample the process tree under every node, so that `stop()` can end a node's workers too (they
        are in process groups of their own, and outlive a killed raylet for a moment)."""

        def loop():
            while not self._stop_watch.wait(1.0):    # a Ray worker lives for seconds at least
                self.sample()

        self._watcher = threading.Thread(target=loop, name="ray-cluster-watch", daemon=True)
        self._watcher.start()

    def sample(self) -> None:
        table = _processes()
        with self._lock:
            for node in self.nodes:
                if node.proc.poll() is None:     # once reaped, its pid may be another process's
                    for pid in _descendants(node.pid, table):
                        node.seen[pid] = table[pid][1]     # the newest process of that pid

    def node_by_id(self, node_id: str) -> Optional[Node]:
        """The node the GCS knows by `node_id` (what a trial records of where it ran), or None."""
        return next((n for n in self.nodes if n.node_id == node_id), None)

    # --- stopping -----------------------------------------------------------------------------------
    def kill(self, node: Node) -> None:
        """SIGKILL the node's raylet only, as when its machine is lost (`ray start --block` then ends
        the node's other processes, and its workers exit when their raylet is gone). Raises, killing
        nothing, when the pid it holds is no longer that node's raylet (a child of its `ray start`)."""
        assert node.raylet_pid is not None
        self.sample()
        if not self._is_raylet(node, node.raylet_pid):
            raise RayClusterError(f"{node.name}: no raylet at pid {node.raylet_pid} (now: "
                                  f"{self._find_raylet(node)}):\n{node.log_tail()}")
        node.killed = True
        os.kill(node.raylet_pid, signal.SIGKILL)     # returns at once: a test checks what the kill cut short

    def kill_gcs(self) -> int:
        """SIGKILL the head's GCS server only, as when the head's machine is lost for a driver that is not
        on it (the raylets, the driver's among them, wait for the GCS, then give up). Returns its pid."""
        self.sample()
        head = self.head
        for pid in _descendants(head.pid, _processes()):
            if "/gcs/gcs_server " in cmdline(pid) + " ":
                head.killed = True
                os.kill(pid, signal.SIGKILL)
                return pid
        raise RayClusterError(f"no gcs_server process under the head:\n{head.log_tail()}")

    def _kill_node(self, node: Node) -> None:
        self.sample()
        try:
            os.killpg(node.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, started in list(node.seen.items()):      # Ray's workers have process groups of their own
            st = _stat(pid)
            if st is not None and st[1] == started and st[2] != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            node.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, remove: bool = True) -> None:
        """SIGKILL every node (workers first) and what ran under it; delete the cluster's folder."""
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        for node in sorted(self.nodes, key=lambda n: n.head):
            self._kill_node(node)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        """The tail of every node's `ray start` output (for a failure message)."""
        return "\n".join(f"--- {n.name} ---\n{n.log_tail(1500)}" for n in self.nodes)


__all__ = ["RayCluster", "Node", "RayClusterError"]
