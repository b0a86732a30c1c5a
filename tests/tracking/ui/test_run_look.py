"""How trials present themselves in the MLflow UI, without a server: run names, colours, the keys that apply
to a trial, the profile metric and table, the task as a dataset, the study's description in markdown."""
from __future__ import annotations

import json
import math
import re
import urllib.parse

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from study.records.attrs import StudyAttr, TrialAttr
from study.report.study_note import best_metrics, in_words, study_note
from tracking.figures import profile_records
from tracking.figures.colours import HEALTH_COLOURS, OTHER_COLOUR
from tracking.figures.colours import health_colour as run_colour
from tracking.runs.task_input import task_dataset, task_label
from tracking.ui.run_look import MAX_NAME, run_name
from workers.config import TrialConfig, to_dict
from workers.key_use import applies, lambda1


def config(**sections) -> dict:
    cfg = to_dict(TrialConfig())
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


# --- the keys a trial reads ----------------------------------------------------------------------------
def test_keys_that_apply_follow_cell_task_init_and_optimizer():
    rnn = config(model={"cell": "rnn", "init": "scaled"})
    assert applies("model.activation", rnn) and applies("model.init_gain", rnn)
    assert not any(applies(k, rnn) for k in ("model.spectral_radius", "model.leak", "model.forget_bias",
                                               "train.momentum", "train.clip.threshold", "task.tau", "task.n_copy"))
    esn = config(model={"cell": "esn", "init": "scaled"}, task={"name": "mackey_glass"})
    assert applies("model.spectral_radius", esn) and applies("task.tau", esn) and applies("model.activation", esn)
    assert not applies("model.init", esn) and not applies("model.init_gain", esn)    # the reservoir's own keys
    lstm = config(model={"cell": "lstm", "init": "default"}, train={"optimizer": "momentum"})
    assert applies("model.forget_bias", lstm) and applies("train.momentum", lstm)
    assert not applies("model.activation", lstm) and not applies("model.init_gain", lstm)   # default init: no λ1
    clipped = config(train={"clip": {"mode": "norm", "threshold": 1.0}})
    assert applies("train.clip.threshold", clipped)
    assert applies("train.lr", {}) and applies("model.leak", {"model": {}})   # partial configs keep the key
    assert lambda1(rnn) == 1.0 and lambda1(lstm) is None and lambda1(esn) is None


# --- names and colours ----------------------------------------------------------------------------------
def test_run_names_say_what_the_trial_is():
    rnn = config(model={"cell": "rnn", "activation": "tanh", "init": "scaled", "init_gain": 0.5},
                 task={"seq_len": 100}, train={"lr": 0.003})
    assert run_name(7, rnn) == "007 rnn tanh λ1₀=0.5"
    assert run_name(7, rnn, ["model.init_gain", "model.activation", "task.seq_len", "train.lr"]) == \
        "007 rnn tanh λ1₀=0.5 T=100 lr=0.003"
    sampled = config(model={"cell": "rnn", "activation": "tanh", "init": "scaled", "init_gain": 0.319297},
                     task={"seq_len": 1000}, train={"lr": 0.0031234})
    assert run_name(3, sampled, ["model.init_gain", "task.seq_len", "train.lr"]) == \
        "003 rnn tanh λ1₀=0.319 T=1000 lr=0.00312"                            # 3 significant digits: T stays in view
    lstm = config(model={"cell": "lstm", "init": "orthogonal", "init_gain": 1.0})
    assert run_name(12, lstm, ["model.activation"]) == "012 lstm orthogonal λ1₀=1"   # activation: not read
    esn = config(model={"cell": "esn", "spectral_radius": 0.95, "activation": "tanh"})
    assert run_name(1234, esn, ["model.spectral_radius"]) == "1234 esn tanh ρ=0.95"
    long = run_name(1, rnn, [f"train.penalty.l{i}" for i in range(40)])
    assert len(long) == MAX_NAME and long.endswith("…")


def test_run_colour_is_the_health_colour():
    assert {v: run_colour(v) for v in HEALTH_COLOURS} == HEALTH_COLOURS
    assert len(set(HEALTH_COLOURS.values())) == len(HEALTH_COLOURS)      # no two verdicts share a colour
    assert run_colour(None) == run_colour("unknown") == OTHER_COLOUR


# --- the profile as a metric and a table ----------------------------------------------------------------
def summary_with(profiles: list[list[list[float]]]) -> dict:
    return {"probes": [{"step": 10 * i, "grad_h_log10": layers} for i, layers in enumerate(profiles)]}


def test_profile_metric_is_the_last_probes_top_layer_by_steps_back(tmp_path):
    s = summary_with([[[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]], [[9.0, 9.0, 9.0], [-2.5, float("-inf"), 0.25]]])
    # k = T − t: the last input (t = 3) at k = 0, the first (t = 1) at k = 2; -inf is left out
    assert list(profile_records.profile_points(s)) == [(0, 0.25), (2, -2.5)]
    path = profile_records.write_profile_table(s, tmp_path / profile_records.TABLE)
    table = json.loads(path.read_text())
    assert table["columns"] == ["step", "t", "log10_grad_h"]
    assert table["data"] == [[0, 1, 5.0], [0, 2, 5.0], [0, 3, 5.0], [10, 1, -2.5], [10, 2, None], [10, 3, 0.25]]
    assert profile_records.write_profile_table({"probes": []}, tmp_path / "none.json") is None
    assert json.loads(profile_records.logged_tables_tag()) == [{"path": "profiles.json", "type": "table"}]


def test_long_profiles_are_thinned_with_both_ends_kept():
    t_len = 5000
    s = summary_with([[[float(-t) for t in range(1, t_len + 1)]]])
    points = list(profile_records.profile_points(s))
    assert len(points) <= profile_records.MAX_POINTS + 1
    assert points[0] == (0, -float(t_len)) and points[-1] == (t_len - 1, -1.0)
    assert all(v == -(t_len - k) for k, v in points)                       # step = k, value of t = T − k


def test_profiles_of_different_lengths_line_up_at_the_loss_end():
    """The same per-step decay at T = 10 and T = 100: the points at equal k are equal."""
    short = dict(profile_records.profile_points(summary_with([[[-0.1 * (10 - t) for t in range(1, 11)]]])))
    long = dict(profile_records.profile_points(summary_with([[[-0.1 * (100 - t) for t in range(1, 101)]]])))
    assert short == pytest.approx({k: long[k] for k in short})


# --- the task as an input dataset -----------------------------------------------------------------------
def test_task_dataset_names_the_task():
    assert task_label(config(task={"name": "adding", "seq_len": 100})) == "adding T=100"
    assert task_label(config(task={"name": "mackey_glass", "seq_len": 84, "tau": 17})) == \
        "mackey_glass T=84 τ=17 horizon=1"
    a, b = task_dataset(config(task={"seq_len": 100})), task_dataset(config(task={"seq_len": 100}))
    c = task_dataset(config(task={"seq_len": 200}))
    assert a.dataset.digest == b.dataset.digest != c.dataset.digest
    assert a.dataset.source_type == "code" and json.loads(a.dataset.source)["task"]["seq_len"] == 100
    assert [(t.key, t.value) for t in a.tags] == [("mlflow.data.context", "train")]


# --- the study's description ------------------------------------------------------------------------------
def test_search_space_in_words():
    assert in_words(FloatDistribution(0.25, 4.0, log=True)) == "loguniform(0.25, 4)"
    assert in_words(FloatDistribution(0.0, 1.0, step=0.25)) == "uniform(0, 1, step 0.25)"
    assert in_words(CategoricalDistribution(["tanh", "relu", None])) == "choice(tanh, relu, null)"
    assert in_words(optuna.distributions.IntDistribution(1, 8)) == "integer(1..8)"
    assert in_words(optuna.distributions.IntDistribution(16, 256, log=True)) == "log-integer(16..256)"


def note_study() -> optuna.Study:
    study = optuna.create_study(direction="minimize", study_name="note")
    study.set_user_attr(StudyAttr.OBJECTIVES, ["final.test_loss"])
    study.set_user_attr(StudyAttr.N_TRIALS, 5)
    study.set_user_attr(StudyAttr.SEARCH, {
        "model.init": {"expression": "scaled", "fixed": True, "condition": None},
        "model.init_gain": {"expression": "tag(log, interval(0.25, 4))", "fixed": False, "condition": None},
        "model.activation": {"expression": "choice(tanh, relu)", "fixed": False, "condition": "model.cell in [rnn]"}})
    dists = {"model.init_gain": FloatDistribution(0.25, 4.0, log=True),
             "model.activation": CategoricalDistribution(["tanh", "relu"])}
    for value, health, gain, rate in ((0.4, "vanishing", 0.3, -0.3), (0.1, "healthy", 1.5, 0.01),
                                      (math.inf, "diverged", 3.9, 0.2)):
        study.add_trial(create_trial(params={"model.init_gain": gain, "model.activation": "tanh"},
                                     distributions=dists, value=value,
                                     user_attrs={TrialAttr.HEALTH: health, TrialAttr.CELL: "rnn",
                                                 TrialAttr.DECAY_RATE: rate}))
    study.add_trial(create_trial(state=TrialState.PRUNED, params={}, distributions={},
                                 user_attrs={TrialAttr.HEALTH: "vanishing"}))
    return study


def test_study_note_has_counts_best_link_search_and_expectations():
    study = note_study()
    expectations = [{"rule": "lstm beats 0.167", "measured": 0.05, "passed": True, "source": "H&S 1997"},
                    {"rule": "rnn fails", "measured": 0.01, "passed": False, "source": "Arjovsky 2016"}]
    note = study_note(study, "3", {0: "run0", 1: "run1", 2: "run2"}, {1: "001 rnn tanh λ1₀=1.5"},
                      expectations=expectations, parent_id="p9")
    head = note.split("\n")[:3]     # what MLflow shows before "Show more": counts + report, best trial, claims
    assert head[0] == ("**4 of 5 trials** finished (complete 3 · pruned 1) · "
                       "**[open the study report]"
                       "(#/experiments/3/runs/p9/artifacts/report/report.html?workflowType=machine_learning)**  "), head
    assert head[1] == ("**Best trial**: [001 rnn tanh λ1₀=1.5]"
                       "(#/experiments/3/runs/run1?workflowType=machine_learning) "
                       "— `final/test_loss` = 0.1, 🟩 healthy  ")
    assert head[2] == "**Published claims**: ✓ 1 · ✗ 1 — not holding: rnn fails  "
    assert note.split("\n")[3] in (
        "**Gradient health**: 🟦 vanishing 2 · 🟥 diverged 1 · 🟩 healthy 1 — run colours: 🟩 healthy · 🟦 vanishing · "
        "🟧 exploding · 🟥 diverged · ⬜ no verdict",
        "**Gradient health**: 🟦 vanishing 2 · 🟩 healthy 1 · 🟥 diverged 1 "
        "— run colours: 🟩 healthy · 🟦 vanishing · 🟧 exploding · 🟥 diverged · ⬜ no verdict")
    assert "minimize `final/test_loss`" in note
    # one click to the best trial's profile beside the steepest vanishing and exploding ones, in their colours
    compare = re.search(r"- \[the best trial \(1\) beside the steepest vanishing \(0\) beside the steepest exploding "
                        r"\(2\)\]\((#/experiments/3/runs\?[^)]+)\)", note)
    assert compare, note
    query = dict(urllib.parse.parse_qsl(compare.group(1).split("?", 1)[1]))
    assert query["searchFilter"] == "attributes.run_id IN ('run1', 'run0', 'run2')"
    assert query["compareRunsMode"] == "CHART" and query["workflowType"] == "machine_learning"
    assert "- `model.init_gain`: loguniform(0.25, 4)" in note
    assert "- `model.init`: = scaled (fixed)" in note
    assert "- `model.activation`: choice(tanh, relu) — if model.cell in [rnn]" in note
    assert "| ✓ | lstm beats 0.167 | 0.05 | H&S 1997 |" in note and "| ✗ | rnn fails |" in note
    assert "metrics.`final/test_loss` < 0.17" in note                       # a filter example, backticks and all
    assert best_metrics(study, study.trials) == {"best/trial": 1.0, "best/final/test_loss": pytest.approx(0.1)}


def test_study_note_before_any_trial():
    study = optuna.create_study(study_name="empty")
    note = study_note(study, "1", {})
    assert note.startswith("**0 trials** finished (none yet)") and "Best trial" not in note
    assert best_metrics(study, []) == {}
