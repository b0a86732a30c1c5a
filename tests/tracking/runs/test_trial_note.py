"""tracking/runs/trial_note.py: the markdown description of a trial's run, from a plain summary dict: the verdict
over the span it judged, λ1 of the top layer from initialization to the last probe, the objective and the
baseline ratio, and the link back to the study's trials; missing or non-finite values shown as "–"."""
from __future__ import annotations

import math

from tracking.runs.trial_note import trial_note

LINK = "#/experiments/3/runs?searchFilter=x"


def summary(**changes) -> dict:
    """A vanishing trial at T = 50, probed at steps 0 and 800 (two layers: the top one is the last)."""
    base = {
        "config": {"task": {"seq_len": 50}, "model": {"init": "scaled", "init_gain": 1.5}},
        "health": "vanishing", "health_span": 50, "steps": 800, "status": "completed",
        "probes": [{"step": 0, "lambda1": [0.9, 1.14], "span_ratio": -3.0, "decay_rate": -0.1},
                   {"step": 800, "lambda1": [0.7, 0.8537], "span_ratio": -819.123, "decay_rate": -0.8213}],
        "final": {"test_loss": 2.2261, "baseline_ratio": 13.357},
    }
    base.update(changes)
    return base


def lines(note: str) -> list[str]:
    assert note.endswith("\n")
    return note[:-1].split("  \n")     # markdown hard line breaks


def test_the_whole_note():
    note = trial_note(summary(), "final.test_loss", LINK, "init_phase")
    assert lines(note) == [
        "**vanishing** over the whole sequence (T = 50): span ratio -819 decades, "
        "decay rate -0.821 decades per step back (probe at step 800)",
        "**λ1** of W_rec (top layer): 1.14 at initialization → 0.8537 after 800 steps",
        "**final.test_loss** = 2.226 · baseline ratio 13.36 · completed after 800 training steps",
        f"[← all trials of study init_phase]({LINK})",
    ]


def test_the_span_judged_is_named():
    """A span shorter than T is "the last k steps"; no span at all: the verdict is over "its probes"."""
    assert lines(trial_note(summary(health_span=30)))[0].startswith("**vanishing** over the last 30 steps of T = 50:")
    assert lines(trial_note(summary(health_span=None)))[0].startswith("**vanishing** over its probes:")


def test_the_verdict_reads_the_last_probe():
    probes = summary()["probes"]
    probes[-1].update(span_ratio=float("nan"), decay_rate=0.0123, step=400)
    head = lines(trial_note(summary(probes=probes, health="healthy")))[0]
    assert head.startswith("**healthy** over the whole sequence")
    assert "span ratio – decades" in head and "decay rate +0.0123 decades" in head and "(probe at step 400)" in head


def test_lambda1_at_initialization_only_with_one_probe_at_step_0():
    only = [summary()["probes"][0]]
    assert lines(trial_note(summary(probes=only)))[1] == "**λ1** of W_rec (top layer): 1.14 at initialization"


def test_lambda1_at_initialization_from_the_config_without_a_step_0_probe():
    """No probe at step 0: the configured λ1 (`model.init_gain`) stands for the initial one."""
    late = [summary()["probes"][1]]
    assert lines(trial_note(summary(probes=late)))[1] == \
        "**λ1** of W_rec (top layer): 1.5 at initialization → 0.8537 after 800 steps"
    assert lines(trial_note(summary(probes=[])))[1] == "**λ1** of W_rec (top layer): 1.5 at initialization"


def test_lambda1_at_the_last_probe_is_named_by_that_probe_s_step():
    probes = summary()["probes"]
    probes[-1]["step"] = 400                     # the trial went on to 800 steps after its last probe
    assert lines(trial_note(summary(probes=probes)))[1].endswith("→ 0.8537 after 400 steps")


def test_no_lambda1_from_the_gain_of_an_init_that_does_not_set_it():
    """xavier's or orthogonal's gain scales the weights but is not their spectral radius: without a probe at
    step 0 the note says nothing of λ1 at initialization rather than the gain."""
    late = [summary()["probes"][1]]
    orthogonal = {"task": {"seq_len": 50}, "model": {"init": "orthogonal", "init_gain": 1.5}}
    assert lines(trial_note(summary(probes=late, config=orthogonal)))[1] == \
        "**λ1** of W_rec (top layer): – at initialization → 0.8537 after 800 steps"
    assert not any("λ1" in line for line in lines(trial_note(summary(probes=[], config=orthogonal))))


def test_no_lambda1_line_when_nothing_is_known():
    note = trial_note(summary(probes=[], config={"task": {"seq_len": 50}}, status="failed", steps=0, final={}))
    assert lines(note) == ["**vanishing** over the whole sequence (T = 50): span ratio – decades, "
                           "decay rate – decades per step back (probe at step –)",
                           "failed at initialization (no training step)"]
    # a summary without a step count (an old one, or a trial lost before it reported) says only its status
    assert lines(trial_note(summary(steps=None)))[-1] == "baseline ratio 13.36 · completed"


def test_objective_and_baseline_ratio():
    # an objective outside `final` has no value here; a non-finite baseline ratio is left out
    last = lines(trial_note(summary(final={"test_loss": 1.0, "baseline_ratio": math.inf}), "value"))[-1]
    assert last == "**value** = – · completed after 800 training steps"
    # no objective: the line starts with the baseline ratio
    assert lines(trial_note(summary()))[-1] == "baseline ratio 13.36 · completed after 800 training steps"
    # the objective names a final score the trial does not have
    assert lines(trial_note(summary(), "final.accuracy"))[-1].startswith("**final.accuracy** = – · baseline ratio")


def test_the_link_back_to_the_study():
    assert lines(trial_note(summary(), study_link=LINK))[-1] == f"[← the study's trials]({LINK})"
    assert "[←" not in trial_note(summary(), study="init_phase")     # no link, no line


def test_non_dict_probes_and_missing_verdict():
    note = trial_note(summary(probes=["junk", None, 3], health=None))
    assert lines(note)[0].startswith("**no verdict** over the whole sequence (T = 50): span ratio – decades")
    assert "(probe at step –)" in lines(note)[0]
