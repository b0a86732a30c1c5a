"""The memory estimate (workers/memory.py) against the measured peak of whole trials.

    .venv/bin/python bench/bench_memory_estimate.py [--quick] [--only NAME ...] [--json]

Each configuration's trial (`run_trial`, on the CPU) runs in a fresh process; its peak resident set is that
child's `ru_maxrss` (os.wait4, the per-child form of getrusage(RUSAGE_CHILDREN)), less the same figure for an
idle process that imported PyTorch and the worker modules and stopped (the baseline, measured the same way,
three times, the median kept). Printed per configuration: the estimate (`estimate_bytes`), the measured
peak above the baseline, estimate ÷ measured, the estimate's largest phase, and the wall time. `--quick`
halves the batch of every configuration (a smoke run of about a minute). Trials run 2 steps probed at each
(so every phase runs: batches, training steps, probes, validation, the test set at the end).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name → changes to the default TrialConfig (dotted keys); every trial: 2 steps, a probe at each, on the CPU
CONFIGS: dict[str, dict] = {
    "rnn adding T=1000 (test set)": {"task.seq_len": 1000, "train.batch_size": 256, "model.hidden_size": 128},
    "lstm copy_memory T=1000": {"task.name": "copy_memory", "task.seq_len": 1000, "train.batch_size": 128,
                                "model.cell": "lstm", "model.hidden_size": 128, "task.test_size": 256},
    "gru temporal_order T=500, 2 layers": {"task.name": "temporal_order", "task.seq_len": 500,
                                           "train.batch_size": 256, "model.cell": "gru", "model.hidden_size": 128,
                                           "model.layers": 2, "task.test_size": 256},
    "esn mackey_glass T=2000, 500 units": {"task.name": "mackey_glass", "task.seq_len": 2000, "model.cell": "esn",
                                           "model.hidden_size": 500, "train.batch_size": 64, "train.steps": 128,
                                           "train.probe_every": 64, "task.test_size": 128, "task.val_size": 64},
    "esn mackey_glass fit run (paper_jaeger2001)": {
        "task.name": "mackey_glass", "task.seq_len": 200, "task.free_run": 84, "task.free_run_teacher": 1000,
        "model.cell": "esn", "model.hidden_size": 400, "model.fit_run": 13000, "model.washout": 100,
        "train.batch_size": 16},
    "rnn copy_memory T=480, attention": {"task.name": "copy_memory", "task.seq_len": 480, "train.batch_size": 128,
                                         "model.hidden_size": 64, "model.attention": True, "task.test_size": 256},
    "lstm digits, 2 layers, batch 2000": {"task.name": "digits", "task.seq_len": 64, "model.cell": "lstm",
                                          "model.hidden_size": 256, "model.layers": 2, "train.batch_size": 2000},
    "tiny (the test suite's trial)": {"task.seq_len": 10, "model.hidden_size": 8, "train.batch_size": 32,
                                      "task.test_size": 64, "task.val_size": 32},
}

CHILD = """
import json, sys
import torch
from workers.config import from_dict, to_dict, TrialConfig
from workers.memory import estimate
from workers.trial import run_trial
changes = json.loads(sys.argv[1])
if changes is None:
    raise SystemExit(0)                          # the baseline: imports only
data = to_dict(TrialConfig())
data["train"].update(steps=2, probe_every=1, log_every=1, device="cpu")
for key, value in changes.items():
    *path, name = key.split(".")
    node = data
    for part in path:
        node = node[part]
    node[name] = value
cfg = from_dict(data)
est = estimate(cfg)
summary = run_trial(cfg)
phase = est.peak_phase()
print(json.dumps({"estimate": est.total(), "phase": phase.name, "phase_bytes": phase.bytes,
                  "status": summary["status"]}))
"""


def run(changes) -> tuple[int, dict, float]:
    """(the peak resident set in bytes of a fresh process running `changes`' trial — None: imports only —, what
    it printed, wall seconds). os.wait4 gives that child's own ru_maxrss."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(changes)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}")
    printed = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return usage.ru_maxrss * 1024, printed, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="halve every configuration's batch")
    parser.add_argument("--only", nargs="*", default=None, help="configurations whose name starts with these")
    parser.add_argument("--json", action="store_true", help="one JSON line per configuration as well")
    args = parser.parse_args()
    baseline = int(statistics.median(run(None)[0] for _ in range(3)))
    print(f"baseline (an idle process that imported torch and workers/): {baseline / 1e6:.0f} MB")
    print(f"{'configuration':40s} {'estimate':>10s} {'measured':>10s} {'ratio':>6s}  {'largest phase (estimate)':28s} "
          f"{'wall':>6s}")
    for name, changes in CONFIGS.items():
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        changes = dict(changes)
        if args.quick:
            changes["train.batch_size"] = max(2, changes.get("train.batch_size", 64) // 2)
        peak, printed, wall = run(changes)
        measured = peak - baseline
        ratio = printed["estimate"] / measured if measured > 0 else float("nan")
        print(f"{name:40s} {printed['estimate'] / 1e6:8.0f}MB {measured / 1e6:8.0f}MB {ratio:6.2f}  "
              f"{printed['phase'] + ' ' + format(printed['phase_bytes'] / 1e6, '.0f') + ' MB':28s} {wall:5.0f}s",
              flush=True)
        if args.json:
            print(json.dumps({"config": name, "changes": changes, "estimate": printed["estimate"],
                              "measured": measured, "baseline": baseline, "ratio": ratio, "wall_s": wall}))


if __name__ == "__main__":
    main()
