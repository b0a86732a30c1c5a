"""study/cli/console.py: what a person sees. A trial's ProgressBar fed through the Reporter interface, then
its results table; a study's tables (status, best per cell, every trial, expectations); StudyDisplay, the
driver hook that draws a live status line from `on_progress`. Everything rendered with a recording rich
Console and checked as text."""
from __future__ import annotations

import time

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from study.cli.console import (
    ProgressBar,
    StudyDisplay,
    best_per_cell_table,
    expectations_table,
    results_table,
    status_table,
    trials_table,
)
from study.driver.hooks import HookList, StudyHook
from study.driver.progress import Progress
from study.records import results
from study.records.attrs import StudyAttr, TrialAttr
from testkit.heard import Heard
from workers.config import from_dict
from workers.reporter import FanOut
from workers.trial import run_trial
from workers.values import fmt

TINY = {"task": {"name": "adding", "seq_len": 10, "test_size": 64, "val_size": 32},
        "model": {"hidden_size": 8},
        "train": {"steps": 20, "probe_every": 10, "log_every": 5, "batch_size": 16, "device": "cpu"}}


def console() -> Console:
    return Console(record=True, width=200, color_system=None)


def text(renderable) -> str:
    c = console()
    c.print(renderable)
    return c.export_text()


def row(rendered: str, measure: str) -> str:
    """The value cell of a two-column table's row (the line that starts with `measure`)."""
    line = next(line for line in rendered.splitlines() if line.strip("│ ").startswith(measure + " "))
    return line.strip("│ ").split("│")[-1].strip()


def cells(rendered: str, n: int) -> list[list[str]]:
    """The body rows of a table, the first `n` cells of each."""
    return [[c.strip() for c in line.split("│")[1:n + 1]] for line in rendered.splitlines() if line.startswith("│")]


@pytest.fixture(scope="module")
def trial_run():
    """A real tiny trial run through a ProgressBar (and a reporter that remembers what it was told)."""
    c = console()
    bar, heard = ProgressBar(c, total=TINY["train"]["steps"]), Heard()
    summary = run_trial(from_dict(TINY), FanOut(bar, heard))
    return summary, bar, heard


def test_results_table_of_a_real_trial(trial_run):
    summary, _, _ = trial_run
    final, first, last = summary["final"], summary["probes"][0], summary["probes"][-1]
    shown = text(results_table(summary))
    assert "adding T=10 · rnn · completed" in shown
    assert row(shown, "health") == summary["health"]
    assert row(shown, "test loss") == fmt(final["test_loss"])
    assert row(shown, "loss / baseline") == fmt(final["baseline_ratio"])
    assert row(shown, "baseline loss") == fmt(final["baseline_loss"])
    assert row(shown, "accuracy") == "-"              # the adding problem has none
    assert row(shown, "solved") == "no"
    assert row(shown, "updates") == "20"
    assert row(shown, "vanishing ratio, step 0 → last") == \
        f"{fmt(first['vanishing_ratio'])} → {fmt(last['vanishing_ratio'])}"
    assert row(shown, "decay rate (decades/step), 0 → last") == \
        f"{fmt(first['decay_rate'])} → {fmt(last['decay_rate'])}"
    assert row(shown, "horizon, step 0 → last") == f"{first['horizon']} → {last['horizon']}"
    assert row(shown, "λ1(W_rec), last") == fmt(last["lambda1"])
    assert row(shown, "sequences / s") == fmt(final["seq_per_s"])


def test_progress_bar_follows_the_reports_and_stops_at_the_end(trial_run):
    summary, bar, heard = trial_run
    task = bar.progress.tasks[0]
    last_step, metrics = heard.steps[-1]
    assert task.total == 20 and task.completed == last_step == 20
    assert task.fields["loss"] == f"{metrics['train/loss']:.4g}"
    assert task.fields["health"] == heard.probes[-1]["health"]
    assert not bar.progress.live.is_started          # on_end stopped it
    shown = text(bar.progress.make_tasks_table(bar.progress.tasks))
    assert "trial" in shown and "20/20" in shown
    assert f"loss {metrics['train/loss']:.4g}" in shown and heard.probes[-1]["health"] in shown


def test_progress_bar_before_any_step():
    bar = ProgressBar(console(), total=500)
    shown = text(bar.progress.make_tasks_table(bar.progress.tasks))
    assert "0/500" in shown and "loss -" in shown


@pytest.fixture
def study() -> optuna.Study:
    """A real (in-memory) study of four finished trials and a requeued one."""
    s = optuna.create_study(study_name="night")
    s.set_user_attr(StudyAttr.N_TRIALS, 6)
    cells = CategoricalDistribution(["rnn", "lstm"])
    lr = FloatDistribution(1e-4, 1e-1, log=True)
    for number, (state, value, cell, health, ratio) in enumerate([
            (TrialState.COMPLETE, 0.5, "rnn", "vanishing", -4.0),
            (TrialState.COMPLETE, 0.125, "lstm", "healthy", -0.5),
            (TrialState.COMPLETE, 0.25, "rnn", "healthy", -1.0),
            (TrialState.PRUNED, None, "rnn", "exploding", 5.0)]):
        params = {"model.cell": cell, "train.lr": 10.0 ** -(number + 1)}
        s.add_trial(create_trial(state=state, value=value, params=params,
                                 distributions={"model.cell": cells, "train.lr": lr},
                                 user_attrs={TrialAttr.HEALTH: health, TrialAttr.CELL: cell,
                                             TrialAttr.VANISHING_RATIO: ratio}))
    s.add_trial(create_trial(state=TrialState.FAIL, user_attrs={TrialAttr.REQUEUED: True}))
    return s


def test_status_table_of_a_study(study):
    shown = text(status_table(results.status(study)))
    assert "study night" in shown
    assert row(shown, "finished / target") == "4 / 6"      # the requeued trial does not count
    for state, n in {"complete": 3, "pruned": 1, "fail": 0, "requeued": 1, "running": 0, "waiting": 0}.items():
        assert row(shown, state) == str(n)
    assert row(shown, "health mix") == "exploding 1, healthy 2, vanishing 1"    # sorted by verdict
    assert row(shown, "best") == "#1 0.125 (lstm, healthy)"


def test_status_table_of_an_empty_study():
    shown = text(status_table(results.status(optuna.create_study(study_name="empty"))))
    assert row(shown, "finished / target") == "0 / None"
    assert row(shown, "health mix") == "-"
    assert "best" not in shown


def test_best_per_cell_and_every_trial_tables(study):
    best = text(best_per_cell_table(study, ["model.cell", "train.lr"]))
    assert "best trial per cell type" in best
    assert cells(best, 3) == [["lstm", "1", "0.125"], ["rnn", "2", "0.25"]]
    assert "lr=0.001" in best and "model.cell" not in best      # short names, the cell not repeated
    every = text(trials_table(study))
    assert cells(every, 6) == [["0", "cell=rnn, lr=0.1", "vanishing", "-4", "0.5", "complete"],
                               ["1", "cell=lstm, lr=0.01", "healthy", "-0.5", "0.125", "complete"],
                               ["2", "cell=rnn, lr=0.001", "healthy", "-1", "0.25", "complete"],
                               ["3", "cell=rnn, lr=0.0001", "exploding", "5", "-", "pruned"]]   # not the requeued
    assert trials_table(study, limit=3) is None                  # too many to list
    assert trials_table(optuna.create_study()) is None


def test_expectations_table_marks_each_claim():
    shown = text(expectations_table([
        {"passed": True, "rule": "decay < 0", "claim": "gradients vanish", "measured": -0.25, "trials": 3,
         "counts": "3 rnn", "source": "Pascanu 2013"},
        {"passed": False, "rule": "ratio > 3", "measured": None, "note": "no trial", "trials": 0,
         "source": "Le 2015"}]))
    assert "✓ │ decay < 0" in shown and "gradients vanish" in shown and "-0.25" in shown
    assert "✗ │ ratio > 3" in shown and "- (no trial)" in shown and "0 ()" in shown


def status_line(display: StudyDisplay) -> str:
    return text(display.live.renderable).strip()


def test_study_display_is_a_hook_that_draws_the_counts():
    display = StudyDisplay(console(), "night")
    assert isinstance(display, StudyHook)
    HookList([display]).on_progress(Progress(total=10, done=3, running=2, pruned=1, failed=0))
    assert status_line(display) == "night done 3/10 · running 2 · pruned 1 · failed 0 · best - · ETA -"
    started = time.monotonic() - 20.0          # 4 trials done by this run in 20 s: 5 s each, 6 to go
    display.on_progress(Progress(total=10, done=4, running=2, pruned=1, failed=1, best=0.123456, started=started,
                                 done_here=4))
    line = status_line(display)
    assert line.startswith("night done 4/10 · running 2 · pruned 1 · failed 1 · best 0.1235 · ETA ")
    assert line.split("ETA ")[1] in ("30s", "31s")


def test_study_display_live_line_is_transient():
    c = console()
    with StudyDisplay(c, "night") as display:
        assert display.live.is_started
        display.on_progress(Progress(total=2, done=1))
    assert not display.live.is_started
    assert "night done" not in c.export_text()        # cleared when the run ends
