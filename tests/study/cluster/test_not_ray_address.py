"""A cluster.address that answers TCP but is not Ray (issue #28 point 1): Redis on 6379, any other listener.

`ray.init(address=…)` against such a port retries "Failed to get cluster ID from GCS server" for ever. The
driver asks the address first, over gRPC, what `ray.init` asks (study.cluster.placement.ask_ray) and refuses
a port that does not answer as Ray with one line, exit 2, within seconds, before anything is written.

- `gradstudy run … cluster.address=127.0.0.1:<port>` against two real listeners started here on loopback:
  one that accepts and says nothing, one that answers garbage as Redis does (an error line to whatever it
  is sent). The storage is the machine's PostgreSQL: a local journal is refused with a cluster address
  before Ray is asked (test_cluster.py), so the address's check is reached only with a database.
- `ask_ray` against a real Ray head (`ray start`, tests/testkit/ray_cluster.py), with Ray's token
  authentication on and off: its GCS and its Ray client server (ray://) are Ray; its Ray client port given
  as a GCS address is a gRPC server that is not a GCS.
"""
from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid

import optuna
import pytest

from study.cluster.placement import ask_ray
from study.storage.backend import open_storage
from testkit import tiny
from testkit.processes import REPO, cli_env, gradstudy_command, kill_process_group
from testkit.ray_cluster import RayCluster

REDIS_ERROR = b"-ERR unknown command 'PRI', with args beginning with: '*' 'HTTP/2.0' \r\n"


class Listener:
    """A TCP server on a free loopback port, in this process's threads: it accepts every connection, keeps it
    open and reads what it is sent (`received`); with a `reply`, it answers each chunk with it, as Redis
    answers a command it does not know. `close()` shuts the server and its connections."""

    def __init__(self, reply: bytes | None):
        self.reply = reply
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.received = b""
        self.conns: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name=f"listener-{self.port}").start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while chunk := conn.recv(4096):
                self.received += chunk
                if self.reply is not None:
                    conn.sendall(self.reply)
        except OSError:
            pass

    def close(self) -> None:
        self.closed.set()
        for s in [self.server, *self.conns]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture(params=["silent", "garbage"])
def listener(request):
    server = Listener(None if request.param == "silent" else REDIS_ERROR)
    yield server
    server.close()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_listener_that_is_not_ray_is_refused_in_one_line(listener, home, tmp_path, postgres_url):
    name = f"gradstudy-notray-{uuid.uuid4().hex[:10]}"
    address = f"127.0.0.1:{listener.port}"
    args = ["run", *tiny.TINY, f"study.name={name}", f"cluster.address={address}",
            f"study.storage={postgres_url}", "tracking.enabled=false"]
    started = time.monotonic()
    proc = subprocess.Popen(gradstudy_command() + args, cwd=REPO, env=cli_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)      # the old behaviour: ray.init retrying for ever
    except subprocess.TimeoutExpired:
        kill_process_group(proc)
        pytest.fail(f"`gradstudy run … cluster.address={address}` still ran after 60 s")
    took = time.monotonic() - started

    assert proc.returncode == 2, (proc.returncode, out[-2000:], err[-2000:])
    assert took < 30, took
    # the address was asked over gRPC (an HTTP/2 connection preface), not refused for another reason
    assert b"PRI * HTTP/2.0" in listener.received, listener.received[:200]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err                    # Ray's C++ warnings are not on the terminal
    line = lines[0]
    assert line.startswith(f"gradstudy: config error: cluster.address='{address}' is not a Ray cluster "
                           "(no GCS answered"), line
    assert "check the head's address" in line, line
    # the line names the log file, which holds what the address answered
    log = home.resolve() / "logs" / "gradstudy.log"
    assert line.endswith(f": {log}"), line
    assert f"cluster.address='{address}': no GCS answered" in log.read_text(), log.read_text()[-2000:]
    # nothing written: no study folder, lock or journal in the data directory, no study in the storage
    assert {p.name for p in home.iterdir()} <= {"logs"}, sorted(str(p) for p in home.rglob("*"))
    assert name not in optuna.get_all_study_names(open_storage(postgres_url))


class OpenRayCluster(RayCluster):
    """A RayCluster whose nodes run without token authentication."""

    def env(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": "disabled"}


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("auth", ["token", "disabled"])
def test_a_real_ray_head_is_ray(auth):
    cluster = RayCluster() if auth == "token" else OpenRayCluster()
    try:
        cluster.start_head()
        client_port = cluster.head.ports["client_server"]
        gcs = ask_ray(cluster.address, timeout=10)
        # token auth: the GCS refuses the anonymous question (UNAUTHENTICATED); without it, it replies
        assert gcs.ray, gcs
        assert gcs.what == ("a Ray that asks for its token" if auth == "token" else "a reply"), gcs
        client = ask_ray(f"ray://127.0.0.1:{client_port}", timeout=10)
        assert client.ray, client
        # the Ray client port taken for a GCS: a gRPC server, Ray's even, but no GCS
        wrong = ask_ray(f"127.0.0.1:{client_port}", timeout=10)
        assert not wrong.ray and "UNIMPLEMENTED" in wrong.raw, wrong
    finally:
        cluster.stop()

