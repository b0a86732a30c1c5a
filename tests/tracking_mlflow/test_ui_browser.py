"""The MLflow UI of a finished study, seen in a real browser: headless Chromium (Debian's package, put
there by `make browser` / scripts/install-browser) driven by Playwright — no browser download.

A tiny 3-trial study runs through the `gradstudy` CLI, `gradstudy ui` serves the local store, and the
browser checks that
  1. the experiment's runs page shows the study's parent run and, once its row is expanded, every child
     run (trial-0000 …), each linking to its own run;
  2. a child run's Artifacts view shows `gradient_profile.png` as a loaded image of the logged PNG's size;
  3. (soft: a warning, not a failure) its Model metrics tab draws a `grad/vanishing_ratio` line chart.
Screenshots go to test-artifacts/ at the repo root (git-ignored); their paths are printed.

URLs of MLflow 3.17: `#/experiments/<id>` alone opens the GenAI overview (traces), so the runs table is at
`#/experiments/<id>/runs`; a run is `#/experiments/<id>/runs/<run_id>`, its tabs `/artifacts/<path>`
and `/model-metrics`.
"""
from __future__ import annotations

import socket
import struct
import time
import urllib.request
import warnings
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
METRIC = "grad/vanishing_ratio"
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


@pytest.mark.browser
@pytest.mark.mlflow_server
def test_mlflow_ui_shows_child_runs_and_gradient_chart(drivers, tmp_path, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the `test` extra: make setup")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    started = time.monotonic()
    # --- a finished study, then the UI on its store ---------------------------------------------------
    study = drivers.run(["run", *TINY], timeout=200)
    assert study.returncode == 0, study.output()
    ran = time.monotonic()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ui = drivers.start(["ui", "--port", str(port)])
    wait_until(lambda: answers(f"{base}/health"), timeout=120, what=f"`gradstudy ui` answering on {base}",
               interval=0.5, proc=ui)
    served = time.monotonic()

    client = MlflowClient(tracking_uri=base)          # through the UI's own server: the same store
    experiment = client.get_experiment_by_name(f"gradstudy/{STUDY}")
    assert experiment is not None, [e.name for e in client.search_experiments()]
    exp_id = experiment.experiment_id
    runs = client.search_runs([exp_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("gradstudy.role") == "study"]
    assert len(parents) == 1, [(r.info.run_name, r.data.tags) for r in runs]
    parent = parents[0]
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                      key=lambda r: r.info.run_name)
    assert [r.info.run_name for r in children] == ["trial-0000", "trial-0001", "trial-0002"], \
        [(r.info.run_name, r.data.tags) for r in runs]
    # the child whose chart is checked: the first that has the figure and the metric (a diverged trial
    # may lack the metric)
    with_chart = [r for r in children if any(a.path == CHART for a in client.list_artifacts(r.info.run_id))]
    assert with_chart, f"no child run has {CHART}"
    child = next((r for r in with_chart if METRIC in r.data.metrics), with_chart[0])
    width, height = png_size(Path(client.download_artifacts(child.info.run_id, CHART, str(tmp_path))))

    expect = sync_api.expect
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1600, "height": 1000})
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)

            # --- 1. the runs table: the parent, expanded, shows every child --------------------------
            page.goto(f"{base}/#/experiments/{exp_id}/runs")
            parent_row = page.locator(f'[role=row][row-id="{parent.info.run_id}"]')
            parent_row.first.wait_for()
            close_assistant(page)
            expect(run_link(page, parent)).to_have_text(STUDY)
            if not run_link(page, children[0]).is_visible():
                # MLflow nests child runs under their parent's row, collapsed: its expander button
                parent_row.locator('button[data-component-id*="runnamecellrenderer"]').click()
            for run in children:
                expect(run_link(page, run)).to_be_visible()
                expect(run_link(page, run)).to_have_text(run.info.run_name)
            screenshot(page, "mlflow-ui-runs.png")
            listed = time.monotonic()

            # --- 2. a child run's Artifacts view shows the gradient profile as an image --------------
            run_link(page, child).click()
            expect(page.get_by_role("heading", name=child.info.run_name)).to_be_visible()
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
            charted = time.monotonic()

            # --- 3. soft: the Model metrics tab draws grad/vanishing_ratio ---------------------------
            if METRIC in child.data.metrics:
                try:
                    page.goto(f"{base}/#/experiments/{exp_id}/runs/{child.info.run_id}/model-metrics")
                    close_assistant(page)
                    page.get_by_placeholder("Search metric charts").fill(METRIC)
                    legend = page.get_by_text(f"{child.info.run_name} ({METRIC})", exact=True)
                    # the innermost element holding the legend and a drawn line (Plotly): the chart's card
                    card = page.locator("div").filter(has=legend).filter(has=page.locator("path.js-line")).last
                    card.wait_for(timeout=30_000)
                    line = card.locator("path.js-line").first.get_attribute("d") or ""
                    assert line.startswith("M") and "L" in line, f"no line drawn for {METRIC}: d={line!r}"
                    screenshot(page, "mlflow-ui-vanishing-ratio.png")
                except (sync_api.Error, AssertionError) as exc:
                    warnings.warn(f"the {METRIC} chart of {child.info.run_name} was not seen in the Model "
                                  f"metrics tab: {str(exc).splitlines()[0]}")
        finally:
            browser.close()
    done = time.monotonic()
    print(f"timings: study {ran - started:.1f} s, UI up {served - ran:.1f} s, runs page {listed - served:.1f} s, "
          f"gradient chart {charted - listed:.1f} s, metric chart {done - charted:.1f} s; "
          f"total {done - started:.1f} s")
