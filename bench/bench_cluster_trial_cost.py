"""The per-trial cost of a study on the platform engineer's setup, all of it started here and stopped by pid:
a `ray start` head (no CPUs) with two 1-CPU worker nodes and token auth (tests/testkit/ray_cluster.py), a
throwaway PostgreSQL (tests/testkit/postgres.py) holding the Optuna storage and the MLflow backend, and an
`mlflow server` on that backend with proxied artifacts (`--serve-artifacts`). The driver is the real
`gradstudy run` (a subprocess: everything a user waits for), trials of negligible compute (`experiment=wrec_phase
train.steps=2 task.seq_len=10 model.hidden_size=8`, random sampler, no pruner).

    .venv/bin/python bench/bench_cluster_trial_cost.py [--trials 300] [--small 100] [--server-workers 2]
    .venv/bin/python bench/bench_cluster_trial_cost.py --trials 12 --small 0       (a smoke run, ~1 min)
    .venv/bin/python bench/bench_cluster_trial_cost.py --override tracking.keep_alive=true   (MLflow's own
        kept-alive connections, stalled ~40 ms a request by a multi-worker server: tracking/runs/fresh_connections.py)

It runs a study of `--small` trials (default N/3; 0 = none) and one of N, each a fresh `gradstudy run`, and
prints for each: wall ÷ trials, and the marginal cost (t(N) − t(small)) / (N − small), in which the fixed
costs of a run (Python and Ray start-up, the workers' first imports, pre-flight, the study report) cancel
out. The HTTP requests are counted from the server's own access log (uvicorn's, one line a request, read
between the runs; nothing in the client is patched), by kind: the endpoint, with ids and paths cut off
(artifact uploads are `PUT mlflow-artifacts/artifacts`), per trial, and the marginal per trial. Then nothing
lost is checked: every trial COMPLETE in Optuna, every trial's child run FINISHED with its final metric
(`final/test_loss`) and the state tag `completed` — the bench fails otherwise. The CPU time of each part of the
set-up during each run (the driver, the mlflow server, PostgreSQL, Ray with the trials' workers)
comes from /proc (`CpuByRole`): how busy the two cores were, and who kept them busy.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))          # testkit: the throwaway services the tests use

from testkit.mlflow_server import free_port, http_ok  # noqa: E402
from testkit.postgres import ThrowawayPostgres  # noqa: E402
from testkit.processes import kill_process_group  # noqa: E402
from testkit.ray_cluster import RayCluster  # noqa: E402

STUDY = ["experiment=wrec_phase", "train.steps=2", "task.seq_len=10", "model.hidden_size=8",
         "study.sampler=random", "study.pruner=none", "cluster.num_cpus=0"]
ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
ID = re.compile(r"^[0-9a-f]{32}$|^\d+$")


def kind(method: str, path: str) -> str:
    """`POST runs/log-batch`, `PUT mlflow-artifacts/artifacts`, `GET runs/get`…: the endpoint without its
    query, ids or artifact path."""
    path = path.split("?", 1)[0]
    for prefix in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/", "/api/3.0/mlflow/", "/api/2.0/", "/"):
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    if path.startswith("mlflow-artifacts/artifacts"):
        return f"{method} mlflow-artifacts/artifacts"
    parts = [p for p in path.split("/") if p and not ID.match(p)]
    return f"{method} {'/'.join(parts[:3])}"


class AccessLog:
    """The server's access log, read from an offset: the requests since the last `take()`."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0

    def take(self) -> tuple[collections.Counter, int]:
        time.sleep(1.0)                       # the server's last lines out
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read()
            self.offset = f.tell()
        counts, errors = collections.Counter(), 0
        for line in text.decode(errors="replace").splitlines():
            found = ACCESS.search(line)
            if found:
                counts[kind(found["method"], found["path"])] += 1
                errors += not found["status"].startswith("2")
        return counts, errors


class CpuByRole:
    """CPU seconds (user + system, reaped children included) of every process on the machine, grouped by the
    part of the set-up it is: the mlflow server (its process tree), PostgreSQL (the throwaway postmaster's
    tree), Ray (GCS, raylets, agents, and the job's trial workers, which start and end with the driver and are
    counted through the raylet that reaps them), the rest. Read from
    /proc before and after a run; a process that started and exited between the two readings is counted
    only where its parent reaped it (PostgreSQL's backends, the server's workers); the driver's own comes
    from its wait4."""

    def __init__(self, roots: dict[str, int]):
        self.roots, self.tick = roots, os.sysconf("SC_CLK_TCK")

    def _read(self) -> dict[tuple[int, int], tuple[int, str, float]]:
        seen = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            ppid, start = int(fields[1]), int(fields[19])
            cpu = sum(int(v) for v in fields[11:15]) / self.tick
            seen[(int(entry), start)] = (ppid, cmd, cpu)
        return seen

    def _role(self, pid: int, parents: dict[int, int], cmd: str) -> str:
        node = pid
        while node > 1:
            for role, root in self.roots.items():
                if node == root:
                    return role
            node = parents.get(node, 0)
        # a job's trial workers (`ray::…`) start and end with its driver, between the two readings: their CPU
        # comes in through the raylet that reaps them, so they are counted with Ray's own processes
        if cmd.startswith("ray::") or "/ray/" in cmd or "raylet" in cmd or "gcs_server" in cmd:
            return "Ray (GCS, raylets, agents, the trials' workers)"
        return "other processes on the machine"

    def start(self) -> None:
        self.before = self._read()

    def take(self) -> collections.Counter:
        after = self._read()
        parents = {pid: ppid for (pid, _), (ppid, _, _) in after.items()}
        out = collections.Counter()
        for key, (ppid, cmd, cpu) in after.items():
            out[self._role(key[0], parents, cmd)] += cpu - self.before.get(key, (0, "", 0.0))[2]
        self.before = after
        return out


def create_databases(pg: ThrowawayPostgres, *names: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres", connect_timeout=10)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f"CREATE DATABASE {name}")
    conn.close()


def start_mlflow(root: Path, pg: ThrowawayPostgres, workers: int) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "mlflow-server.log"
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server",
             "--backend-store-uri", f"postgresql+psycopg2://postgres@127.0.0.1:{pg.port}/mlflow",
             "--serve-artifacts", "--artifacts-destination", str(root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    deadline = time.monotonic() + 180
    while not http_ok(f"{url}/health"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"mlflow server did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)
    return proc, url, log


def check_nothing_lost(name: str, n: int, storage: str, url: str) -> str:
    """Every trial COMPLETE, every child run FINISHED with `final/test_loss` and state `completed`."""
    import optuna
    from mlflow import MlflowClient

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url_pg = storage.replace("postgresql://", "postgresql+psycopg2://", 1)
    trials = optuna.load_study(study_name=name, storage=url_pg).get_trials(deepcopy=False)
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name(f"gradstudy/{name}")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`gradstudy.role` = 'trial'",
                              max_results=5000)
    finished = sum(r.info.status == "FINISHED" and "final/test_loss" in r.data.metrics
                   and r.data.tags.get("gradstudy.state") == "completed" for r in runs)
    text = (f"{complete}/{n} trials COMPLETE in Optuna; {finished}/{len(runs)} child runs FINISHED with "
            f"final/test_loss and state completed")
    if complete != n or finished != n or len(runs) != n:
        raise RuntimeError("records lost: " + text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=300, help="N, the trials of the measured run")
    ap.add_argument("--small", type=int, default=-1, help="trials of the run before it, for the marginal "
                                                           "cost (default N/3; 0 = no such run)")
    ap.add_argument("--server-workers", type=int, default=2, help="the mlflow server's uvicorn workers")
    ap.add_argument("--override", action="append", default=[], help="a further override of the study, e.g. "
                                                                     "tracking.keep_alive=true (repeatable)")
    ap.add_argument("--driver-prefix", default="", help="a command put before the driver's, e.g. a sampling "
                                                         "profiler: 'py-spy record -f raw -o driver.txt --'")
    args = ap.parse_args()
    small = args.trials // 3 if args.small < 0 else args.small
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))    # the finally below still stops everything

    root = Path(tempfile.mkdtemp(prefix="gradstudy-cluster-bench-"))
    pg = cluster = server = driver = None
    try:
        t0 = time.perf_counter()
        pg = ThrowawayPostgres().init().start()
        create_databases(pg, "optuna", "mlflow")
        storage = f"postgresql://postgres@127.0.0.1:{pg.port}/optuna"
        server, url, log_path = start_mlflow(root, pg, args.server_workers)
        cluster = RayCluster()
        cluster.start_head()
        cluster.add_worker("w1")
        cluster.add_worker("w2")
        print(f"services up in {time.perf_counter() - t0:.1f} s: PostgreSQL :{pg.port}, mlflow server {url} "
              f"({args.server_workers} workers, PostgreSQL backend, proxied artifacts), Ray head {cluster.address} "
              f"(0 CPUs) + 2 worker nodes of 1 CPU, token auth", flush=True)
        access = AccessLog(log_path)
        access.take()
        roles = CpuByRole({"mlflow server": server.pid, "PostgreSQL": pg.pid()})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
        env.update(cluster.env(), GRADSTUDY_HOME=str(root / "home"), PYTHONUNBUFFERED="1")
        results = {}
        for n in ([small] if small else []) + [args.trials]:
            name = f"cost{n}"
            cmd = [*args.driver_prefix.split(), str(Path(sys.executable).parent / "gradstudy"), "run", *STUDY,
                   f"study.name={name}",
                   f"study.n_trials={n}", f"study.storage={storage}", f"cluster.address={cluster.address}",
                   f"tracking.uri={url}", *args.override]
            roles.start()
            start = time.perf_counter()
            with open(root / f"driver-{n}.log", "wb") as out:
                driver = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
                _, status, usage = os.wait4(driver.pid, 0)
                rc = os.waitstatus_to_exitcode(status)
                driver.returncode = rc
            wall = time.perf_counter() - start
            cpu = roles.take()
            cpu["other processes on the machine"] -= usage.ru_utime + usage.ru_stime   # reaped by this script
            cpu["driver (gradstudy run)"] = usage.ru_utime + usage.ru_stime
            driver = None
            if rc != 0:
                raise RuntimeError(f"gradstudy run exited {rc}:\n"
                                   f"{(root / f'driver-{n}.log').read_text(errors='replace')[-3000:]}")
            counts, errors = access.take()
            checked = check_nothing_lost(name, n, storage, url)
            access.take()                      # the check's own requests are not the run's
            results[n] = (wall, counts, cpu)
            total = sum(counts.values())
            print(f"\n{n} trials: {wall:.1f} s → {wall / n:.3f} s per trial (the whole `gradstudy run`); "
                  f"{total} requests ({total / n:.2f} per trial, {errors} not 2xx)\n  {checked}", flush=True)
            for key, count in counts.most_common():
                print(f"    {count / n:7.2f} per trial  {count:6d}  {key}")
            print(f"  CPU: {sum(cpu.values()):.1f} s in all ({sum(cpu.values()) / wall:.2f} cores busy), by part:")
            for key, seconds in cpu.most_common():
                print(f"    {1000 * seconds / n:7.1f} ms per trial  {seconds:7.1f} s  {key}")
        if small:
            (t_small, c_small, u_small), (t_big, c_big, u_big) = results[small], results[args.trials]
            d = args.trials - small
            print(f"\nmarginal cost per trial: (t({args.trials}) − t({small})) / {d} = {(t_big - t_small) / d:.3f} s")
            print("marginal requests per trial, by kind:")
            total = 0.0
            for key in sorted(set(c_small) | set(c_big), key=lambda k: -(c_big[k] - c_small[k])):
                per = (c_big[key] - c_small[key]) / d
                total += per
                print(f"    {per:7.2f}  {key}")
            print(f"    {total:7.2f}  in all")
            print("marginal CPU per trial, by part:")
            for key in sorted(set(u_small) | set(u_big), key=lambda k: -(u_big[k] - u_small[k])):
                print(f"    {1000 * (u_big[key] - u_small[key]) / d:7.1f} ms  {key}")
            print(f"    {1000 * (sum(u_big.values()) - sum(u_small.values())) / d:7.1f} ms  in all")
        print(f"\nload: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min) on "
              f"{os.cpu_count()} CPUs")
    finally:
        if driver is not None:
            kill_process_group(driver)
        if cluster is not None:
            cluster.stop()
        if server is not None:
            kill_process_group(server)
        if pg is not None:
            pg.remove()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
