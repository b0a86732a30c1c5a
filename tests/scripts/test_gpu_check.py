"""scripts/gpu-check where there is no GPU: `--dry-run --quick` runs every step on the CPU (the profiles compared,
the CUDA tests run by pytest, two rounds of concurrent trial processes), says that CUDA is absent, exits 0 and
writes its one JSON file, whose path is the last line printed. A real run of the script, no mocks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present: this test checks the run without it")
@pytest.mark.skipif(bool(os.environ.get("GPU_CHECK_RUNNING")), reason="run by scripts/gpu-check itself")
def test_dry_run_without_cuda_writes_its_file_and_says_cuda_is_absent(tmp_path):
    out = tmp_path / "results" / "check.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu-check"), "--dry-run", "--quick",
                           "--out", str(out), "--wheels", str(tmp_path / "no-wheels")],
                          capture_output=True, text=True, timeout=110, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("CUDA is absent"), done.stdout
    assert lines[-1] == str(out.resolve()) and out.exists(), done.stdout

    record = json.loads(out.read_text())
    assert record["ok"] is True and record["problems"] == []
    assert record["cuda_absent"] is True and "CUDA absent" in record["mode"]
    assert record["environment"]["cuda_available"] is False

    agreement = record["agreement"]
    assert agreement["device"] == "cpu" and agreement["ok"] and len(agreement["configs"]) == 2
    for config in agreement["configs"]:
        assert config["max_abs_diff"] == 0.0 and config["kind_mismatches"] == 0   # CPU against CPU
        assert 0 < config["cpu32_vs_cpu64"] < agreement["tolerance_log10"] / 2     # float32 round-off, measured
        low, high = config["profile_range_log10"]
        assert low < high

    tests = record["tests"]
    assert tests["files"] == ["tests/workers/test_cuda.py"] and tests["exit_code"] == 0
    assert tests["failed"] == 0 and tests["skipped"] >= 8 and tests["passed"] >= 1
    assert tests["cases"]["test_train_device_cuda_without_cuda_is_a_config_error"] == "passed"

    bench = record["benchmark"]
    assert bench["ok"] and bench["device"] == "cpu" and bench["processes"] == 2
    assert [r["k"] for r in bench["rounds"]] == [1, 2]
    one, two = bench["rounds"]
    assert len(two["per_trial_steps_per_s"]) == 2 and all(rate > 0 for rate in two["per_trial_steps_per_s"])
    assert one["aggregate_vs_k1"] == pytest.approx(1.0)
    assert two["aggregate_steps_per_s"] == pytest.approx(sum(two["per_trial_steps_per_s"]))
    assert two["aggregate_vs_k1"] == pytest.approx(two["aggregate_steps_per_s"] / one["mean_steps_per_s"])
    assert all(t["status"] == "pruned" and t["marks_in_window"] >= 2 for r in bench["rounds"] for t in r["trials"])
