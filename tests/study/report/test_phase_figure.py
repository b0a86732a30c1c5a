"""study/report/phase_figure.py: the phase diagram of the study report: one row per activation, columns final
test loss (dropped for a study measured at initialization), vanishing ratio and decay rate against λ1 of W_rec,
coloured by health (a study that mixes sequence lengths: by T, or by the decay rate beyond the T colours),
with Pascanu et al.'s bound log10(λ1·γ); 4 inches (440 px) a column, 2.9 a row, at DPI 110.

Drawn from the records (study.report.data.phase_records) of a small real study: tiny trials run here with
workers.trial.run_trial over activation × λ1 (init scaled), one pruned at a probe. The figure object is seen
by wrapping the module's save_figure (the real one still writes the PNG)."""
from __future__ import annotations

import copy
import itertools
import math
import struct
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.records.attrs import TrialRecord
from study.report import phase_figure as pf
from study.report.data import phase_records
from tracking.figures.colours import HEALTH_ORDER
from workers.config import from_dict
from workers.reporter import Reporter
from workers.trial import run_trial

TINY = {"task": {"name": "adding", "seq_len": 10, "test_size": 64, "val_size": 32},
        "model": {"hidden_size": 8, "init": "scaled"},
        "train": {"steps": 20, "probe_every": 10, "log_every": 5, "batch_size": 16, "device": "cpu"}}
ACTIVATIONS, GAINS = ("relu", "tanh"), (0.5, 1.0, 3.0)     # relu first: the rows still go tanh, relu


class StopAt(Reporter):
    def __init__(self, step):
        self.step = step

    def should_stop(self, step):
        return step >= self.step


@pytest.fixture(scope="module")
def study_records() -> tuple[optuna.Study, list[dict]]:
    study = optuna.create_study(study_name="phase")
    dists = {"model.activation": CategoricalDistribution(list(ACTIVATIONS)),
             "model.init_gain": CategoricalDistribution(list(GAINS))}
    summaries = {}
    grid = list(itertools.product(ACTIVATIONS, GAINS))
    for number, (activation, gain) in enumerate(grid):
        cfg = copy.deepcopy(TINY)
        cfg["model"].update(activation=activation, init_gain=gain)
        summary = run_trial(from_dict(cfg), StopAt(10) if number == 0 else None)
        pruned = summary["status"] == "pruned"
        study.add_trial(create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else summary["final"]["test_loss"],
            params={"model.activation": activation, "model.init_gain": gain}, distributions=dists,
            user_attrs=TrialRecord.from_summary(summary, "summary.json").to_user_attrs()))
        summaries[number] = summary
    records = phase_records(study, study.get_trials(), summaries)
    assert len(records) == 6 and records[0]["pruned"] and {r["T"] for r in records} == {10}
    return study, records


@pytest.fixture(scope="module")
def trained(study_records, tmp_path_factory):
    """The figure of the trained study, drawn once: (figure, its PNG)."""
    study, records = study_records
    figs = []
    real = pf.save_figure
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pf, "save_figure", lambda fig, path: figs.append(fig) or real(fig, path))
        path = pf.phase_figure(study, records, tmp_path_factory.mktemp("report") / "phase.png")
    return figs[0], path


@pytest.fixture
def drawn(monkeypatch) -> list:
    figs = []
    real = pf.save_figure

    def spy(fig, path):
        figs.append(fig)
        return real(fig, path)

    monkeypatch.setattr(pf, "save_figure", spy)
    return figs


def png_size(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    return struct.unpack(">II", data[16:24])


def grid_axes(fig, rows: int, cols: int) -> np.ndarray:
    """The figure's scatter axes as rows × columns (a colour bar's axes come after them)."""
    return np.array(fig.axes[:rows * cols]).reshape(rows, cols)


def legend(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def test_a_trained_study_has_loss_ratio_and_rate_per_activation(trained):
    fig, path = trained
    assert path.name == "phase.png"
    assert png_size(path) == (3 * 440, round((1.6 + 2 * 2.9) * 110))     # 3 columns, 2 rows
    axes = grid_axes(fig, 2, 3)
    assert len(fig.axes) == 6                                            # no colour bar
    assert [ax.get_title() for ax in axes[0]] == [pf.TITLE["loss"], pf.TITLE["ratio"], pf.TITLE["rate"]]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["tanh\nfinal test loss", "relu\nfinal test loss"]
    assert axes[1, 2].get_ylabel() == "relu\ndecay rate (decades/step)"
    assert fig._suptitle.get_text().endswith("(6 trials)")
    labels = legend(fig)
    assert labels[:len(HEALTH_ORDER)] == HEALTH_ORDER
    assert {"pruned", "non-finite (top edge)", "baseline loss", r"bound $\log_{10}(\lambda_1\gamma)$"} <= set(labels)
    assert not any(label.startswith("T = ") for label in labels)        # one length: no markers per T


def test_each_point_is_a_trial_at_its_lambda1_and_the_pruned_one_is_hollow(study_records, trained):
    _, records = study_records
    axes = grid_axes(trained[0], 2, 3)
    for row, series in enumerate(("tanh", "relu")):
        mine = [r for r in records if r["series"] == series]
        for col, key in enumerate(("loss", "ratio", "rate")):
            points = sorted((float(x), float(y)) for c in axes[row, col].collections for x, y in c.get_offsets())
            expected = sorted((r["lambda1"], r[key]) for r in mine)
            assert [x for x, _ in points] == [x for x, _ in expected]
            assert [y for _, y in points] == pytest.approx([y for _, y in expected])
    hollow = [c for c in axes[1, 1].collections if len(c.get_facecolors()) == 0]     # facecolors "none"
    assert [list(c.get_offsets()[0])[0] for c in hollow] == [0.5]       # relu, λ1 = 0.5: the pruned trial


def test_lambda1_is_a_log_axis_with_the_bound_and_one_over_gamma(trained):
    axes = grid_axes(trained[0], 2, 3)
    pad = (3.0 / 0.5) ** 0.06
    for ax in axes[-1]:
        assert ax.get_xscale() == "log"
        assert ax.get_xlim() == pytest.approx((0.5 / pad, 3.0 * pad))
        assert "model.init_gain" in ax.get_xlabel()
    rate = axes[0, 2]                                                    # tanh: γ = 1
    bound = next(line for line in rate.get_lines() if line.get_linestyle() == "--")
    xs, ys = bound.get_xdata(), bound.get_ydata()
    assert ys == pytest.approx(np.log10(xs * pf.GAMMA["tanh"]))
    assert xs.max() == pytest.approx(1.0 / pf.GAMMA["tanh"])             # drawn up to λ1·γ = 1
    assert any(line.get_linestyle() == "-." and line.get_xdata()[0] == 1.0 for line in rate.get_lines())


def test_a_study_at_initialization_has_no_loss_column(study_records, tmp_path, drawn):
    study, records = study_records
    path = pf.phase_figure(study, records, tmp_path / "phase.png", untrained=True)
    assert png_size(path)[0] == 2 * 440
    fig = drawn[0]
    axes = grid_axes(fig, 2, 2)
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in axes[0]] == [pf.TITLE["ratio"], pf.TITLE["rate"]]
    assert "baseline loss" not in legend(fig)
    assert fig._suptitle.get_text().endswith("(6 trials, at initialization)")


def test_a_study_mixing_two_lengths_is_coloured_and_marked_by_T(study_records, tmp_path, drawn):
    study, records = study_records
    mixed = [dict(r, T=10 if i % 2 else 20) for i, r in enumerate(records)]
    pf.phase_figure(study, mixed, tmp_path / "phase.png", by_rate=True)
    fig = drawn[0]
    assert len(fig.axes) == 6                                            # colours by T: no colour bar
    labels = legend(fig)
    assert labels[:2] == ["T = 10", "T = 20"] and "healthy" not in labels
    markers = {c.get_paths()[0].vertices.shape for c in grid_axes(fig, 2, 3)[0, 1].collections}
    assert len(markers) == 2                                             # a marker per T


def test_more_lengths_than_colours_are_coloured_by_the_decay_rate(study_records, tmp_path, drawn):
    study, records = study_records
    mixed = [dict(r, T=10 * (i + 1)) for i, r in enumerate(records)]   # 6 lengths, 4 colours
    path = pf.phase_figure(study, mixed, tmp_path / "phase.png", by_rate=True)
    assert png_size(path)[0] == 3 * 440 + 110      # an inch more: room for the colour bar
    fig = drawn[0]
    assert len(fig.axes) == 7
    assert fig.axes[-1].get_ylabel().startswith("colour: decay rate")
    assert [label for label in legend(fig) if label.startswith("T = ")] == [f"T = {10 * (i + 1)}" for i in range(6)]


def test_a_missing_value_is_drawn_on_the_top_edge(study_records, tmp_path, drawn):
    study, records = study_records
    holed = [dict(r, ratio=None) if r["series"] == "tanh" else r for r in records]
    pf.phase_figure(study, holed, tmp_path / "phase.png")
    ax = grid_axes(drawn[0], 2, 3)[0, 1]                                 # tanh's ratio: none finite
    assert ax.get_ylim()[0] == pytest.approx(-4)
    edge = [xy for c in ax.collections for xy in c.get_offsets()]
    assert sorted(float(x) for x, _ in edge) == sorted(r["lambda1"] for r in holed if r["series"] == "tanh")
    assert {float(y) for _, y in edge} == {0.96}                         # the band at the top (axes coords)
    assert not math.isnan(ax.get_ylim()[1])
