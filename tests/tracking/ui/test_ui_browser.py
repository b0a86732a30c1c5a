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

URLs of MLflow 3.17: the runs page is `#/experiments/<id>/runs?…` (tracking/ui/links.py); a run is
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

from testkit import tiny
from testkit.processes import REPO, wait_until

CHROMIUM = Path("/usr/bin/chromium")
# As root, in a container, on a closed network: no sandbox, no GPU, and none of Chromium's background
# connections (they pile up when nothing answers). Playwright gives it a fresh profile (user_data_dir).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
ARTIFACTS = REPO / "test-artifacts"
STUDY = "browser"
TINY = [*tiny.TINY, "study.n_trials=3", f"study.name={STUDY}", "tracking.enabled=true",
        "tracking.trial_figures_min_s=0"]
CHART = "gradient_profile.png"
PROFILE = "profile/log10_grad_h_by_steps_back"
PROFILE_BY_K = PROFILE
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


# MLflow 3.17 opens its assistant panel on a first visit to a loopback host unless this localStorage key says
# it did already (no server setting or URL parameter keeps it closed); set before each page's scripts run
ASSISTANT_SEEN = ("window.localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');")


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


def serve(drivers, study: str) -> tuple[str, str, str]:
    """`gradstudy ui STUDY` on a free port: (its address, the trials link and the report link it prints)."""
    port = free_port()
    ui = drivers.start(["ui", study, "--port", str(port)])
    wait_until(lambda: "trials: " in ui.stdout(), timeout=120, what=f"`gradstudy ui {study}` printing its link",
               interval=0.5, proc=ui)
    return (f"http://127.0.0.1:{port}", re.search(r"trials: (\S+)", ui.stdout()).group(1),
            re.search(r"report: (\S+)", ui.stdout()).group(1))


def open_chromium(pw, tmp_path):
    """A fresh Chromium profile at 1600×1000 (no saved MLflow UI state) whose pages start with the
    assistant panel marked as seen."""
    browser = pw.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
        args=CHROMIUM_FLAGS, viewport={"width": 1600, "height": 1000})
    browser.add_init_script(ASSISTANT_SEEN)
    return browser


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

    base, trials_link, report_link = serve(drivers, STUDY)
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
        browser = open_chromium(pw, tmp_path)
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
            expect(page.get_by_role("link", name="open the study report")).to_be_visible()   # its first lines
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


# --- a study at the size researchers run: > 100 trials of three lengths, measured at initialization -----------
BIG = "atscale"
LENGTHS = (10, 20, 40)
N_BIG = 105                      # more than MLflow's page of 100 runs
WAITS_FOR_LINES = (60, 150)      # seconds for the profile chart's 100 lines, each time the chart view is opened
MIXED = ["experiment=init_phase", "model.hidden_size=8", "task.test_size=16", "task.val_size=8",
         f"++search.params={{task.seq_len: 'choice({', '.join(map(str, LENGTHS))})'}}", f"study.n_trials={N_BIG}",
         f"study.name={BIG}", "cluster.num_cpus=2"]


def poll(predicate, timeout: float, interval: float = 0.5) -> bool:
    """Whether `predicate` becomes true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def line_strokes(card) -> dict[str, str]:
    """path d → stroke colour of a chart card's lines."""
    pairs = card.locator("path.js-line").evaluate_all(
        "els => els.map(e => [e.getAttribute('d') || '', "
        "(e.getAttribute('style') || '') + (e.getAttribute('stroke') || '')])")
    return dict(pairs)      # one call: the chart redraws its lines while it loads


@pytest.mark.browser
@pytest.mark.mlflow_server
@pytest.mark.timeout(600)
def test_a_study_of_over_100_mixed_length_trials_reads_right_in_mlflow(drivers, ray_session, tmp_path, monkeypatch):
    """init_phase-like: 105 trials, T ∈ {10, 20, 40}, train.steps=0. Sorted by the decay rate (not the
    untrained loss), columns in the seeded order with health and decay rate on screen, profiles keyed by
    steps back and coloured by T, every trial described and linked in the training view, the study's head
    lines with the report link, the report's trial links harmless inside MLflow's sandbox."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the `test` extra: make setup")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    from study import cli
    from tracking.ui.run_look import LENGTH_COLOURS

    started = time.monotonic()
    assert cli.main(["run", *MIXED]) == 0
    ran = time.monotonic()
    base, trials_link, report_link = serve(drivers, BIG)

    client = MlflowClient(tracking_uri=base)
    exp_id = client.get_experiment_by_name(f"gradstudy/{BIG}").experiment_id
    runs = client.search_runs([exp_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("gradstudy.role") == "study")
    trials = [r for r in runs if r.data.tags.get("gradstudy.role") == "trial"]
    assert len(trials) == N_BIG
    colour_of = {length: LENGTH_COLOURS[i][0] for i, length in enumerate(LENGTHS)}
    for run in trials:
        length = int(run.data.params["task.seq_len"])
        assert run.data.tags["mlflow.runColor"] == colour_of[length], (run.info.run_name, run.data.tags)   # by T
        note = run.data.tags["mlflow.note.content"]
        assert note.startswith(f"**{run.data.tags['gradstudy.health']}** over "), note
        assert f"[← all trials of study {BIG}](#/experiments/{exp_id}/runs?" in note, note
        shown = re.search(r"λ1₀=(\S+) T=\d+$", run.info.run_name)              # λ1 to 3 digits, T in view
        assert shown and float(shown.group(1)) == float(f"{float(shown.group(1)):.3g}"), run.info.run_name
    rates = {r.info.run_id: r.data.metrics.get("grad/decay_rate") for r in trials}
    steepest_up = max((rid for rid in rates if rates[rid] is not None), key=lambda rid: rates[rid])
    assert client.get_experiment(exp_id).tags["mlflow.note.content"].startswith(f"**{N_BIG} of {N_BIG} trials**")

    expect = sync_api.expect
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_api.sync_playwright() as pw:
        browser = open_chromium(pw, tmp_path)
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            # --- the landing table: sorted by the decay rate, health and decay rate columns on screen -------
            page.goto(trials_link)
            close_assistant(page)
            wait_until(lambda: (row_ids_in_order(page) or [None])[0] == steepest_up, timeout=60,
                       what="the most exploding-per-step trial (the largest grad/decay_rate) first")
            grid = page.locator(".ag-root-wrapper").first.bounding_box()
            left = {}
            for header in ("model.init_gain", "task.seq_len", "gradstudy.health", "grad/decay_rate"):
                cell = page.locator("[role=columnheader]").filter(has_text=header).first
                expect(cell).to_be_visible()
                box = cell.bounding_box()
                assert box and box["x"] + box["width"] <= grid["x"] + grid["width"] + 1, \
                    f"the {header} column is off-screen at 1600 px: {box}, the table ends at {grid}"
                left[header] = box["x"]
            # the seeded order (MLflow's own: metrics, params, tags): sampled keys, then health, then the rate
            assert list(left) == sorted(left, key=left.get), left
            screenshot(page, "mlflow-ui-atscale-table.png")
            # --- "Load more" reaches the rest (MLflow loads 100 runs a page; 3.17 has no setting for it) -----
            page.get_by_role("button", name="Load more").click()
            expect(page.get_by_text(f"{N_BIG} matching runs")).to_be_visible()

            # --- the profile chart: keyed by steps back, one line per trial, coloured by T ------------------
            charts = trials_link.replace("compareRunsMode=TABLE", "compareRunsMode=CHART")

            def open_charts(title_timeout_ms: int):
                page.goto(charts)
                close_assistant(page)
                title = page.get_by_text(PROFILE_BY_K, exact=True).first
                title.wait_for(timeout=title_timeout_ms)
                return page.locator("div").filter(has=title).filter(has=page.locator("path.js-line")).last

            card = open_charts(UI_TIMEOUT_MS)
            # MLflow draws 100 lazily fetched histories: 41 s for the whole test alone, but under the full suite's
            # load on 2 cores the chart stayed empty for minutes in some runs (a history fetch that failed is not
            # fetched again). So the link is opened again, as a person would; not page.reload(): once the page has
            # applied the shared view it rewrites its own address (every filter spelled out), and after such a reload
            # the chart's title did not come back within 60 s (CI, 2026-12-06) nor 180 s (a fresh clone's suite,
            # 2026-12-07). Each wait that runs out leaves a screenshot and the page's address behind.
            # (lines are counted as drawn, not by their distinct paths: two trials with one profile draw one path twice)
            for attempt, wait_s in enumerate(WAITS_FOR_LINES):
                if poll(lambda: card.locator("path.js-line").count() >= 100, wait_s):
                    break
                screenshot(page, f"mlflow-ui-atscale-profiles-waiting-{attempt}.png")
                print(f"after {wait_s} s: {card.locator('path.js-line').count()} profile lines at {page.url}")
                if attempt + 1 < len(WAITS_FOR_LINES):
                    card = open_charts(3 * UI_TIMEOUT_MS)
            else:
                pytest.fail(f"fewer than 100 profile lines after opening the chart view {len(WAITS_FOR_LINES)} times")
            strokes = " ".join(line_strokes(card).values()).lower()
            hexes = {h.lower() for h, _ in LENGTH_COLOURS[:len(LENGTHS)]}
            rgb = {f"rgb({int(h[1:3], 16)}, {int(h[3:5], 16)}, {int(h[5:7], 16)})" for h in hexes}
            assert sum(1 for c in hexes | rgb if c in strokes) >= len(LENGTHS), strokes[:500]
            card.scroll_into_view_if_needed()
            screenshot(page, "mlflow-ui-atscale-profiles.png")

            # --- a trial's page through the link gradstudy wrote (the study's best trial): its description,
            # the training view's breadcrumb ------------------------------------------------------------------
            best_link = re.search(r"\*\*Best trial\*\*[^\[]*\[[^\]]+\]\((#/experiments/[^)]+)\)",
                                  parent.data.tags["mlflow.note.content"]).group(1)
            page.goto(f"{base}/{best_link}")
            close_assistant(page)
            expect(page.get_by_text("λ1", exact=False).first).to_be_visible()
            expect(page.get_by_role("link", name=f"← all trials of study {BIG}")).to_be_visible()
            expect(page.get_by_role("link", name="Evaluations")).to_have_count(0)
            expect(page.get_by_role("link", name="Runs", exact=True).first).to_be_visible()
            screenshot(page, "mlflow-ui-atscale-trial.png")

            # --- the study's run: its head lines name the counts and link the report ------------------------
            page.goto(f"{base}/#/experiments/{exp_id}/runs/{parent.info.run_id}?workflowType=machine_learning")
            close_assistant(page)
            expect(page.get_by_role("link", name="open the study report")).to_be_visible()
            screenshot(page, "mlflow-ui-atscale-study.png")

            # --- the report inside MLflow: a left click on a trial number keeps the page and says where -----
            page.goto(report_link)                              # as `gradstudy ui` printed it
            close_assistant(page)
            frame = page.frame_locator("iframe").first
            expect(frame.get_by_role("heading", name=f"Study {BIG}")).to_be_visible()
            frame.locator("a.run").first.click()
            expect(frame.locator("#run-link-box")).to_contain_text("Open link in new tab")
            expect(frame.get_by_role("heading", name=f"Study {BIG}")).to_be_visible()     # not blanked
            screenshot(page, "mlflow-ui-atscale-report-click.png")
        finally:
            browser.close()
    print(f"timings: study {ran - started:.1f} s, browser {time.monotonic() - ran:.1f} s")
