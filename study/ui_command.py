"""`gradstudy ui [NAME] [--open] [--port P] [--tracking-uri URI] [--no-serve]`: a link per study to its
trials in the MLflow UI (flat, sorted by the first objective, in the training view: tracking/ui_links.py).

- The local store (default): `mlflow ui` is started on 127.0.0.1:P over it, the links are printed once
  it answers, and it serves until Ctrl-C; `--no-serve` prints the links only.
- A tracking server (`--tracking-uri http(s)://…`, or an http(s) MLFLOW_TRACKING_URI): the server is its
  own UI; the links are printed, nothing is started.
`--open` opens the (first) link in the default browser. An unknown NAME is one line naming it and the
studies the store holds, exit 2.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import webbrowser

from tracking.errors import TrackingError
from tracking.urls import scrub
from workers.config import ConfigError

PREFIX = "gradstudy/"
FILTERS = ("metrics.`final/test_loss` < 0.17", "tags.`gradstudy.health` = 'vanishing'",
           "params.`model.cell` = 'lstm'")


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never through http_proxy


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def study_links(client, ui: str, name: str | None) -> list[tuple[str, str, str]]:
    """(study, link to its trials, link to its report) of NAME or of every study in the store."""
    from tracking.ui_links import QUERY_TAG, run_url, trials_url

    experiments = client.search_experiments(max_results=1000, filter_string=f"name LIKE '{PREFIX}%'")
    by_study = {e.name[len(PREFIX):]: e for e in experiments}
    if name is not None and name not in by_study:
        known = ", ".join(sorted(by_study)) or "none"
        raise ConfigError("NAME", name, f"a study recorded in this MLflow store (studies there: {known})",
                          f"study {name!r} has no MLflow experiment `{PREFIX}{name}` in this store; studies there: "
                          f"{known}")
    out = []
    for study in ([name] if name is not None else sorted(by_study)):
        e = by_study[study]
        report = "(none yet)"
        parents = client.search_runs([e.experiment_id], filter_string="tags.`gradstudy.role` = 'study'", max_results=1)
        if parents:
            report = run_url(ui, e.experiment_id, parents[0].info.run_id) + "/artifacts/report/report.html"
        out.append((study, trials_url(ui, e.experiment_id, e.tags.get(QUERY_TAG)), report))
    return out


def _print_links(links: list[tuple[str, str, str]]) -> None:
    if not links:
        print("no studies recorded in this MLflow store yet: `gradstudy run …` first")
    width = max([len(s) for s, _, _ in links] + [5])
    for study, trials, report in links:
        print(f"{study:<{width}}  trials: {trials}")
        print(f"{'':<{width}}  report: {report}")
    print("filters (in the runs page's search box; names with / or . need backticks): " + " · ".join(FILTERS),
          flush=True)


def ui(args: argparse.Namespace) -> int:
    from study.paths import data_dir
    from tracking.store import connect, local_root, resolve_uri
    from tracking.ui_links import ui_address

    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    uri = args.tracking_uri or (env if env.startswith(("http://", "https://")) else "")   # a server, or local
    remote = uri.startswith(("http://", "https://"))
    if uri and not remote:
        raise TrackingError(uri, "an http(s) tracking server, or no --tracking-uri for the local store")
    client = connect(uri, data_dir())
    address = ui_address(uri, None if remote else args.port)
    if remote or args.no_serve:
        links = study_links(client, address, args.name)
        _print_links(links)
        if args.open and links:
            webbrowser.open(links[0][1])
        return 0

    links = study_links(client, address, args.name)     # an unknown NAME fails before anything starts
    store = resolve_uri("", data_dir())
    mlflow = shutil.which("mlflow") or os.path.join(os.path.dirname(sys.executable), "mlflow")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
                                                                               "false")}   # no background job runners
    server = subprocess.Popen([mlflow, "ui", "--backend-store-uri", store, "--default-artifact-root",
                               (local_root(data_dir()) / "artifacts").as_uri(), "--host", "127.0.0.1",
                               "--port", str(args.port), "--workers", "1"], env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:   # checked first: another server on the port must not pass for ours
                print(f"gradstudy: `mlflow ui` exited with code {server.returncode} (is port {args.port} in use? "
                      "--port picks another)", file=sys.stderr)
                return 2
            if _answers(f"{address}/health"):
                time.sleep(0.5)
                if server.poll() is None:
                    break
                continue
            if time.monotonic() > deadline:
                raise TrackingError(address, "an MLflow UI answering within 120 s")
            time.sleep(0.3)
        print(f"MLflow UI on {scrub(store)}: {address}  (Ctrl-C to stop)")
        _print_links(links)
        if args.open and links:
            webbrowser.open(links[0][1])
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
