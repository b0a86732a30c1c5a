"""Published claims as checked expectations (study/records/expectations.py): the rule grammar, its evaluation on a
study's trials, a bad rule as one clear config error, and `gradstudy check` (exit 6 when one fails)."""
from __future__ import annotations

import json
import subprocess

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.config.compose import compose_root
from study.records.attrs import StudyAttr, TrialAttr
from study.records.expectations import RuleError, check_rule, describe, evaluate, parse_where
from study.storage.backend import open_storage
from testkit.processes import REPO, cli_env, gradstudy_command
from workers.config import ConfigError


def rule(**kw) -> dict:
    base = {"claim": "", "where": "", "metric": "final.baseline_ratio", "stat": "max", "op": "<", "value": 0.5,
            "source": "a paper"}
    return {**base, **kw}


def test_where_grammar():
    (c,) = parse_where("model.cell == lstm")
    assert (c.key, c.op, c.values) == ("model.cell", "==", ["lstm"]) and c.holds("lstm") and not c.holds("rnn")
    a, b = parse_where("model.activation in [tanh, 'sigmoid'] and model.init_gain < 1")
    assert a.holds("sigmoid") and not a.holds("relu") and b.holds(0.9) and not b.holds(1) and not b.holds(None)
    (n,) = parse_where("task.seq_len >= 100")
    assert n.holds(100) and n.holds("200") and not n.holds(50)
    (f,) = parse_where("model.attention == false")
    assert f.holds(False) and not f.holds(True)
    assert parse_where("") == [] and parse_where("  ") == []
    for bad in ("model.cell lstm", "model.cell in lstm", "model.init_gain < small"):
        with pytest.raises(RuleError) as err:
            parse_where(bad)
        assert err.value.field == "where"


@pytest.mark.parametrize("field,value", [("metric", "test_loss"), ("metric", "final."), ("stat", "best"),
                                         ("op", "=="), ("value", "nan"), ("value", "x")])
def test_bad_rules_name_the_field(field, value):
    with pytest.raises(RuleError) as err:
        check_rule(rule(**{field: value}))
    assert err.value.field == field and "valid:" in str(err.value)


def test_a_bad_rule_in_an_experiment_is_one_config_error():
    with pytest.raises(ConfigError) as err:
        compose_root(["experiment=paper_pascanu2013", "expect.0.op=eq"])
    assert err.value.key == "expect[0].op" and "one of <, <=, >, >=" in str(err.value)
    assert len(compose_root(["experiment=paper_pascanu2013"]).root.expect) == 3


def finished(number: int, cell: str, ratio: float, vanishing: float, tmp_path, state=TrialState.COMPLETE,
             seq_len: int = 100):
    """A finished trial as the driver records it: the sampled cell, the summary's other keys on disk."""
    path = tmp_path / f"{number}.json"
    path.write_text(json.dumps({"config": {"task": {"seq_len": seq_len}, "model": {"cell": cell}}}))
    return create_trial(state=state, value=ratio if state == TrialState.COMPLETE else None,
                        params={"model.cell": cell},
                        distributions={"model.cell": CategoricalDistribution(["lstm", "rnn"])},
                        user_attrs={TrialAttr.FINAL: {"baseline_ratio": ratio}, TrialAttr.VANISHING_RATIO: vanishing,
                                    TrialAttr.SUMMARY: str(path), TrialAttr.CELL: cell})


def paper_study(tmp_path, storage=None, name="paper") -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage)
    for i, (cell, ratio, vanishing) in enumerate([("lstm", 0.05, -0.5), ("lstm", 0.2, -1.0), ("rnn", 0.95, -9.0),
                                                  ("rnn", 1.02, -7.0)]):
        study.add_trial(finished(i, cell, ratio, vanishing, tmp_path))
    study.add_trial(finished(4, "rnn", 0.1, -8.0, tmp_path, state=TrialState.PRUNED))   # pruned trials count
    study.add_trial(create_trial(state=TrialState.FAIL, params={}, distributions={}))  # a failure has no numbers
    return study


def test_rules_evaluate_on_the_matching_trials(tmp_path):
    study = paper_study(tmp_path)
    rules = [rule(claim="LSTM learns it", where="model.cell == lstm"),
             rule(where="model.cell == rnn", stat="min", op=">", value=0.8),
             rule(where="model.cell == rnn", metric="vanishing_ratio", stat="median", op="<=", value=-3),
             rule(where="task.seq_len >= 100 and model.cell == gru"),
             rule(where="task.seq_len == 100", stat="mean", op="<", value=1)]
    results = evaluate(study.get_trials(deepcopy=False), rules)
    assert [(r["measured"], r["trials"], r["passed"]) for r in results] == [
        (0.2, 2, True),                      # max over the two LSTMs
        (0.1, 3, False),                     # the pruned rnn's 0.1 breaks "min > 0.8"
        (-8.0, 3, True),
        (None, 0, False),                    # no gru: fails, saying so
        (pytest.approx(0.464), 5, True)]     # seq_len from each trial's summary.json (not sampled)
    assert results[3]["note"] == "no trial matched"
    assert results[0]["rule"] == "max final.baseline_ratio < 0.5 where model.cell == lstm"
    assert results[0]["claim"] == "LSTM learns it" and results[0]["source"] == "a paper"
    assert describe(rule()) == "max final.baseline_ratio < 0.5"
    # a yes/no number (final.solved) counts as 1/0: its mean is the fraction of trials that solved the task
    for i, t in enumerate(study.get_trials(deepcopy=False)[:2]):
        t.user_attrs[TrialAttr.FINAL]["solved"] = bool(i)
    (solved,) = evaluate(study.get_trials(deepcopy=False)[:2],
                         [rule(metric="final.solved", stat="mean", op=">=", value=0.5)])
    assert solved["measured"] == 0.5 and solved["passed"]


@pytest.mark.parametrize("second_value,code", [(0.8, 0), (1.5, 8)])
def test_gradstudy_check_exits_8_when_a_claim_fails(home, tmp_path, second_value, code):
    study = paper_study(tmp_path, open_storage(""), name="claims")
    study.set_user_attr(StudyAttr.EXPECT, [rule(where="model.cell == lstm"),
                                           rule(where="model.cell == rnn", stat="max", op=">", value=second_value)])
    out = subprocess.run(gradstudy_command() + ["check", "claims"], cwd=REPO, env=cli_env(home), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == code, out
    assert "max final.baseline_ratio < 0.5 where model.cell == lstm" in out.stdout and "✓" in out.stdout
    assert ("2 of 2 expectations hold" if code == 0 else "1 of 2 expectations hold; failed: max") in out.stdout
    assert "Traceback" not in out.stderr
    status = subprocess.run(gradstudy_command() + ["status", "claims", "--json"], cwd=REPO, env=cli_env(home),
                            capture_output=True, text=True, timeout=120)
    assert [r["passed"] for r in json.loads(status.stdout)["expectations"]] == [True, code == 0]


def test_check_without_rules_says_so(home, tmp_path):
    paper_study(tmp_path, open_storage(""), name="plain")
    out = subprocess.run(gradstudy_command() + ["check", "plain"], cwd=REPO, env=cli_env(home), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "declares no expectations" in out.stdout


def numbered(trials: list) -> list:
    """Trials as a study holds them (numbered 0, 1, …)."""
    study = optuna.create_study()
    for t in trials:
        study.add_trial(t)
    return study.get_trials(deepcopy=False)


def test_a_matching_trial_without_the_number_is_an_evidence_gap_that_fails_the_rule(tmp_path):
    """Two rnn trials: a classification one with an accuracy, an adding one without (regression)."""
    trials = numbered([finished(0, "rnn", 0.9, -5.0, tmp_path), finished(1, "rnn", 0.95, -5.0, tmp_path)])
    trials[0].user_attrs[TrialAttr.FINAL]["accuracy"] = 0.3
    trials[1].user_attrs[TrialAttr.FINAL]["accuracy"] = None
    (r,) = evaluate(trials, [rule(where="model.cell == rnn", metric="final.accuracy", stat="min", op=">=", value=0)])
    assert not r["passed"] and r["trials"] == 2 and r["measured"] == 0.3
    assert r["gaps"] == [1] and "no finite final.accuracy in #1" in r["note"]
    assert r["counts"] == "complete and pruned"
    # a non-finite number is a gap too; with the gap filled, the rule holds
    trials[1].user_attrs[TrialAttr.FINAL]["accuracy"] = float("nan")
    assert not evaluate(trials, [rule(metric="final.accuracy", stat="min", op=">=", value=0)])[0]["passed"]
    trials[1].user_attrs[TrialAttr.FINAL]["accuracy"] = 0.5
    assert evaluate(trials, [rule(metric="final.accuracy", stat="min", op=">=", value=0)])[0]["passed"]


def test_states_say_which_trials_count(tmp_path):
    trials = paper_study(tmp_path).get_trials(deepcopy=False)
    rnn = rule(where="model.cell == rnn", stat="min", op=">", value=0.8)
    (both,) = evaluate(trials, [rnn])
    (complete,) = evaluate(trials, [dict(rnn, states=["complete"])])
    assert (both["trials"], both["passed"]) == (3, False)                 # the pruned 0.1 counts by default
    assert (complete["trials"], complete["passed"], complete["counts"]) == (2, True, "complete")


def test_min_trials_fails_a_rule_with_too_few_seeds(tmp_path):
    trials = paper_study(tmp_path).get_trials(deepcopy=False)
    lstm = rule(where="model.cell == lstm")
    assert evaluate(trials, [dict(lstm, min_trials=2)])[0]["passed"]
    (r,) = evaluate(trials, [dict(lstm, min_trials=3)])
    assert not r["passed"] and r["measured"] == 0.2 and "2 trial(s) matched, 3 needed" in r["note"]


def pascanu_trial(number, activation, gain, decay, seq_len=100):
    dist = {"model.activation": CategoricalDistribution(["tanh", "sigmoid"]),
            "model.init_gain": CategoricalDistribution([0.5, 2.0])}
    return create_trial(state=TrialState.COMPLETE, value=1.0,
                        params={"model.activation": activation, "model.init_gain": gain}, distributions=dist,
                        user_attrs={TrialAttr.FINAL: {"baseline_ratio": 1.0}, TrialAttr.DECAY_RATE: decay,
                                    TrialAttr.VANISHING_RATIO: decay * (seq_len - 1)})


BOUND = rule(metric="decay_rate", stat="all", op="<=", value="log10(model.init_gain * gamma(model.activation))",
             group_by=["model.activation", "model.init_gain"])


def test_an_all_rule_holds_each_trial_to_its_own_bound_per_group():
    import math
    check_rule(BOUND)
    trials = numbered([pascanu_trial(0, "tanh", 0.5, -0.45), pascanu_trial(1, "tanh", 0.5, -0.5),
                       pascanu_trial(2, "sigmoid", 2.0, -0.4), pascanu_trial(3, "sigmoid", 2.0, -0.2)])
    results = evaluate(trials, [BOUND])
    assert [r["group"] for r in results] == [{"model.activation": "sigmoid", "model.init_gain": 2.0},
                                             {"model.activation": "tanh", "model.init_gain": 0.5}]
    sigmoid, tanh = results
    assert tanh["passed"] and tanh["measured"] == -0.45 and "worst #0" in tanh["note"]   # bound log10(0.5) = −0.30
    # sigmoid, λ1 = 2: the bound is log10(2/4) = −0.30; trial 3 decays by only 0.2 a step: the probe lost f′
    assert not sigmoid["passed"] and sigmoid["breaking"] == [3] and sigmoid["measured"] == -0.2
    assert f"worst #3, bound {math.log10(0.5):.4g}" in sigmoid["note"] and "broken by #3" in sigmoid["note"]
    assert tanh["rule"] == ("every decay_rate <= log10(model.init_gain * gamma(model.activation)) "
                            "[model.activation=tanh, model.init_gain=0.5]")
    # a bound of another metric of the same trial: the one-step error below the AR baseline's
    paired = rule(metric="final.baseline_ratio", stat="all", op="<", value="final.ar_ratio")
    t = trials[0]
    t.user_attrs[TrialAttr.FINAL]["ar_ratio"] = 2.0
    assert evaluate([t], [paired])[0]["passed"]
    t.user_attrs[TrialAttr.FINAL]["ar_ratio"] = 0.5
    assert not evaluate([t], [paired])[0]["passed"]
    del t.user_attrs[TrialAttr.FINAL]["ar_ratio"]   # a bound that cannot be computed is an evidence gap
    (gap,) = evaluate([t], [paired])
    assert not gap["passed"] and gap["gaps"] == [0] and "or its bound" in gap["note"]


@pytest.mark.parametrize("field,value", [("value", "__import__('os')"), ("value", "log10(x"), ("value", "gain"),
                                         ("value", "open(final.nrmse)"), ("min_trials", 0), ("min_trials", "3"),
                                         ("states", ["failed"]), ("states", []), ("group_by", "model.cell"),
                                         ("stat", "every")])
def test_bad_new_rule_fields_name_the_field(field, value):
    with pytest.raises(RuleError) as err:
        check_rule(dict(BOUND, **{field: value}))
    assert err.value.field == field and "valid:" in str(err.value)
    with pytest.raises(RuleError):   # an expression is a per-trial bound: only with stat all
        check_rule(dict(BOUND, stat="max"))


def test_init_metrics_read_the_probe_at_step_0(tmp_path):
    """A trained trial's mechanism at initialization: its first probe, from summary.json."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"config": {}, "probes": [{"step": 0, "vanishing_ratio": -0.2},
                                                         {"step": 500, "vanishing_ratio": -9.0}]}))
    (t,) = numbered([create_trial(state=TrialState.COMPLETE, value=1.0, params={}, distributions={},
                                  user_attrs={TrialAttr.FINAL: {}, TrialAttr.VANISHING_RATIO: -9.0,
                                              TrialAttr.SUMMARY: str(path)})])
    at_init, last = evaluate([t], [rule(metric="init.vanishing_ratio", stat="min", op=">=", value=-1),
                                   rule(metric="vanishing_ratio", stat="min", op=">=", value=-1)])
    assert ((at_init["measured"], at_init["passed"]) == (-0.2, True)
            and (last["measured"], last["passed"]) == (-9.0, False))
