"""The MLflow UI of a finished study, seen in a real browser: headless Chromium (Debian's package, put
there by `make browser` / scripts/install-browser) driven by Playwright — no browser download.

A tiny 3-trial study runs through the `gradstudy run` command in this process (the session's local Ray);
`gradstudy ui NAME`, a subprocess, serves the local store and prints
the link to the study's trials; a fresh browser (a new profile: no saved MLflow UI state) follows it and sees
  1. the trials as a flat list (no parent row to expand), each row named for its trial (`000 rnn tanh λ1₀=…`),
     sorted by the objective, in the training view (not MLflow's GenAI pages);
  2. the chart view of the same link: the `profile/log10_grad_h` chart with one line per trial;
  3. the study report inside MLflow's artifact viewer, every figure loaded (embedded in the page);
  4. the parent run's description: the study's summary with the best trial;
  5. a child run's Artifacts view showing `gradient_profile.png` as a loaded image of the PNG's size.
Screenshots go to test-artifacts/ at the repo root (git-ignored); their paths are printed.

URLs of MLflow 3.17: the runs page is `#/experiments/<id>/runs?…` (tracking/ui_links.py); a run is
`#/experiments/<id>/runs/<run_id>`, its tabs `/artifacts/<path>`.
"""
from __future__ import annotations

import math
import re
import socket
import struct
import time
import urllib.request
from pathlib import Path

import pytest

from testkit.processes import REPO, wait_until

CHROMIUM = Path("/usr/bin/chromium")
# As root, in a container, on a closed network: no sandbox, no GPU, and none of Chromium's background
# connections (they pile up when nothing answers). Playwright gives it a fresh profile (user_data_dir).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
ARTIFACTS = REPO / "test-artifacts"
STUDY = "browser"
TINY = ["experiment=demo", "train.steps=20", "train.probe_every=5", "task.seq_len=10", "model.hidden_size=8",
        "cluster.num_cpus=2", "study.n_trials=3", f"study.name={STUDY}", "tracking.trial_figures_min_s=0"]
CHART = "gradient_profile.png"
PROFILE = "profile/log10_grad_h"
UI_TIMEOUT_MS = 60_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is missing: `make browser` (scripts/install-browser) installs "
                              "Debian's chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def run_link(page, run):
    """The link to `run` in the page (its name in the runs table)."""
    return page.locator(f'a[href$="/runs/{run.info.run_id}"]')


def close_assistant(page) -> None:
    """MLflow 3.17 opens its 'MLflow Assistant' side panel on a fresh profile: close it so the
    screenshots show the page (cosmetic; nothing depends on it)."""
    try:
        close = page.get_by_role("button", name="Close", exact=True)
        if close.count() and close.first.is_visible():
            close.first.click(timeout=5_000)
    except Exception:
        pass


def row_ids_in_order(page) -> list[str]:
    """The run ids of the runs table's rows, top to bottom (the grid may render rows out of DOM order)."""
    rows = page.locator("[role=row][row-id][row-index]")
    pairs = [(int(r.get_attribute("row-index")), r.get_attribute("row-id")) for r in rows.all()]
    return [rid for _, rid in sorted(set(pairs))]


@pytest.mark.browser
@pytest.mark.mlflow_server
def test_mlflow_ui_opens_the_study_as_named_trials_charts_and_report(drivers, ray_session, tmp_path, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the `test` extra: make setup")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    started = time.monotonic()
    # --- a finished study, then `gradstudy ui NAME` on its store ------------------------------------------
    from study import cli

    assert cli.main(["run", *TINY]) == 0
    ran = time.monotonic()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ui = drivers.start(["ui", STUDY, "--port", str(port)])
    wait_until(lambda: "trials: " in ui.stdout(), timeout=120, what=f"`gradstudy ui {STUDY}` printing its link",
               interval=0.5, proc=ui)
    trials_link = re.search(r"trials: (\S+)", ui.stdout()).group(1)
    report_link = re.search(r"report: (\S+)", ui.stdout()).group(1)
    assert trials_link.startswith(f"{base}/#/experiments/") and "workflowType=machine_learning" in trials_link
    served = time.monotonic()

    client = MlflowClient(tracking_uri=base)          # through the UI's own server: the same store
    experiment = client.get_experiment_by_name(f"gradstudy/{STUDY}")
    assert experiment is not None, [e.name for e in client.search_experiments()]
    exp_id = experiment.experiment_id
    runs = client.search_runs([exp_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("gradstudy.role") == "study"]
    assert len(parents) == 1, [(r.info.run_name, r.data.tags) for r in runs]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(r.data.tags["gradstudy.trial"]) for r in children) == [0, 1, 2]
    for run in children:
        assert re.fullmatch(rf"{int(run.data.tags['gradstudy.trial']):03d} rnn \w+ λ1₀=[\d.e+-]+", run.info.run_name), \
            run.info.run_name
    # the order the link promises: by final/test_loss, ascending (a missing value last)
    by_loss = [r.info.run_id for r in sorted(children, key=lambda r: r.data.metrics.get("final/test_loss", math.inf))]
    with_profile = [r for r in children if client.get_metric_history(r.info.run_id, PROFILE)]
    assert with_profile, "no trial logged its gradient profile"
    # the child whose PNG is checked: the first that has the figure
    with_chart = [r for r in children if any(a.path == CHART for a in client.list_artifacts(r.info.run_id))]
    assert with_chart, f"no child run has {CHART}"
    child = with_chart[0]
    width, height = png_size(Path(client.download_artifacts(child.info.run_id, CHART, str(tmp_path))))
    report_html = Path(client.download_artifacts(parent.info.run_id, "report/report.html", str(tmp_path))).read_text()
    n_figures = report_html.count('<img src="data:image/png;base64,')
    assert n_figures >= 3, "the report embeds fewer figures than expected"

    expect = sync_api.expect
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1600, "height": 1000})
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)

            # --- 1. the printed link: the trials, flat, named, sorted, in the training view ------------------
            page.goto(trials_link)
            for run in children:       # visible without expanding anything: no parent row to open
                expect(run_link(page, run)).to_be_visible()
                expect(run_link(page, run)).to_have_text(run.info.run_name)
            close_assistant(page)
            expect(run_link(page, parent)).to_have_count(0)
            wait_until(lambda: row_ids_in_order(page) == by_loss, timeout=30,
                       what=f"the rows in final/test_loss order {by_loss} (seen: {row_ids_in_order(page)})")
            expect(page.get_by_text("Model training", exact=True).first).to_be_visible()
            screenshot(page, "mlflow-ui-trials.png")
            listed = time.monotonic()

            # --- 2. the same link in chart view: one profile line per trial ---------------------------------
            page.goto(trials_link.replace("compareRunsMode=TABLE", "compareRunsMode=CHART"))
            close_assistant(page)
            title = page.get_by_text(PROFILE, exact=True).first
            title.wait_for()
            card = page.locator("div").filter(has=title).filter(has=page.locator("path.js-line")).last
            card.wait_for()
            # MLflow 3.17 draws each run's line twice (the line and its hover twin): count distinct paths
            lines = lambda: {line.get_attribute("d") or "" for line in card.locator("path.js-line").all()}  # noqa: E731
            wait_until(lambda: len(lines()) == len(with_profile), timeout=30,
                       what=f"{len(with_profile)} distinct lines in the {PROFILE} chart (seen {len(lines())})")
            for d in lines():
                assert d.startswith("M") and "L" in d, f"an empty profile line: d={d!r}"
            card.scroll_into_view_if_needed()
            screenshot(page, "mlflow-ui-profile-chart.png")
            charted = time.monotonic()

            # --- 3. the study report inside MLflow: every embedded figure loaded ---------------------------
            page.goto(report_link)
            close_assistant(page)
            frame = page.frame_locator("iframe").first
            expect(frame.get_by_role("heading", name=f"Study {STUDY}")).to_be_visible()
            images = frame.locator("img")
            expect(images).to_have_count(n_figures)
            wait_until(lambda: all(img.evaluate("e => e.complete && e.naturalWidth > 0") for img in images.all()),
                       timeout=UI_TIMEOUT_MS / 1000, what="every figure of the report loaded inside MLflow")
            screenshot(page, "mlflow-ui-report.png")

            # --- 4. the parent run opens on the study's summary -----------------------------------------------
            page.goto(f"{base}/#/experiments/{exp_id}/runs/{parent.info.run_id}")
            close_assistant(page)
            expect(page.get_by_text(f"Study {STUDY}", exact=True).first).to_be_visible()
            expect(page.get_by_text("Best trial", exact=False).first).to_be_visible()
            screenshot(page, "mlflow-ui-study-description.png")
            reported = time.monotonic()

            # --- 5. a child run's Artifacts view shows the gradient profile as an image ---------------------
            page.goto(f"{base}/#/experiments/{exp_id}/runs/{child.info.run_id}/artifacts/{CHART}")
            close_assistant(page)
            expect(page.get_by_text(CHART, exact=True).first).to_be_visible()
            loaded = ("e => e.complete && e.naturalWidth > 0 && "
                      f"e.naturalWidth === {width} && e.naturalHeight === {height}")
            image = page.locator("img").filter(visible=True)
            wait_until(lambda: any(img.evaluate(loaded) for img in image.all()), timeout=UI_TIMEOUT_MS / 1000,
                       what=f"a loaded {width}×{height} <img> of {CHART} in the Artifacts view of "
                            f"{child.info.run_name}")
            screenshot(page, "mlflow-ui-gradient-chart.png")
        finally:
            browser.close()
    done = time.monotonic()
    print(f"timings: study {ran - started:.1f} s, UI up {served - ran:.1f} s, trials page {listed - served:.1f} s, "
          f"profile chart {charted - listed:.1f} s, report and description {reported - charted:.1f} s, "
          f"artifact {done - reported:.1f} s; total {done - started:.1f} s")
