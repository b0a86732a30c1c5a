"""The soak benchmark in small (bench/bench_soak.py): a study of short trials with MLflow on, on a local Ray,
accounts for every trial and closes every MLflow child run. The 1000-trial version's figures (driver RSS
growth, time per trial over the first and last hundred) are measured with the benchmark, not asserted."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testkit.processes import REPO, cli_env

TRIALS = 8


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(300)
def test_small_soak_accounts_for_every_trial(home):
    out = subprocess.run([sys.executable, str(REPO / "bench" / "bench_soak.py"), "--trials", str(TRIALS),
                          "--window", "4", "--json"], cwd=REPO, env=cli_env(home), capture_output=True, text=True,
                         timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["accounted"], result
    assert result["finished"] == TRIALS and result["states"]["RUNNING"] == 0 and result["states"]["WAITING"] == 0
    assert result["mlflow_child_runs"] == TRIALS + result["requeued"], result   # a requeued trial has its own run
    assert result["mlflow_open_runs"] == 0, result
