"""study/report/figures.py: the study report's figures of the whole study (health mix, optimization history,
parameter importances, the parameters scatter) and the helpers the phase diagram shares (`off_scale`,
`log_ticks`). Each figure writes one PNG and returns its Path, or None where there is nothing to draw.

Drawn from a small real study: tiny trials run here with workers.trial.run_trial (one stopped at a probe:
pruned) and recorded in an Optuna study as the driver records them. The figure objects are seen by
wrapping the module's save_figure (the real one still writes the PNG)."""
from __future__ import annotations

import copy
import itertools
import math
import struct
from pathlib import Path

import matplotlib.colors as mcolors
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.records.attrs import TrialAttr, TrialRecord
from study.report import figures
from tracking.figures.colours import HEALTH_ORDER, health_colour
from tracking.figures.trial_plots import DPI, new_figure
from workers.config import from_dict
from workers.reporter import Reporter
from workers.trial import run_trial

TINY = {"task": {"name": "adding", "seq_len": 10, "test_size": 64, "val_size": 32},
        "model": {"hidden_size": 8, "init": "scaled"},
        "train": {"steps": 20, "probe_every": 10, "log_every": 5, "batch_size": 16, "device": "cpu"}}
ACTIVATIONS, GAINS = ("tanh", "relu"), (0.5, 1.0, 3.0)


class StopAt(Reporter):
    def __init__(self, step):
        self.step = step

    def should_stop(self, step):
        return step >= self.step

    def stop_reason(self):
        return "planted"


@pytest.fixture(scope="module")
def trial_runs() -> list[tuple[dict, dict]]:
    """(params, summary) of six tiny trials: activation × λ1; the last one pruned at its second probe."""
    runs = []
    grid = list(itertools.product(ACTIVATIONS, GAINS))
    for i, (activation, gain) in enumerate(grid):
        cfg = copy.deepcopy(TINY)
        cfg["model"].update(activation=activation, init_gain=gain)
        summary = run_trial(from_dict(cfg), StopAt(10) if i == len(grid) - 1 else None)
        runs.append(({"model.activation": activation, "model.init_gain": gain}, summary))
    assert runs[-1][1]["status"] == "pruned" and all(s["status"] == "completed" for _, s in runs[:-1])
    return runs


def record(trial_runs, extra=()) -> optuna.Study:
    """The runs in an in-memory study, as the driver records them (objective: final test loss), then `extra`."""
    study = optuna.create_study(study_name="figs")
    dists = {"model.activation": CategoricalDistribution(list(ACTIVATIONS)),
             "model.init_gain": CategoricalDistribution(list(GAINS))}
    for params, summary in trial_runs:
        pruned = summary["status"] == "pruned"
        study.add_trial(create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
            value=None if pruned else summary["final"]["test_loss"], params=params, distributions=dists,
            user_attrs=TrialRecord.from_summary(summary, "summary.json").to_user_attrs()))
    for trial in extra:
        study.add_trial(trial)
    return study


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The figures the module saves (each still written by the real save_figure)."""
    figs = []
    real = figures.save_figure

    def spy(fig, path):
        figs.append(fig)
        return real(fig, path)

    monkeypatch.setattr(figures, "save_figure", spy)
    return figs


def png_size(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    return struct.unpack(">II", data[16:24])


def legend_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def ticks(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


def shown_ticks(ax) -> list[str]:
    """The major tick labels of the x axis inside its view, as its formatter writes them."""
    lo, hi = ax.get_xlim()
    fmt = ax.xaxis.get_major_formatter()
    return [fmt(v, i) for i, v in enumerate(ax.xaxis.get_majorticklocs()) if lo <= v <= hi]


def test_health_mix_counts_finished_trials_by_verdict_and_state(trial_runs, tmp_path, drawn):
    failed = create_trial(state=TrialState.FAIL)
    requeued = create_trial(state=TrialState.FAIL, user_attrs={TrialAttr.REQUEUED: True})
    study = record(trial_runs, [failed, requeued])
    path = figures.health_mix_figure(study.get_trials(), tmp_path / "out" / "health.png")
    assert path == tmp_path / "out" / "health.png"
    assert png_size(path) == (round(6.5 * DPI), round(3.8 * DPI))
    ax = drawn[0].axes[0]
    verdicts = [s["health"] for _, s in trial_runs]
    expected = [v for v in HEALTH_ORDER if v in verdicts] + ["failed"]     # then the others, sorted
    assert ticks(ax.xaxis) == expected
    totals = [int(t.get_text()) for t in ax.texts]
    assert totals == [verdicts.count(v) for v in expected[:-1]] + [1]      # the requeued one is not counted
    assert ax.get_title() == "Health mix (7 finished trials)"
    assert legend_labels(ax) == ["complete", "pruned", "fail"]
    assert [mcolors.to_hex(p.get_facecolor()) for p in ax.patches[:len(expected)]] == \
        [health_colour(v) for v in expected]                           # each verdict in its colour
    figures.health_mix_figure(record(trial_runs).get_trials(), tmp_path / "again.png")
    assert legend_labels(drawn[1].axes[0]) == ["complete", "pruned"]    # only the states it has


def test_health_mix_of_nothing_finished_is_no_figure(tmp_path):
    running = optuna.create_study()
    running.ask()
    assert figures.health_mix_figure(running.get_trials(), tmp_path / "h.png") is None
    assert not (tmp_path / "h.png").exists()


def test_history_shows_each_complete_trial_and_the_best_so_far(trial_runs, tmp_path, drawn):
    study = record(trial_runs)
    path = figures.history_figure(study, study.get_trials(), "final.test_loss", tmp_path / "history.png")
    png_size(path)
    ax = drawn[0].axes[0]
    assert ax.get_title() == "Optimization history (minimize final.test_loss)"
    assert ax.get_ylabel() == "final.test_loss" and ax.get_yscale() == "linear"   # a small range: linear
    points = sorted((int(x), float(y)) for c in ax.collections for x, y in c.get_offsets())
    complete = [(t.number, t.value) for t in study.trials if t.state == TrialState.COMPLETE]
    assert [n for n, _ in points] == [n for n, _ in complete] == [0, 1, 2, 3, 4]   # the pruned one is not drawn
    assert [v for _, v in points] == pytest.approx([v for _, v in complete])
    best = ax.get_lines()[0].get_ydata()
    assert list(best) == pytest.approx([min(v for _, v in complete[:i + 1]) for i in range(len(complete))])
    assert "best so far" in legend_labels(ax)


def test_history_puts_non_finite_values_on_the_edge_and_goes_log_over_wide_ranges(tmp_path, drawn):
    study = optuna.create_study(direction="maximize")
    for value in (1e-3, 0.5, 2.0, math.inf):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=value, user_attrs={TrialAttr.HEALTH: "healthy"}))
    figures.history_figure(study, study.get_trials(), "final.accuracy", tmp_path / "h.png")
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "final.accuracy (log scale)"
    assert "maximize" in ax.get_title()
    assert "non-finite (at edge)" in legend_labels(ax)
    edge = [xy for c in ax.collections for xy in c.get_offsets() if xy[0] == 3]
    assert edge and edge[0][1] == pytest.approx(20.0)              # above the highest finite value (×10, log)
    assert figures.history_figure(optuna.create_study(), [], "x", tmp_path / "none.png") is None


def test_history_coloured_by_decay_rate_has_a_colour_bar(trial_runs, tmp_path, drawn):
    study = record(trial_runs)
    rates = {t.number: t.user_attrs[TrialAttr.DECAY_RATE] for t in study.trials}
    figures.history_figure(study, study.get_trials(), "loss", tmp_path / "h.png", rates=rates)
    assert len(drawn[0].axes) == 2 and drawn[0].axes[1].get_ylabel() == "decay rate (decades/step)"


def test_importances_most_important_on_top(tmp_path, drawn):
    path = figures.importance_figure({"model.activation": 0.25, "model.init_gain": 0.7, "train.lr": 0.05},
                                     "final.test_loss", tmp_path / "imp.png")
    assert png_size(path) == (round(7.0 * DPI), round((1.2 + 0.45 * 3) * DPI))   # taller with more bars
    ax = drawn[0].axes[0]
    assert ticks(ax.yaxis) == ["train.lr", "model.activation", "model.init_gain"]   # bottom to top
    assert [t.get_text().strip() for t in ax.texts] == ["0.050", "0.250", "0.700"]
    assert ax.get_xlim() == (0, 1.0)


def test_param_figure_of_one_parameter(trial_runs, tmp_path, drawn):
    study = record(trial_runs)
    figures.param_figure(study, study.get_trials(), ["model.activation"], "loss", tmp_path / "p.png")
    ax = drawn[0].axes[0]
    assert ticks(ax.xaxis) == ["tanh", "relu"]                        # the choices, in their order
    assert ax.get_title() == "Study figs: loss against model.activation"
    figures.param_figure(study, study.get_trials(), ["model.init_gain"], "loss", tmp_path / "p.png")
    ax = drawn[1].axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "model.init_gain"   # 0.5 … 3: under a decade
    xs = sorted({round(float(x), 6) for c in ax.collections for x, _ in c.get_offsets()})
    assert xs == [0.5, 1.0, 3.0]                                       # numbers at their values


def test_param_figure_of_two_parameters_is_coloured_by_the_objective(trial_runs, tmp_path, drawn):
    study = record(trial_runs)
    path = figures.param_figure(study, study.get_trials(), ["model.init_gain", "model.activation"], "loss",
                                tmp_path / "p2.png")
    png_size(path)
    fig = drawn[0]
    ax, bar = fig.axes
    assert bar.get_ylabel() == "loss"
    assert ticks(ax.yaxis) == ["tanh", "relu"] and ax.get_ylabel() == "model.activation"
    assert ax.get_title() == "Study figs: model.init_gain × model.activation, coloured by loss"
    assert figures.param_figure(study, study.get_trials(), ["train.lr"], "loss", tmp_path / "none.png") is None


def test_a_numeric_choice_spanning_a_decade_is_drawn_on_a_log_axis(tmp_path, drawn):
    study = optuna.create_study(study_name="lr")
    dist = {"train.lr": CategoricalDistribution([1e-3, 1e-2, 1e-1])}
    for lr, value in ((1e-3, 0.5), (1e-2, 0.25), (1e-1, 0.75)):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=value, params={"train.lr": lr},
                                     distributions=dist))
    figures.param_figure(study, study.get_trials(), ["train.lr"], "loss", tmp_path / "p.png")
    ax = drawn[0].axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "train.lr (log scale)"


def test_off_scale_draws_at_the_top_edge_and_makes_room_once():
    fig, ax = new_figure((4, 3))
    ax.scatter([1, 2], [0.0, 10.0])
    ax.set_ylim(0, 10)
    figures.off_scale(ax, [1.5], color="red")
    assert ax.get_ylim() == pytest.approx((0, 11.2))                   # 12 % of headroom
    assert list(ax.collections[-1].get_offsets()[0]) == [1.5, 0.96]   # y in axes coordinates
    figures.off_scale(ax, [1.7], color="red")
    assert ax.get_ylim() == pytest.approx((0, 11.2))                   # not again
    n = len(ax.collections)
    figures.off_scale(ax, [])
    assert len(ax.collections) == n


def test_log_ticks_are_plain_numbers_powers_of_two_over_a_short_range():
    fig, ax = new_figure((4, 3))
    ax.set_xscale("log")
    ax.set_xlim(0.4, 3.5)
    figures.log_ticks(ax.xaxis, 0.5, 3.0)
    assert shown_ticks(ax) == ["0.5", "1", "2"]
    ax.set_xlim(1e-3, 10)
    figures.log_ticks(ax.xaxis, 1e-3, 10)                              # wide: powers of 10
    assert shown_ticks(ax) == ["0.001", "0.01", "0.1", "1", "10"]
    assert ax.xaxis.get_minor_formatter()(0.3, 0) == ""                # no minor labels
