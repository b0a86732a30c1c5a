"""Published claims as checked expectations (tracking/expectations.py): the rule grammar, its evaluation on a
study's trials, a bad rule as one clear config error, and `gradstudy check` (exit 6 when one fails)."""
from __future__ import annotations

import json
import subprocess

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from study.compose import compose_root
from study.storage import open_storage
from testkit.processes import REPO, cli_env, gradstudy_command
from tracking.attrs import StudyAttr, TrialAttr
from tracking.expectations import RuleError, check_rule, describe, evaluate, parse_where
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
    assert len(compose_root(["experiment=paper_pascanu2013"]).root.expect) == 2


def finished(number: int, cell: str, ratio: float, vanishing: float, tmp_path, state=TrialState.COMPLETE,
             seq_len: int = 100):
    """A finished trial as the driver records it: the sampled cell, the summary's other keys on disk."""
    path = tmp_path / f"{number}.json"
    path.write_text(json.dumps({"config": {"task": {"seq_len": seq_len}, "model": {"cell": cell}}}))
    return create_trial(state=state, value=ratio if state == TrialState.COMPLETE else None,
                        params={"model.cell": cell}, distributions={"model.cell": CategoricalDistribution(["lstm", "rnn"])},
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
    (solved,) = evaluate(study.get_trials(deepcopy=False)[:2], [rule(metric="final.solved", stat="mean", op=">=", value=0.5)])
    assert solved["measured"] == 0.5 and solved["passed"]


@pytest.mark.parametrize("second_value,code", [(0.8, 0), (1.5, 6)])
def test_gradstudy_check_exits_6_when_a_claim_fails(home, tmp_path, second_value, code):
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
