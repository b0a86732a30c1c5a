"""Every published claim can fail: for each paper_* experiment a defect its claim is about is planted in
the trial engine or the experiment, the trials run (in this process, tests/testkit/paper_study.py) and
`gradstudy check` must exit 6 naming the broken rule. Where the experiment is cheap (measured at
initialization) the same trials without the defect must pass, so the test shows the rule telling the two
apart; the trained experiments' passing runs are measured in README ("Published results, checked")."""
from __future__ import annotations

import subprocess

import pytest
import torch

import workers.model.jacobians as jacobians
from study.cli.exit_codes import Exit
from testkit.paper_study import record_experiment
from testkit.processes import REPO, cli_env, gradstudy_command


def check(home, name: str) -> subprocess.CompletedProcess:
    out = subprocess.run(gradstudy_command() + ["check", name], cwd=REPO, env=cli_env(home), capture_output=True,
                         text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def failed_lines(out: subprocess.CompletedProcess) -> list[str]:
    return [line for line in out.stdout.splitlines() if line.startswith("✗")]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_pascanu_holds_and_a_probe_without_the_activation_derivative_breaks_it(home, monkeypatch):
    record_experiment(home, "paper_pascanu2013", "pascanu")
    out = check(home, "pascanu")
    assert out.returncode == 0 and "14 of 14 expectations hold" in out.stdout, out.stdout

    # the planted defect: the probe's Jacobian forgets σ′ (as if every unit were linear)
    monkeypatch.setattr(jacobians, "_derivative", lambda activation, pre, out: torch.ones_like(pre))
    record_experiment(home, "paper_pascanu2013", "pascanu-no-fprime")
    out = check(home, "pascanu-no-fprime")
    assert out.returncode == Exit.CLAIM_FAILED, out.stdout
    broken = failed_lines(out)
    # every sigmoid group breaks the per-step bound log10(λ1/4); tanh (γ = 1) cannot tell, as the theorem says
    assert len([b for b in broken if "every decay_rate" in b and "model.activation=sigmoid" in b]) == 6, broken
    assert not [b for b in broken if "model.activation=tanh" in b]
    assert any("where model.activation == sigmoid" in b and "broken by #1, #3, #5, #7, #9" in b for b in broken)


def rule_lines(out: subprocess.CompletedProcess, claim_start: str) -> list[str]:
    """The check lines of the rules whose claim starts with `claim_start`."""
    return [line for line in out.stdout.splitlines() if f"— {claim_start}" in line]


def test_le_an_untrained_irnn_fails_the_trained_claim_and_a_non_identity_w_rec_the_mechanism(home):
    # untrained (train.steps=0): the mechanism at initialization holds, the learning claim does not
    record_experiment(home, "paper_le2015", "le-untrained", ["train.steps=0"])
    out = check(home, "le-untrained")
    assert out.returncode == Exit.CLAIM_FAILED, out.stdout
    (learns,) = rule_lines(out, "an identity-initialized ReLU RNN (IRNN) learns")
    assert learns.startswith("✗ min final.solved >= 1") and "measured 0 over 3 trial(s) (complete)" in learns
    (band,) = rule_lines(out, "mechanism: at initialization")
    (outside,) = rule_lines(out, "… a band that a ReLU RNN")
    assert band.startswith("✓") and outside.startswith("✓"), out.stdout

    # W_rec = 0.5·I instead of the identity: the IRNN's profile is no longer flat
    record_experiment(home, "paper_le2015", "le-not-identity", ["train.steps=0", "model.init_gain=0.5"])
    out = check(home, "le-not-identity")
    (band,) = rule_lines(out, "mechanism: at initialization")
    assert out.returncode == Exit.CLAIM_FAILED and band.startswith("✗") and "broken by #0, #1, #2" in band, out.stdout


def test_hochreiter_a_broken_trainer_passes_the_negative_claim_but_not_its_control(home):
    # lr = 1e-9: nothing learns. The tanh RNN "does not learn at T = 100" still holds — which is why the
    # claim is paired with the positive control at T = 10, which now fails, as does the LSTM's
    record_experiment(home, "paper_hochreiter1997", "hochreiter-lr0", ["train.steps=20", "train.lr=1e-9"])
    out = check(home, "hochreiter-lr0")
    assert out.returncode == Exit.CLAIM_FAILED, out.stdout
    (lstm,) = rule_lines(out, "an LSTM solves")
    (negative,) = rule_lines(out, "a tanh RNN trained the same way does not")
    (control,) = rule_lines(out, "positive control")
    assert lstm.startswith("✗") and control.startswith("✗") and negative.startswith("✓"), out.stdout

    # an untrained "LSTM" with the trainer intact: the control passes, the LSTM claim does not
    record_experiment(home, "paper_hochreiter1997", "hochreiter-untrained-lstm", ["train.steps=20"])
    out = check(home, "hochreiter-untrained-lstm")
    (lstm,) = rule_lines(out, "an LSTM solves")
    assert out.returncode == Exit.CLAIM_FAILED and lstm.startswith("✗") and "measured 0 over 3" in lstm, out.stdout


def test_jaeger_a_zero_readout_breaks_both_baseline_claims(home, monkeypatch):
    """The readout solved by ridge regression, then zeroed (as if the solve were skipped): the ESN predicts
    the mean, NRMSE ≈ 1, far above the AR(30) baseline one step ahead and 1e-3 free-running. A smaller
    reservoir and fit keep the test short; the experiment's own setting is measured in README."""
    from workers.forecast.ridge_readout import RidgeFit

    def zeroed(self, readout, ridge):
        with torch.no_grad():
            readout.weight.zero_()
            readout.bias.zero_()

    monkeypatch.setattr(RidgeFit, "solve_into", zeroed)
    record_experiment(home, "paper_jaeger2001", "jaeger-zero-readout",
                      ["model.hidden_size=50", "model.fit_run=1000", "model.ridge_grid=[1e-6]"])
    out = check(home, "jaeger-zero-readout")
    assert out.returncode == Exit.CLAIM_FAILED, out.stdout
    (within,) = rule_lines(out, "free-running for 84 steps")
    (one_step,) = rule_lines(out, "one step ahead it beats the linear AR(30)")
    assert within.startswith("✗ every final.free_run_nrmse <= 0.001") and "broken by #0, #1, #2, #3, #4" in within
    assert one_step.startswith("✗ every final.nrmse < final.ar_nrmse") and "broken by #0, #1, #2, #3, #4" in one_step
