"""The tracking artifacts: per-trial figures and CSVs (`tracking/figures/trial_plots.py`) and the study report
(`study/report/page.py`). Real matplotlib output, real Optuna studies (in memory), and one real trial summary
from `workers.trial.run_trial` on a tiny config (CPU). No mocks."""
from __future__ import annotations

import base64
import copy
import csv
import math
import re
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from study.records.trials import best_per_cell, state_counts
from study.report.page import FILES, write_study_report
from testkit.tiny import tiny_trial_config
from tracking.figures import trial_plots as plots
from workers.config import Init, TrialConfig
from workers.trial import run_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GAIN = FloatDistribution(0.25, 4.0, log=True)
ACT = CategoricalDistribution(("tanh", "relu", "linear"))
CELL = CategoricalDistribution(("rnn", "lstm", "gru"))
LR = FloatDistribution(1e-4, 1e-1, log=True)


def assert_png(path: Path) -> None:
    path = Path(path)
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 1024, (path, len(data))


def embedded_images(page: str) -> dict[str, bytes]:
    """The figures a page holds: data-file name → the PNG bytes of its data URI."""
    found = {}
    for tag in re.findall(r"<img [^>]*>", page):
        src, file = re.search(r'src="([^"]+)"', tag).group(1), re.search(r'data-file="([^"]+)"', tag).group(1)
        assert src.startswith("data:image/png;base64,"), (file, src[:40])
        found[file] = base64.b64decode(src.split(",", 1)[1])
    return found


def check_report(folder: Path, page_path: Path) -> str:
    """Every figure is embedded (the page reads the same from disk and in MLflow's sandboxed viewer), is a
    real PNG and is also kept beside the page; the only links are to MLflow runs."""
    assert page_path == folder / "report.html" and page_path.is_file()
    page = page_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for file, data in embedded_images(page).items():
        assert data[:8] == PNG_MAGIC and len(data) > 1024, file
        assert (folder / file).read_bytes() == data, file
    for link in re.findall(r'href="([^"]+)"', page):
        assert re.fullmatch(r"https?://[^/]+/#/experiments/\w+/runs/\w+\?workflowType=machine_learning", link), link
    return page


# --- a real summary ---------------------------------------------------------------------------------------
def tiny_cfg(layers: int = 2) -> TrialConfig:
    """The tiny trial (testkit.tiny) with `layers` layers at λ1 = 0.8, T = 12, 12 steps in batches of 8."""
    return tiny_trial_config(task__seq_len=12, model__layers=layers, model__init=Init.scaled, model__init_gain=0.8,
                             train__steps=12, train__batch_size=8, train__log_every=5)


@pytest.fixture(scope="module")
def summary() -> dict:
    return run_trial(tiny_cfg())


def test_summary_shape(summary):
    assert [p["step"] for p in summary["probes"]] == [0, 5, 10, 11]
    assert all(len(p["grad_h_norms"]) == 2 and len(p["grad_h_norms"][0]) == 12 for p in summary["probes"])


# --- per-trial figures and tables -------------------------------------------------------------------------
def test_figures_from_a_real_summary(summary, tmp_path):
    profile = plots.gradient_profile(summary, tmp_path / "profile.png")
    heatmap = plots.gradient_heatmap(summary, tmp_path / "sub" / "heatmap.png")
    assert profile == tmp_path / "profile.png" and heatmap == tmp_path / "sub" / "heatmap.png"
    assert_png(profile)
    assert_png(heatmap)


def test_probe_table_is_long_format(summary, tmp_path):
    path = plots.probe_table(summary, tmp_path / "probes.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    probes, layers, length = len(summary["probes"]), 2, 12
    assert len(rows) == probes * layers * length
    assert list(rows[0]) == ["step", "layer", "t", "grad_h_log10", "grad_h_norm"]
    assert {r["layer"] for r in rows} == {"0", "1"}
    assert {int(r["t"]) for r in rows} == set(range(1, length + 1))
    assert {int(r["step"]) for r in rows} == {p["step"] for p in summary["probes"]}
    last = summary["probes"][-1]
    top_t1 = next(r for r in rows if int(r["step"]) == last["step"] and r["layer"] == "1" and r["t"] == "1")
    assert float(top_t1["grad_h_norm"]) == pytest.approx(last["grad_h_norms"][1][0])
    assert float(top_t1["grad_h_log10"]) == pytest.approx(last["grad_h_log10"][1][0])
    assert float(top_t1["grad_h_log10"]) == pytest.approx(math.log10(last["grad_h_norms"][1][0]), abs=1e-5)


def test_probe_scalars(summary, tmp_path):
    path = plots.probe_scalars(summary, tmp_path / "scalars.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(summary["probes"])
    assert list(rows[0]) == ["step", "vanishing_ratio", "decay_rate", "horizon", "global_norm", "clipped", "health",
                             "val_loss",
                             "lambda1_0", "lambda1_1", "spectral_radius_0", "spectral_radius_1"]
    for row, probe in zip(rows, summary["probes"]):
        assert int(row["step"]) == probe["step"]
        assert row["health"] == probe["health"]
        assert float(row["lambda1_1"]) == pytest.approx(probe["lambda1"][1])
        assert float(row["vanishing_ratio"]) == pytest.approx(probe["vanishing_ratio"])
        assert float(row["decay_rate"]) == pytest.approx(probe["decay_rate"])
        assert row["clipped"] in ("0", "1")
    assert float(rows[0]["lambda1_0"]) == pytest.approx(0.8, rel=1e-6)   # scaled init: λ1 = init_gain


def test_degenerate_summaries(summary, tmp_path):
    """Nulls, zeros, infinities, a single probe and no probes at all: files still come out."""
    broken = copy.deepcopy(summary)
    broken["probes"] = broken["probes"][:2]
    top = broken["probes"][0]["grad_h_norms"][-1]
    top[0], top[1], top[2] = None, 0.0, -1.0
    broken["probes"][1]["grad_h_norms"][-1] = [None] * len(top)     # underflow/overflow everywhere
    for probe in broken["probes"]:                                  # a summary from before grad_h_log10
        probe.pop("grad_h_log10")
    broken["probes"][1]["lambda1"] = [None]                         # shorter than the layers
    broken["probes"][1]["vanishing_ratio"] = None
    broken["health"] = "diverged"
    for name, s in {"broken": broken,
                    "single": {**summary, "probes": summary["probes"][-1:]},
                    "empty": {**summary, "probes": []},
                    "bare": {"health": "healthy"},
                    "inf": {**summary, "probes": [{**summary["probes"][0],
                                                   "grad_h_norms": [[math.inf, math.nan, 1.0]]}]}}.items():
        assert_png(plots.gradient_profile(s, tmp_path / f"{name}_profile.png"))
        assert_png(plots.gradient_heatmap(s, tmp_path / f"{name}_heatmap.png"))
        plots.probe_table(s, tmp_path / f"{name}.csv")
        plots.probe_scalars(s, tmp_path / f"{name}_scalars.csv")
    with (tmp_path / "broken.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 12
    assert rows[12]["grad_h_norm"] == ""            # probe 0, top layer, t = 1 was null
    with (tmp_path / "broken_scalars.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["vanishing_ratio"] == "" and rows[1]["lambda1_0"] == "" and rows[1]["lambda1_1"] == ""
    with (tmp_path / "empty.csv").open() as f:
        assert list(csv.reader(f)) == [["step", "layer", "t", "grad_h_log10", "grad_h_norm"]]


def test_a_5000_step_heatmap_is_binned_and_a_deep_profile_is_drawn(tmp_path):
    """Long horizons: 5000 timesteps become at most MAX_COLUMNS bins; values far below the float range
    (here down to −1500 decades) are drawn from grad_h_log10."""
    length = 5000
    probes = [{"step": s, "grad_h_log10": [[-0.3 * (length - t) * (1 + s / 100) for t in range(1, length + 1)]]}
              for s in (0, 100, 200)]
    summary = {"health": "vanishing", "probes": probes}
    grid = np.array([p["grad_h_log10"][0] for p in probes])
    binned, edges, width = plots._binned(grid)
    assert width == 10 and binned.shape == (3, plots.MAX_COLUMNS) and edges[-1] == length + 0.5
    assert binned[0, 0] == pytest.approx(np.mean(grid[0, :10]))
    assert_png(plots.gradient_heatmap(summary, tmp_path / "long_heatmap.png"))
    assert_png(plots.gradient_profile(summary, tmp_path / "long_profile.png"))


# --- studies --------------------------------------------------------------------------------------------
def structured(spec: dict[str, str]) -> dict[str, dict]:
    """A search space as the study stores it (StudyAttr.SEARCH): plain values are fixed."""
    return {k: {"expression": v, "fixed": "(" not in v, "condition": None} for k, v in spec.items()}


def attrs(health: str, cell: str = "rnn", ratio: float | None = 0.0, loss: float | None = 0.2,
          **extra) -> dict:
    return {"gradstudy.health": health, "gradstudy.cell": cell, "gradstudy.vanishing_ratio": ratio,
            "gradstudy.status": "completed", **extra,
            "gradstudy.final": {"test_loss": loss, "baseline_loss": 0.167}}


def phase_study() -> optuna.Study:
    """The wrec_phase picture: λ1 × activation, with diverged (+inf), pruned, failed and requeued trials."""
    study = optuna.create_study(study_name="phase <&>", direction="minimize")
    study.set_user_attr("gradstudy.objectives", ["final.test_loss"])
    study.set_user_attr("gradstudy.search", structured({"model.init": "scaled",
                                             "model.init_gain": "tag(log, interval(0.25, 4.0))",
                                             "model.activation": "choice(tanh, relu, linear)"}))
    dists = {"model.init_gain": GAIN, "model.activation": ACT}
    rows = [(0.3, "tanh", 0.17, -8.0, "vanishing"), (1.0, "tanh", 0.12, -1.0, "healthy"),
            (3.0, "tanh", 0.16, 0.5, "healthy"), (0.5, "relu", 0.17, -5.0, "vanishing"),
            (2.5, "relu", math.inf, None, "diverged"), (0.4, "linear", 0.2, -12.0, "vanishing"),
            (3.5, "linear", 4e13, 9.0, "exploding"), (1.2, "linear", 0.15, 0.7, "healthy")]
    for gain, act, value, ratio, health in rows:
        study.add_trial(create_trial(params={"model.init_gain": gain, "model.activation": act}, distributions=dists,
                                     value=value, user_attrs=attrs(health, ratio=ratio,
                                                                   loss=value if math.isfinite(value) else None)))
    study.add_trial(create_trial(params={"model.init_gain": 0.7, "model.activation": "relu"}, distributions=dists,
                                 state=TrialState.PRUNED, user_attrs=attrs("vanishing", ratio=-4.0, loss=0.18)))
    study.add_trial(create_trial(params={"model.init_gain": 0.9, "model.activation": "tanh"}, distributions=dists,
                                 state=TrialState.FAIL, user_attrs={"gradstudy.requeued": True}))
    study.add_trial(create_trial(params={"model.init_gain": 0.9, "model.activation": "tanh"}, distributions=dists,
                                 state=TrialState.FAIL, user_attrs={"gradstudy.fail_reason": "<oom>"}))
    return study


def cells_study() -> optuna.Study:
    """Three cells with conditional params; the best per cell is known."""
    study = optuna.create_study(study_name="cells", direction="minimize")
    values = [("rnn", 0.30), ("lstm", 0.10), ("gru", 0.25), ("rnn", 0.20), ("lstm", 0.05), ("gru", math.inf),
              ("rnn", math.inf), ("gru", 0.25), ("lstm", 0.07)]
    for i, (cell, value) in enumerate(values):
        params = {"model.cell": cell, "train.lr": 10 ** (-3 + 0.2 * i)}
        dists = {"model.cell": CELL, "train.lr": LR}
        if cell == "rnn":
            params["model.activation"], dists["model.activation"] = ("tanh", "relu")[i % 2], ACT
        study.add_trial(create_trial(params=params, distributions=dists, value=value,
                                     user_attrs=attrs("diverged" if math.isinf(value) else "healthy", cell=cell)))
    return study


EXPECTED_BEST = {"gru": 2, "lstm": 4, "rnn": 3}   # gru: 0.25 at trials 2 and 7 -> the first


def best_rows(page: str) -> dict[str, int]:
    rows = re.findall(r'<tr class="best" data-cell="([^"]*)" data-trial="(\d+)">', page)
    cells = [c for c, _ in rows]
    assert len(cells) == len(set(cells)), "a cell listed twice"
    return {c: int(n) for c, n in rows}


def test_phase_study_report(tmp_path):
    study = phase_study()
    page = check_report(tmp_path, write_study_report(study, tmp_path))
    for key in ("health", "history", "importances", "phase"):
        assert f'data-file="{FILES[key]}"' in page, key
    assert "phase &lt;&amp;&gt;" in page and "phase <&>" not in page
    assert best_rows(page) == {"rnn": 1}
    counts = state_counts(study.trials)
    assert counts == {"COMPLETE": 8, "PRUNED": 1, "FAIL": 1, "REQUEUED": 1, "RUNNING": 0, "WAITING": 0}
    for state, n in counts.items():
        assert f'data-state="{state}">{n}<' in page


def test_phase_diagram_of_an_init_phase_study_reads_decay_rates_and_lengths(tmp_path):
    """The init_phase picture: λ1 × activation × T, with the decay rate that does not depend on T."""
    from study.report.data import phase_records
    study = optuna.create_study(study_name="init_phase", direction="minimize")
    study.set_user_attr("gradstudy.search", structured({"model.init": "scaled", "task.seq_len": "choice(100, 1000)",
                                             "model.init_gain": "tag(log, interval(0.25, 4.0))",
                                             "model.activation": "choice(tanh, relu, linear)"}))
    lengths = optuna.distributions.CategoricalDistribution([100, 1000])
    dists = {"model.init_gain": GAIN, "model.activation": ACT, "task.seq_len": lengths}
    for gain in (0.3, 0.6):
        for length in (100, 1000):
            rate = math.log10(gain) - 0.1
            study.add_trial(create_trial(
                params={"model.init_gain": gain, "model.activation": "tanh", "task.seq_len": length},
                distributions=dists, value=0.2,
                user_attrs=attrs("vanishing", ratio=rate * (length - 1), **{"gradstudy.decay_rate": rate})))
    records = phase_records(study, study.trials, {})
    assert sorted((r["lambda1"], r["T"]) for r in records) == [(0.3, 100), (0.3, 1000), (0.6, 100), (0.6, 1000)]
    assert all(r["rate"] == pytest.approx(math.log10(r["lambda1"]) - 0.1) for r in records)
    assert all(r["ratio"] == pytest.approx(r["rate"] * (r["T"] - 1)) for r in records)
    page = write_study_report(study, tmp_path).read_text()
    assert "decay rate" in page
    assert_png(tmp_path / FILES["phase"])


def test_a_study_that_mixes_lengths_is_ranked_by_decay_rate(tmp_path):
    """T ∈ {100, 1000}: the objective and the verdict grow with T, the decay rate does not; the best trial
    per cell is the flattest gradient (smallest |decay rate|), not the lowest loss, and the page says so."""
    study = optuna.create_study(study_name="mixed", direction="minimize")
    study.set_user_attr("gradstudy.objectives", ["final.test_loss"])
    lengths = CategoricalDistribution([100, 1000])
    dists = {"model.init_gain": GAIN, "task.seq_len": lengths}
    #          gain, T,    loss, rate,   health
    rows = [(0.5, 100, 0.10, -0.30, "vanishing"), (1.0, 1000, 0.17, -0.02, "vanishing"),
            (2.0, 100, 0.16, 0.05, "healthy"), (0.8, 1000, 0.15, None, "vanishing")]
    for gain, length, loss, rate, health in rows:
        study.add_trial(create_trial(
            params={"model.init_gain": gain, "task.seq_len": length}, distributions=dists, value=loss,
            user_attrs=attrs(health, loss=loss, **{"gradstudy.decay_rate": rate, "gradstudy.seq_len": length,
                                                   "gradstudy.span": length})))
    from study.report import length_mix
    assert length_mix.mixes_lengths(study.trials) and not length_mix.mixes_lengths(study.trials[:1])
    assert {c: t.number for c, t in length_mix.best_per_cell(study.trials).items()} == {"rnn": 1}
    assert best_per_cell(study)["rnn"].number == 0                  # by the objective, which depends on T
    page = check_report(tmp_path, write_study_report(study, tmp_path))
    assert best_rows(page) == {"rnn": 1}
    assert "ranked by |decay_rate|" in page and "<th>decay rate</th>" in page
    assert '<td>vanishing</td><td class="num" data-span="1000">1000</td><td class="num">-0.02</td>' in page
    assert "span in this study: 100, 1000 steps" in page
    assert_png(tmp_path / FILES["phase"])
    assert_png(tmp_path / FILES["history"])


def test_decay_rate_colours_come_in_a_few_steps():
    """The figures draw one scatter per colour (plots.grouped): a colour per trial made the report of a
    3000-trial mixed-length study 3.5× slower (bench/bench_report_scale.py --mixed-lengths). The scale has
    LEVELS steps, its ends at ±limit, 0 in the middle step, unknown rates grey."""
    from study.report import length_mix
    rates = [-0.5 + i / 1000 for i in range(1001)]            # 1001 distinct rates in [−0.5, 0.5]
    colours = [length_mix.rate_colour(r, 0.5) for r in rates]
    assert len(set(colours)) == length_mix.LEVELS
    assert colours[0] != colours[-1] and length_mix.rate_colour(0.0, 0.5) == colours[500]
    assert length_mix.rate_colour(-9.0, 0.5) == colours[0] and length_mix.rate_colour(None, 0.5) == "#7f7f7f"


def test_best_per_cell(tmp_path):
    study = cells_study()
    assert {c: t.number for c, t in best_per_cell(study).items()} == EXPECTED_BEST
    page = check_report(tmp_path, write_study_report(study, tmp_path))
    assert best_rows(page) == EXPECTED_BEST
    # no λ1 in this study: the "phase" figure falls back to the two leading parameters
    assert f'data-file="{FILES["phase"]}"' in page and "λ1" not in page.split("Phase diagram")[1]


def test_maximize_ranks_the_other_way(tmp_path):
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.9, -math.inf, 0.7):
        study.add_trial(create_trial(params={"train.lr": 0.01}, distributions={"train.lr": LR}, value=value,
                                     user_attrs=attrs("healthy")))
    assert best_per_cell(study)["rnn"].number == 1
    assert best_rows(check_report(tmp_path, write_study_report(study, tmp_path))) == {"rnn": 1}


def test_report_with_a_real_summary(summary, tmp_path):
    """A study whose one trial is the real run: the phase diagram reads λ1 from the summary's config
    (init_gain is not a param), and the best trial's gradient profile is drawn from the summary."""
    study = optuna.create_study(study_name="real", direction="minimize")
    last = summary["probes"][-1]
    study.add_trial(create_trial(
        params={"train.lr": 1e-3}, distributions={"train.lr": LR}, value=summary["final"]["test_loss"],
        user_attrs={"gradstudy.health": summary["health"], "gradstudy.cell": summary["config"]["model"]["cell"],
                    "gradstudy.final": summary["final"], "gradstudy.status": summary["status"],
                    "gradstudy.vanishing_ratio": last["vanishing_ratio"]}))
    page = check_report(tmp_path, write_study_report(study, tmp_path, summaries={0: summary}))
    assert f'data-file="{FILES["phase"]}"' in page
    # the verdict with the span it judged (from the summary: this trial carries no gradstudy.span)
    assert f'<td>{summary["health"]}</td><td class="num" data-span="12">12</td>' in page
    assert "span in this study: 12 steps" in page
    assert "ranked by |decay_rate|" not in page                  # one sequence length
    assert 'data-file="profile_rnn_00000.png"' in page
    assert "importances not available" in page      # one trial: a note, not a figure
    assert not (tmp_path / FILES["importances"]).exists()


@pytest.mark.parametrize("kind", ["empty", "pruned_failed", "single_param", "all_inf", "no_params",
                                  "multi_objective", "constant", "running"])
def test_edge_studies(kind, tmp_path):
    dists = {"model.init_gain": GAIN}
    if kind == "multi_objective":
        study = optuna.create_study(directions=["minimize", "maximize"])
        study.set_user_attr("gradstudy.objectives", ["final.test_loss", "final.accuracy"])
    else:
        study = optuna.create_study(direction="minimize")
    if kind == "pruned_failed":
        study.add_trial(create_trial(params={"model.init_gain": 0.5}, distributions=dists, state=TrialState.PRUNED,
                                     user_attrs=attrs("vanishing", ratio=None, loss=None)))
        study.add_trial(create_trial(state=TrialState.FAIL))
    elif kind == "single_param":
        for i, v in enumerate((0.3, 0.2, math.inf)):
            study.add_trial(create_trial(params={"train.lr": 10 ** (-3 + i)}, distributions={"train.lr": LR},
                                         value=v, user_attrs=attrs("healthy")))
    elif kind == "all_inf":
        for gain in (2.0, 3.0):
            study.add_trial(create_trial(params={"model.init_gain": gain}, distributions=dists, value=math.inf,
                                         user_attrs=attrs("diverged", ratio=None, loss=None)))
    elif kind == "no_params":
        for v in (0.3, 0.2):
            study.add_trial(create_trial(value=v))
    elif kind == "multi_objective":
        for i, gain in enumerate((0.5, 1.0, 2.0)):
            study.add_trial(create_trial(params={"model.init_gain": gain, "model.activation": "tanh"},
                                         distributions={**dists, "model.activation": ACT},
                                         values=[0.2 + i / 10, math.inf if i == 2 else 0.5],
                                         user_attrs=attrs("healthy")))
    elif kind == "constant":
        for v in (0.3, 0.2):
            study.add_trial(create_trial(params={"train.lr": 0.01}, distributions={"train.lr": LR}, value=v))
    elif kind == "running":
        study.add_trial(create_trial(params={"train.lr": 0.01}, distributions={"train.lr": LR},
                                     state=TrialState.RUNNING))
    page = check_report(tmp_path, write_study_report(study, tmp_path))
    if kind in ("empty", "pruned_failed", "all_inf", "no_params", "constant", "running"):
        assert "importances not available" in page
    if kind == "empty":
        assert "<img" not in page and "no complete trials yet" in page
    if kind == "multi_objective":
        assert best_rows(page) == {"rnn": 0} and "Pareto" in page
        assert f'data-file="{FILES["history"]}"' in page and f'data-file="{FILES["phase"]}"' in page
    if kind == "single_param":
        assert f'data-file="{FILES["phase"]}"' in page


def test_rewrite_drops_stale_figures(tmp_path):
    check_report(tmp_path, write_study_report(phase_study(), tmp_path))
    assert (tmp_path / FILES["importances"]).exists()
    check_report(tmp_path, write_study_report(optuna.create_study(), tmp_path))
    assert not any(tmp_path.glob("*.png"))


def test_importances_need_enough_complete_trials():
    """fANOVA on a handful of points ranks noise: below IMPORTANCE_MIN_TRIALS finite results, a note."""
    from study.report.data import IMPORTANCE_MIN_TRIALS, importances

    study = optuna.create_study(direction="minimize")

    def add(i, value):
        study.add_trial(create_trial(params={"train.lr": 10 ** (-4 + 0.5 * i)}, distributions={"train.lr": LR},
                                     value=value))

    for i in range(IMPORTANCE_MIN_TRIALS - 1):
        add(i, 0.1 * i)
    add(IMPORTANCE_MIN_TRIALS, math.inf)             # not finite: does not count
    found, why = importances(study)
    n = IMPORTANCE_MIN_TRIALS - 1
    assert found is None and why == (f"needs at least {IMPORTANCE_MIN_TRIALS} complete trials with a "
                                     f"finite objective (has {n})"), why
    add(n, 0.1 * n)
    found, why = importances(study)
    assert why == "" and set(found) == {"train.lr"}, why


@pytest.mark.parametrize("url", ["postgresql://u:pa/ss@h/db", "postgresql://:secret@h/db",
                                 "postgresql://u:p@ss@h/db", "http://u:pw@127.0.0.1:1"])
def test_scrub_masks_every_password_form(url):
    from tracking.runs.urls import scrub

    masked = scrub(f"study.storage='{url}' and more")
    assert ":***@" in masked
    for secret in ("pa/ss", "secret", "p@ss", ":pw@"):
        if secret in url:
            assert secret not in masked


def test_trial_record_round_trips_through_user_attrs(summary):
    from study.records.attrs import TrialAttr, TrialRecord
    record = TrialRecord.from_summary(summary, "/x/summary.json")
    attrs = record.to_user_attrs()
    assert attrs[TrialAttr.HEALTH] == summary["health"] and attrs[TrialAttr.SUMMARY] == "/x/summary.json"
    assert attrs[TrialAttr.DECAY_RATE] == summary["probes"][-1]["decay_rate"]
    assert attrs[TrialAttr.SPAN] == summary["health_span"] == 12                 # adding: the whole T
    assert (attrs[TrialAttr.SPAN_RATIO] == summary["probes"][-1]["span_ratio"]
            == summary["probes"][-1]["vanishing_ratio"])
    trial = create_trial(value=0.1, user_attrs=attrs)
    assert TrialRecord.from_frozen(trial) == record
    assert TrialRecord.from_frozen(create_trial(value=0.1)) == TrialRecord()


@pytest.mark.parametrize("min_s, drawn", [(0.0, True), (20.0, False)])
def test_a_short_trial_gets_its_tables_and_its_figures_only_when_asked_and_its_run_closed(
        summary, tmp_path, min_s, drawn):
    """`tracking.trial_figures_min_s`: a trial that trained less than that long gets no PNGs (they cost
    ~1.5 s of CPU each trial), the rest of its artifacts always; recorded in a real local MLflow store."""
    from mlflow import MlflowClient

    from tracking.runs.connection import resolve_uri
    from tracking.runs.trial_recorder import TrialRecorder

    assert summary["final"]["wall_s"] < 20.0
    uri = resolve_uri("", tmp_path)
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("figures")).info.run_id
    reporter = TrialRecorder(uri, run_id, figures_min_s=min_s)
    reporter.on_end(summary)
    assert reporter.result["artifacts"] is True, reporter.result
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"summary.json", "config.yaml", "probes.csv", "probe_scalars.csv"} <= names, names
    assert ("gradient_profile.png" in names) == drawn and ("gradient_heatmap.png" in names) == drawn, names
    assert "gradient_profile.svg" in names            # the cheap SVG profile: every trial, drawn or not
    # everything delivered: the worker's reporter closed the run itself (the driver does not have to)
    run = client.get_run(run_id)
    assert reporter.result["closed"] is True and run.info.status == "FINISHED", (reporter.result, run.info)
    assert run.data.tags["gradstudy.state"] == summary["status"] and run.data.tags["gradstudy.health"] == \
        summary["health"], run.data.tags
    assert run.data.tags["gradstudy.span"] == str(summary["health_span"]) == "12", run.data.tags
    # its description (no more "No description"), closed with the run: verdict, span, λ1, objective
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith(f"**{summary['health']}** over the whole sequence (T = 12)"), note
    assert "**λ1** of W_rec (top layer):" in note and "at initialization" in note, note


def test_report_links_trials_to_their_runs(tmp_path):
    """With RunLinks, the best trials' numbers link to their MLflow runs at the given UI address; a trial
    without a run stays plain text; the page rewrites the address to the server that shows it."""
    from study.report.page import RunLinks

    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.9):
        study.add_trial(create_trial(params={"train.lr": 0.01}, distributions={"train.lr": LR}, value=value,
                                     user_attrs=attrs("healthy")))
    links = RunLinks("http://mlflow.example:8080", "7", {1: "abc123"})
    page = check_report(tmp_path, write_study_report(study, tmp_path, links=links))
    assert best_rows(page) == {"rnn": 1}
    assert re.findall(r'<a class="run" href="([^"]+)"', page) == ["http://mlflow.example:8080/#/experiments/7/runs/abc123?workflowType=machine_learning"]
    assert ('data-path="#/experiments/7/runs/abc123?workflowType=machine_learning"' in page
            and 'location.href.indexOf("blob:")' in page)
    plain = write_study_report(study, tmp_path, links=RunLinks("http://x", "7", {0: "other"})).read_text()
    assert '<a class="run"' not in plain


def test_the_svg_profile_is_keyed_by_steps_back_and_every_probe_is_drawn(tmp_path):
    """gradient_profile.svg: one polyline per probe (a non-finite point breaks it), the last probe's
    starts at k = 0 (the loss end, the plot's left edge) at the value of t = T; plain-text λ1."""
    import xml.etree.ElementTree as ET

    from tracking.figures import profile_svg

    probes = [{"step": 0, "grad_h_log10": [[-3.0, -2.0, -1.0, 0.0]]},
              {"step": 10, "grad_h_log10": [[-6.0, float("nan"), -2.0, -0.5]]}]
    summary = {"health": "vanishing", "probes": probes}
    path = profile_svg.write_profile_svg(summary, tmp_path / "p.svg", r"adding · $\lambda_1$=0.5")
    root = ET.parse(path).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    lines = root.findall("s:polyline", ns)
    # probe 0: one line; probe 10: broken at its NaN (t = 2, k = 2) into k ∈ {0, 1} and k = 3
    assert [len(line.get("points").split()) for line in lines] == [4, 2, 1]
    assert [line.get("stroke") for line in lines] == ["#b8b8b8", "#1f77b4", "#1f77b4"]   # the last: its health
    first = [tuple(map(float, p.split(","))) for p in lines[1].get("points").split()]
    assert first[0][0] == profile_svg.LEFT                                    # k = 0 at the left edge
    ys = {float(p.split(",")[1]) for line in lines for p in line.get("points").split()}
    assert first[0][1] < first[1][1]         # k = 0 holds -0.5 (t = T), above k = 1's -2.0: y grows downwards
    assert min(ys) >= profile_svg.TOP and max(ys) <= profile_svg.HEIGHT - profile_svg.BOTTOM
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "λ1=0.5" in texts and "$" not in texts and "steps back from the loss" in texts
    assert profile_svg.write_profile_svg({"probes": [{"step": 0, "grad_h_log10": [[float("nan")]]}]},
                                         tmp_path / "none.svg") is None
