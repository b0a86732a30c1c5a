"""MLflow records of studies, for real: real local Ray, the real Optuna journal file (or PostgreSQL), the
real MLflow SQLite store under GRADSTUDY_HOME, and a real `mlflow server` process on 127.0.0.1 (see
conftest.MlflowServer). No mocks.

Covers: the layout of a study in the local store (experiment, parent run, child runs, names of docs/mlflow.md
artifacts, absolute paths, nothing in the working directory); the same against a tracking server;
concurrent workers that lose no metric; secrets that never reach a record; MLflow unreachable at the
start (exit 2 before anything runs) and lost in the middle of a study (the study finishes, `gradstudy
report` back-fills); `gradstudy ui` on the loopback interface only.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Optional

import mlflow
import optuna
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from optuna.trial import TrialState

from study import cli
from study.config.compose import compose_root
from study.driver.runner import StudyRunner
from study.recording.backfill import mlflow_record
from study.recording.hook import tracking_hooks
from study.storage.backend import open_storage
from testkit import tiny
from testkit.mlflow_server import free_port, http_ok
from testkit.processes import REPO, cli_env, gradstudy_command, wait_until
from tracking.figures.colours import HEALTH_COLOURS
from tracking.runs.names import flatten
from tracking.ui import view as ui_view
from tracking.ui.links import trials_query
from tracking.ui.run_look import run_name
from workers.key_use import applies

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# The tiny trial (an 8-unit vanilla RNN on the adding problem with T = 10, 20 steps probed every 5), tracked.
TINY = [*tiny.TINY, "tracking.enabled=true", "tracking.trial_figures_min_s=0"]   # figures for every trial
# The demo's two sampled keys, restricted to settings that never diverge (tanh units), so that every
# trial runs all its steps and the expected metric counts are exact.
CALM = "++search.params={model.init: scaled, model.init_gain: 'choice(0.5, 2.0)', model.activation: tanh}"

METRICS = {"train/loss", "grad/global_norm", "grad/vanishing_ratio", "grad/span_ratio", "grad/horizon",
           "grad/decay_rate", "grad/norm/recurrent", "weights/lambda1/0", "weights/spectral_radius/0",
           "final/test_loss", "final/baseline_ratio", "final/seq_per_s"}
TRIAL_ARTIFACTS = {"gradient_profile.png", "gradient_profile.svg", "gradient_heatmap.png", "probes.csv", "summary.json",
                   "config.yaml", "profiles.json"}
HEALTH = {"healthy", "vanishing", "exploding", "diverged"}


# ----------------------------------------------------------------------------------------------------
# helpers


def run_study(overrides: list[str]) -> optuna.Study:
    """A study in this process (the session's local Ray)."""
    composed = compose_root(overrides)
    outcome = StudyRunner(composed).run(tracking_hooks(composed))
    assert not outcome.timed_out
    return outcome.study


class Cli:
    """A finished `gradstudy …` subprocess: rc, stdout, stderr, wall seconds."""

    def __init__(self, rc: int, out: str, err: str, wall_s: float):
        self.rc, self.out, self.err, self.wall_s = rc, out, err, wall_s

    def __repr__(self) -> str:
        return (f"rc={self.rc} ({self.wall_s:.1f} s)\n--- stdout ---\n{self.out[-3000:]}\n"
                f"--- stderr ---\n{self.err[-3000:]}")


def run_cli(args: list[str], home: Path, logs: Path, timeout: float, cwd: Path = REPO,
            env: Optional[dict[str, str]] = None) -> Cli:
    """Run `gradstudy ARGS` to its end in its own session (outputs to files: Ray processes inherit
    them); whatever of its process group is left afterwards (or at the timeout) is killed."""
    logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("cli-*.out")))
    out_path, err_path = logs / f"cli-{n}.out", logs / f"cli-{n}.err"
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(gradstudy_command() + args, cwd=cwd, env={**cli_env(home), **(env or {})},
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = None
    wall = time.monotonic() - started
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    result = Cli(proc.returncode, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"), wall)
    if rc is None:
        pytest.fail(f"`gradstudy {' '.join(args)}` did not finish within {timeout:.0f} s: {result}")
    return result


def local_client(home: Path) -> MlflowClient:
    db = home / "mlflow" / "mlflow.db"
    assert db.is_file(), db
    return MlflowClient(tracking_uri=f"sqlite:///{db}")


def load(name: str, storage: str = "") -> Optional[optuna.Study]:
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        return None


def study_runs(client: MlflowClient, name: str, view: int = ViewType.ACTIVE_ONLY, only: bool = True):
    """(parent runs, child runs by trial number: lists) of the study's experiment; `only`: the store
    holds no other gradstudy experiment (not so on the server the module's tests share)."""
    exps = [e for e in client.search_experiments(view_type=ViewType.ALL) if e.name.startswith("gradstudy/")]
    if not only:
        exps = [e for e in exps if e.name == f"gradstudy/{name}"]
    assert [e.name for e in exps] == [f"gradstudy/{name}"], [e.name for e in exps]
    runs = client.search_runs([exps[0].experiment_id], run_view_type=view, max_results=1000)
    parents = [r for r in runs if r.data.tags.get("gradstudy.role") == "study"]
    children: dict[int, list] = {}
    for r in runs:
        if r.data.tags.get("gradstudy.role") != "study":
            children.setdefault(int(r.data.tags["gradstudy.trial"]), []).append(r)
    return parents, children


def artifact_paths(client: MlflowClient, run_id: str, path: Optional[str] = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= artifact_paths(client, run_id, item.path)
        else:
            found.add(item.path)
    return found


def download(uri: str, run_id: str, path: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst),
                                                    tracking_uri=uri))


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def check_study_records(client: MlflowClient, uri: str, study: optuna.Study, home: Path, tmp: Path) -> dict:
    """The layout of docs/mlflow.md ("What each trial's run holds") / tracking/runs/study_runs.py for a finished
    study whose trials all finished and synced. Returns {trial number: child run}."""
    name = study.study_name
    trials = study.get_trials(deepcopy=False)
    parents, children = study_runs(client, name, only=False)

    assert len(parents) == 1, [p.info.run_name for p in parents]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["gradstudy.study"] == name
    assert parent.data.tags.get("mlflow.source.git.commit"), parent.data.tags
    params = parent.data.params
    assert {"study.sampler", "study.pruner"} <= set(params), params
    assert params["study.sampler"] == "grid" and params["study.pruner"] == "none"      # the demo's
    assert any(k.startswith("search.") for k in params), params
    assert params["search.model.init_gain"].startswith("choice(")
    files = artifact_paths(client, parent.info.run_id)
    assert {"config.yaml", "report/report.html"} <= files, files
    assert any(f.startswith("report/") and f.endswith(".png") for f in files), files
    config = download(uri, parent.info.run_id, "config.yaml", tmp / "parent").read_text()
    # the report holds its figures (MLflow shows it as a sandboxed blob: page) and links trials to their runs
    page = download(uri, parent.info.run_id, "report/report.html", tmp / "parent").read_text()
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images), [x[:40] for x in images]
    ui = uri.rstrip("/") if uri.startswith("http") else "http://127.0.0.1:5000"
    exp_id = parent.info.experiment_id
    best_run = next(t for t in trials if t.state == TrialState.COMPLETE and
                    t.values[0] == min(x.values[0] for x in trials if x.state == TrialState.COMPLETE))
    best_run_id = best_run.user_attrs["gradstudy.mlflow_run"]
    assert f'href="{ui}/#/experiments/{exp_id}/runs/{best_run_id}?workflowType=machine_learning"' in page
    assert f"name: {name}" in config
    assert parent.data.metrics.get("study/complete") == sum(t.state == TrialState.COMPLETE for t in trials)
    assert parent.data.tags["mlflow.source.name"].startswith("gradstudy run experiment=test_tiny"), parent.data.tags
    # the description: counts, the best trial linked to its run, the search space in words
    best = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (t.values[0], t.number))
    note = parent.data.tags["mlflow.note.content"]
    assert f"complete {sum(t.state == TrialState.COMPLETE for t in trials)}" in note, note
    assert f"runs/{best.user_attrs['gradstudy.mlflow_run']}?workflowType=machine_learning)" in note, note
    assert "- `model.init_gain`: choice(0.5, 2, 4)" in note and "- `model.init`: = scaled (fixed)" in note, note
    assert parent.data.metrics["best/final/test_loss"] == pytest.approx(best.values[0])
    assert parent.data.metrics["best/trial"] == best.number
    # the study's page in the MLflow UI: the seeded view (MLflow 3.17) and the query `gradstudy ui` prints
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["gradstudy.ui_query"] == trials_query("final/test_loss", "minimize", ui_view.supported())
    if ui_view.supported():
        view = ui_view.decode(experiment.tags[ui_view.TAG])
        assert (view["orderByKey"] == "metrics.`final/test_loss`"
                and "params.`model.init_gain`" in view["selectedColumns"])

    assert sorted(children) == [t.number for t in trials], sorted(children)
    by_number = {}
    for t in trials:
        assert len(children[t.number]) == 1, (t.number, [r.info.run_id for r in children[t.number]])
        run = children[t.number][0]
        by_number[t.number] = run
        tags, rid = run.data.tags, run.info.run_id
        summary = json.loads((home / "studies" / name / "trials" / f"{t.number:05d}" / "summary.json").read_text())
        assert t.user_attrs["gradstudy.mlflow"] == "synced", t.user_attrs
        assert t.user_attrs["gradstudy.mlflow_run"] == rid
        assert run.info.run_name == run_name(t.number, summary["config"], list(t.params))
        assert run.info.run_name.startswith(f"{t.number:03d} rnn {t.params['model.activation']} "
                                            f"λ1₀={t.params['model.init_gain']:.3g}"), run.info.run_name
        assert tags["mlflow.runColor"] == HEALTH_COLOURS[summary["health"]]
        assert tags["mlflow.source.git.commit"] == parent.data.tags["mlflow.source.git.commit"]
        assert [(d.dataset.name, [(x.key, x.value) for x in d.tags]) for d in run.inputs.dataset_inputs] == \
            [("adding T=10", [("mlflow.data.context", "train")])]
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["gradstudy.study"] == name and tags["gradstudy.trial"] == str(t.number)
        assert tags["gradstudy.state"] == ("diverged" if summary["status"] == "diverged" else "completed")
        assert run.info.status == "FINISHED"
        assert tags["gradstudy.health"] == summary["health"] == t.user_attrs["gradstudy.health"]
        assert tags["gradstudy.health"] in HEALTH
        # the span the verdict judged: adding, the whole T = 10
        assert tags["gradstudy.span"] == str(summary["health_span"]) == "10"
        assert t.user_attrs["gradstudy.span"] == 10
        assert tags["gradstudy.cell"] == "rnn"
        # params: the keys of the trial's resolved config that apply to it (adam: no momentum; no clipping: no
        # threshold; rnn: no reservoir keys)
        assert run.data.params == {k: v for k, v in flatten(summary["config"]).items() if applies(k, summary["config"])}
        assert not {"train.momentum", "train.clip.threshold", "model.spectral_radius", "model.leak",
                    "model.forget_bias", "task.n_copy", "task.tau"} & set(run.data.params), sorted(run.data.params)
        assert run.data.params["model.cell"] == "rnn" and run.data.params["train.lr"] == "0.001"
        assert run.data.params["model.hidden_size"] == "8" and run.data.params["task.seq_len"] == "10"
        assert run.data.params["model.init_gain"] == str(t.params["model.init_gain"])
        # metrics: the names of docs/mlflow.md
        assert METRICS <= set(run.data.metrics), sorted(METRICS - set(run.data.metrics))
        assert "grad/clipped_fraction" not in run.data.metrics      # no clipping: no chart of zeros
        assert run.data.metrics["final/test_loss"] == pytest.approx(summary["final"]["test_loss"])
        if summary["status"] != "diverged":
            log_every = summary["config"]["train"]["log_every"]
            assert len(client.get_metric_history(rid, "train/loss")) == summary["steps"] // log_every
        ratios = [p for p in summary["probes"] if finite(p["vanishing_ratio"])]
        history = client.get_metric_history(rid, "grad/vanishing_ratio")
        assert sorted(m.step for m in history) == [p["step"] for p in ratios]
        assert {m.step: m.value for m in history} == pytest.approx({p["step"]: p["vanishing_ratio"] for p in ratios})
        # the last probe's profile: one point per t, step = k = T − t
        profile = {m.step: m.value for m in client.get_metric_history(rid, "profile/log10_grad_h_by_steps_back")}
        last = summary["probes"][-1]["grad_h_log10"][-1]
        assert profile == pytest.approx({len(last) - t: v for t, v in enumerate(last, start=1) if finite(v)})
        assert json.loads(tags["mlflow.loggedArtifacts"]) == [{"path": "profiles.json", "type": "table"}]
        # artifacts
        assert TRIAL_ARTIFACTS <= artifact_paths(client, rid), artifact_paths(client, rid)
        png = download(uri, rid, "gradient_profile.png", tmp / rid).read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) > 1024
        kept = json.loads(download(uri, rid, "summary.json", tmp / rid).read_text())
        assert kept["health"] == summary["health"] and kept["final"] == pytest.approx(summary["final"])
    # the profile tables, read back the way MLflow's own load_table reads them (its search is fluent)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        table = client.load_table(exp_id, "profiles.json", extra_columns=["run_id"])
    finally:
        mlflow.set_tracking_uri(previous)
    assert set(table["run_id"]) == {r.info.run_id for r in by_number.values()}
    assert list(table.columns) == ["step", "t", "log10_grad_h", "run_id"]
    return by_number


def all_files(root: Path):
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


# ----------------------------------------------------------------------------------------------------
# 1. The local SQLite store (the default)


@pytest.mark.slow
@pytest.mark.ray        # a `gradstudy run` driver with its local Ray
@pytest.mark.timeout(300)
def test_local_sqlite_store_records_the_study(home, tmp_path, capsys, monkeypatch):
    """`tracking.uri` empty: everything under $GRADSTUDY_HOME/mlflow with absolute paths, nothing in the
    directory the command runs from (MLflow's own default would be ./mlflow.db and ./mlruns)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    res = run_cli(["run", *TINY, "study.name=local", "study.n_trials=3"], home, tmp_path / "logs", 240, cwd=cwd)
    assert res.rc == 0, res
    assert sorted(os.listdir(cwd)) == [], os.listdir(cwd)          # no mlflow.db, mlruns, mlartifacts
    assert "INFO" not in res.err and "Warning" not in res.err, res.err    # a new store: MLflow's INFO lines off

    root = home / "mlflow"
    client = local_client(home)
    for exp in client.search_experiments(view_type=ViewType.ALL):  # "Default" too: no ./mlruns/0
        assert exp.artifact_location.startswith((root / "artifacts").as_uri() + "/"), exp
    study = load("local")
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.COMPLETE] * 3
    study_runs(client, "local")                                    # the one gradstudy experiment
    runs = check_study_records(client, client.tracking_uri, study, home, tmp_path / "dl")

    for run in runs.values():
        uri = run.info.artifact_uri
        assert uri.startswith((root / "artifacts" / "local").as_uri() + "/"), uri
        folder = Path(uri[len("file://"):])
        assert folder.is_absolute() and TRIAL_ARTIFACTS <= {p.name for p in folder.iterdir()}
    assert sorted(p.name for p in root.iterdir()) == ["artifacts", "mlflow.db"]

    # `gradstudy ui`: the link to the study's trials, without serving; an unknown study is one line, exit 2
    parent = study_runs(client, "local", only=False)[0][0]
    # (in this process: `--no-serve` starts nothing)
    capsys.readouterr()
    assert cli.main(["ui", "--no-serve"]) == 0
    out = capsys.readouterr().out
    query = client.get_experiment(parent.info.experiment_id).tags["gradstudy.ui_query"]
    assert f"trials: http://127.0.0.1:5000/#/experiments/{parent.info.experiment_id}/runs?{query}" in out
    assert f"/runs/{parent.info.run_id}/artifacts/report/report.html" in out
    assert cli.main(["ui", "nope", "--no-serve"]) == 2
    err = capsys.readouterr().err
    assert "study 'nope' has no MLflow experiment" in err and "local" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------------------
# 2. A tracking server


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tracking_server_records_the_study(home, tmp_path, ray_session, shared_mlflow_server):
    server = shared_mlflow_server
    study = run_study(TINY + ["study.name=remote", "study.n_trials=3", f"tracking.uri={server.url}"])
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.COMPLETE] * 3

    client = MlflowClient(tracking_uri=server.url)
    runs = check_study_records(client, server.url, study, home, tmp_path / "dl")
    for run in runs.values():                                      # proxied by the server
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
        stored = {p.name for p in server.art.rglob("*") if run.info.run_id in p.parts}
        assert TRIAL_ARTIFACTS <= stored, stored
    assert not (home / "mlflow").exists()                          # no local store on the side


# ----------------------------------------------------------------------------------------------------
# 3. Concurrent workers lose nothing


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_concurrent_workers_lose_no_metric(home, tmp_path, ray_session):
    """4 trials, 2 at a time, a training metric at every one of 60 steps, into the one SQLite file: every
    metric each worker sent is in MLflow (the train/loss history has all 60 points; the vanishing-ratio
    history one point per probe of summary.json)."""
    study = run_study([*tiny.TINY, "tracking.enabled=true", "train.steps=60", "train.log_every=1",
                       "cluster.max_concurrent=2", CALM, "study.sampler=random", "study.seed=1", "study.name=busy",
                       "study.n_trials=4"])
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    # two trials did run at the same time
    assert any(a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
               for a in trials for b in trials if a.number < b.number)

    client = local_client(home)
    _, children = study_runs(client, "busy")
    assert sorted(children) == [0, 1, 2, 3]
    for t in trials:
        (run,) = children[t.number]
        rid = run.info.run_id
        folder = home / "studies" / "busy" / "trials" / f"{t.number:05d}"
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["health"] != "diverged" and summary["steps"] == 60
        losses = client.get_metric_history(rid, "train/loss")
        assert len(losses) == len({m.step for m in losses}) == 60
        probes = [p for p in summary["probes"] if finite(p["vanishing_ratio"])]
        assert len(probes) == len(summary["probes"]) == 13                  # steps 0, 5, …, 55, 59
        assert len(client.get_metric_history(rid, "grad/vanishing_ratio")) == len(probes)
        # and every metric the worker sent (history.json) is there, once
        sent: dict[str, int] = {}
        for key, _, _ in json.loads((folder / "history.json").read_text()):
            sent[key] = sent.get(key, 0) + 1
        got = {key: len(client.get_metric_history(rid, key)) for key in sent}
        assert got == sent


# ----------------------------------------------------------------------------------------------------
# 4. Secrets never stored

@pytest.mark.slow
@pytest.mark.timeout(300)
def test_secrets_never_reach_the_records(home, tmp_path, shared_mlflow_server, postgres_url):
    """MLflow credentials in MLFLOW_TRACKING_USERNAME/PASSWORD (the server has no auth and ignores them)
    and a PostgreSQL password in study.storage: neither is in any param, tag, metric name, artifact,
    the server's database, or a file of the data directory."""
    server = shared_mlflow_server
    secret_a = f"mlflowpw-{uuid.uuid4().hex}"
    secret_b = f"pgpw-{uuid.uuid4().hex}"
    name = f"secrets-{uuid.uuid4().hex[:8]}"
    storage = f"postgresql://postgres:{secret_b}@127.0.0.1:5432/test"
    try:
        res = run_cli(["run", *TINY, f"study.name={name}", "study.n_trials=2", f"study.storage={storage}",
                       f"tracking.uri={server.url}"], home, tmp_path / "logs", 240,
                      env={"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": secret_a})
        assert res.rc == 0, res
        assert secret_a not in res.out + res.err

        secrets = [s.encode() for s in (secret_a, secret_b)]
        client = MlflowClient(tracking_uri=server.url)
        parents, children = study_runs(client, name, only=False)
        runs = parents + [r for rs in children.values() for r in rs]
        assert len(parents) == 1 and len(runs) == 3
        assert "***" in parents[0].data.tags["gradstudy.overrides"]     # the storage URL, masked
        exp = client.get_experiment_by_name(f"gradstudy/{name}")
        texts = [exp.name, json.dumps(exp.tags)]
        for run in runs:
            texts += [run.info.run_name, json.dumps(run.data.params), json.dumps(run.data.tags),
                      json.dumps(sorted(run.data.metrics))]
            dst = tmp_path / "artifacts" / run.info.run_id
            mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(dst), tracking_uri=server.url)
            files = list(all_files(dst))
            assert files, run.info.run_name
            texts += [p.read_bytes().decode("latin-1") for p in files]
        for secret in (secret_a, secret_b):
            assert not [t for t in texts if secret in t]

        places = list(all_files(server.root)) + list(all_files(home))    # server db, its artifacts, data dir
        assert server.db in places and any(p.suffix == ".html" for p in places)
        leaks = [str(p) for p in places for s in secrets if s in p.read_bytes()]
        assert not leaks, leaks
    finally:
        try:
            optuna.delete_study(study_name=name, storage=open_storage(storage))
        except KeyError:
            pass


@pytest.mark.timeout(120)
def test_tracking_uri_with_a_password_is_refused(home, tmp_path):
    secret = f"pw-{uuid.uuid4().hex}"
    res = run_cli(["run", *TINY, "study.name=pw", f"tracking.uri=http://u:{secret}@127.0.0.1:1"], home,
                  tmp_path / "logs", 90)
    assert res.rc == 2, res
    assert "tracking.uri" in res.err and "MLFLOW_TRACKING_USERNAME" in res.err, res
    assert secret not in res.out + res.err
    assert [p for p in home.rglob("*") if p.is_file()] == []       # no lock file, no log, no journal left
    assert len(res.err.strip().splitlines()) == 1, res
    assert optuna.get_all_study_names(open_storage("")) == []     # (opening the journal creates its file)
    assert not (home / "studies").exists()


# ----------------------------------------------------------------------------------------------------
# 5. MLflow unreachable at the start


@pytest.mark.timeout(120)
def test_unreachable_tracking_server_stops_the_run_before_any_trial(home, tmp_path):
    port = free_port()                                            # nothing listens there
    res = run_cli(["run", *TINY, "study.name=nowhere", f"tracking.uri=http://127.0.0.1:{port}"], home,
                  tmp_path / "logs", 90)
    assert res.rc == 2, res
    assert res.wall_s < 25, res                                   # ~10 s of it is imports (torch, ray, mlflow)
    assert "tracking.uri" in res.err and f"127.0.0.1:{port}" in res.err, res
    assert [p for p in home.rglob("*") if p.is_file()] == []       # no lock file, no log, no journal left
    assert optuna.get_all_study_names(open_storage("")) == []     # no Optuna study, so no trial
    assert not (home / "studies").exists() and not (home / "mlflow").exists()
    (line,) = res.err.strip().splitlines()                         # one line, the OS's reason whole
    assert line.endswith("([Errno 111] Connection refused)"), line


# ----------------------------------------------------------------------------------------------------
# 6. MLflow lost in the middle of a study


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_tracking_server_lost_mid_study_then_backfilled(home, tmp_path, drivers, mlflow_servers):
    """What happens when the tracking server dies while a study runs (the README describes this):

    - The study goes on and finishes normally (exit 0): the Optuna study is the source of truth and
      every trial is in it, COMPLETE.
    - A trial that was running when the server died keeps its metrics queued in its worker (retried
      with back-off, up to `tracking.delivery_timeout_s` at the trial's end: 3 s here, 30 by default),
      then gives up; a trial launched while the server is down gets no MLflow run at all. Either way
      the driver keeps the trial's summary.json and history.json (every metric the trial produced)
      under $GRADSTUDY_HOME/studies/<name>/trials/<n>/, and marks the Optuna trial
      `gradstudy.mlflow=pending`. Trials that finished before the server died are `synced`.
    - At the end of the run the driver asks MLflow once whether it answers; with the server still down it
      only writes the report to the data dir (the parent run stays RUNNING for now) and says how many
      trials MLflow missed and that `gradstudy report NAME` records them.
    - Once the server is back (same URL, same backend), `gradstudy report NAME` back-fills every
      pending trial into a fresh child run (tag `gradstudy.backfilled`; the partial run of an
      interrupted trial is deleted), attaches the report and the counts (`study/complete` …) to the
      parent run and ends it (FINISHED). Afterwards each trial has exactly one
      live child run with its full metric history and its artifacts. A finished Optuna trial is
      read-only, so the back-fill is recorded on the study: user attr
      `gradstudy.mlflow_backfill.<trial number>` = the new run (the trial keeps `gradstudy.mlflow=pending`);
      `study.recording.backfill.mlflow_record()` reads both and says `synced` for every trial.
    """
    server = mlflow_servers.new("server").start()
    name = "lost"
    steps, log_every = 300, 10
    driver = drivers.start(["run", *tiny.TINY, "tracking.enabled=true", f"train.steps={steps}", "train.probe_every=50",
                            f"train.log_every={log_every}", "cluster.max_concurrent=2", CALM, "study.sampler=random",
                            "study.seed=0", f"study.name={name}", "study.n_trials=4", f"tracking.uri={server.url}",
                            "tracking.trial_figures_min_s=0", "tracking.delivery_timeout_s=3"])

    def completed():
        study = load(name)
        return study is not None and any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))

    wait_until(completed, 180, "a COMPLETE trial", interval=0.2, proc=driver)
    server.kill()
    killed_at = time.time()
    before = {t.number for t in load(name).get_trials(deepcopy=False) if t.state == TrialState.COMPLETE}
    assert driver.wait(300) == 0, driver.output()

    study = load(name)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, driver.output()
    sync = {t.number: t.user_attrs.get("gradstudy.mlflow") for t in trials}
    after = [t for t in trials if t.datetime_complete.timestamp() > killed_at]
    assert after, sync                                            # the server was down for some trials
    for t in trials:
        folder = home / "studies" / name / "trials" / f"{t.number:05d}"
        assert (folder / "summary.json").is_file() and (folder / "history.json").is_file()
        if t.number in before:
            assert sync[t.number] == "synced", sync
    # a trial told after the kill is pending, unless its worker had delivered everything and closed its
    # run before the server went (then it is synced, checked on the server below); some are pending
    assert any(sync[a.number] == "pending" for a in after), sync
    pending = [n for n, s in sync.items() if s == "pending"]
    assert (home / "studies" / name / "report" / "report.html").is_file()
    # told how to finish the records; the end of the run did not wait out MLflow's retries call by call
    assert f"MLflow missed {len(pending)} trial(s)" in driver.stdout() and f"gradstudy report {name}" in driver.stdout()

    server.start()                                                # same port, same backend
    report = drivers.run(["report", name], timeout=180)
    assert report.returncode == 0, report.output()
    assert f"back-filled {len(pending)} trial(s)" in report.stdout(), report.output()

    study = load(name)
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    assert sorted(k for k in attrs if k.startswith("gradstudy.mlflow_backfill.")) == \
        sorted(f"gradstudy.mlflow_backfill.{n}" for n in pending)
    record = {t.number: mlflow_record(attrs, t) for t in trials}
    assert {state for state, _ in record.values()} == {"synced"}, record
    client = MlflowClient(tracking_uri=server.url)
    parents, children = study_runs(client, name)
    assert len(parents) == 1 and "report/report.html" in artifact_paths(client, parents[0].info.run_id)
    assert parents[0].info.status == "FINISHED"                  # ended by the report, not left RUNNING
    assert parents[0].data.metrics.get("study/complete") == 4
    assert sorted(children) == [0, 1, 2, 3], sorted(children)
    for t in trials:
        assert len(children[t.number]) == 1, (t.number, [r.info.run_id for r in children[t.number]])
        (run,) = children[t.number]
        rid = run.info.run_id
        assert rid == record[t.number][1]
        assert run.data.tags["gradstudy.state"] == "completed" and run.info.status == "FINISHED"
        assert run.data.tags.get("gradstudy.backfilled") == ("true" if t.number in pending else None)
        assert len(client.get_metric_history(rid, "train/loss")) == steps // log_every
        assert len(client.get_metric_history(rid, "grad/vanishing_ratio")) == 7       # 0, 50, …, 250, 299
        assert METRICS <= set(run.data.metrics), sorted(METRICS - set(run.data.metrics))
        assert "grad/clipped_fraction" not in run.data.metrics      # no clipping: no chart of zeros
        assert TRIAL_ARTIFACTS <= artifact_paths(client, rid)
        png = download(server.url, rid, "gradient_profile.png", tmp_path / "dl" / rid).read_bytes()
        assert png[:8] == PNG_MAGIC


# ----------------------------------------------------------------------------------------------------
# 7. gradstudy ui


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) of sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":      # TCP_LISTEN
                found.add(address)
    return found


def other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [a for a in out if ":" not in a and not a.startswith("127.")]


@pytest.mark.slow
@pytest.mark.mlflow_server   # `gradstudy ui` runs one
@pytest.mark.timeout(180)
def test_ui_listens_on_loopback_only(home, tmp_path):
    port = free_port()
    out = tmp_path / "ui.out"
    with open(out, "wb") as f:
        proc = subprocess.Popen(gradstudy_command() + ["ui", "--port", str(port)], cwd=REPO,
                                env={**cli_env(home), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not http_ok(f"{url}/health"):
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.25)
        assert http_ok(url + "/")
        while "MLflow UI on" not in out.read_text():        # printed once the UI answers
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.25)
        first = next(line for line in out.read_text().splitlines() if line.startswith("MLflow UI on"))
        assert url in first and str(home / "mlflow" / "mlflow.db") in first, first
        assert listening_addresses(port) == {"0100007F"}          # 127.0.0.1, nothing else (no 0.0.0.0, no ::)
        for address in other_addresses():
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=2).close()
        assert (home / "mlflow" / "mlflow.db").is_file()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=15)
