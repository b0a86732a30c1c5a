"""Cost of a gradient probe against an ordinary training step, at long horizons.

    .venv/bin/python bench/bench_probe_cost.py [--lengths 50 250 1000 5000] [--cells lstm rnn] [--reps 2]
                                               [--dtype float32]

For each cell (LSTM, tanh RNN; hidden 64, batch 64, adding task) and sequence length T, one process per
configuration (so memory figures do not mix) times, alternately:
- an ordinary step: fused forward, backward, Adam update (`Trainer.step(probing=False)`);
- a probe step: the same update plus the exact log-space profile, λ1 and the per-group norms
  (`Trainer.step(probing=True)`); the validation scoring that a probe step also does in a trial is
  timed apart (`val`, 256 sequences, one forward).
It prints the medians, probe ÷ ordinary (goal: ≤ 3 at every T), the log pass alone ÷ ordinary, and the
probe's peak memory: the peak resident set during the probe above the resident set before it (Linux
/proc/self/clear_refs resets the high-water mark). The machine is shared and noisy: compare the ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(cell: str, length: int, reps: int, dtype: str) -> dict:
    """One configuration, in this process."""
    import torch

    from workers.config import Cell, Device, ProbeDtype, TaskConfig, TrialConfig
    from workers.gradients.log_profile import log_profile
    from workers.loop import PROBE_DTYPES, Trainer, evaluate
    from workers.trial import build

    cfg = TrialConfig(task=TaskConfig(seq_len=length))
    cfg.model.cell, cfg.train.device, cfg.train.probe_dtype = Cell(cell), Device.cpu, ProbeDtype(dtype)
    device = torch.device("cpu")
    task, net = build(cfg, device)
    trainer = Trainer(net, task, cfg)
    generator = torch.Generator().manual_seed(0)
    val = task.held_out("val", cfg.task.val_size)
    trainer.step(0, task.batch(64, generator), probing=False)   # warm-up

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    ordinary, probe, alone, scoring = [], [], [], []
    peak_kib = 0
    for i in range(reps):
        batch = task.batch(64, generator)
        ordinary.append(timed(lambda: trainer.step(i, batch, probing=False)))
        Path("/proc/self/clear_refs").write_text("5")
        before = _rss_kib("VmRSS")
        probe.append(timed(lambda: trainer.step(i, batch, probing=True)))
        peak_kib = max(peak_kib, _rss_kib("VmHWM") - before)
        alone.append(timed(lambda: log_profile(net, task, batch, PROBE_DTYPES[cfg.train.probe_dtype])))
        scoring.append(timed(lambda: evaluate(net, task, val)))
    o = statistics.median(ordinary)
    return {"cell": cell, "T": length, "ordinary_s": o, "probe_s": statistics.median(probe),
            "log_pass_s": statistics.median(alone), "val_s": statistics.median(scoring),
            "ratio": statistics.median(probe) / o, "log_pass_ratio": statistics.median(alone) / o,
            "peak_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 250, 1000, 5000])
    parser.add_argument("--cells", nargs="+", default=["lstm", "rnn"])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--one", nargs=2, metavar=("CELL", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.reps, args.dtype)))
        return
    print(f"probe step vs ordinary step, hidden 64, batch 64, adding task, probe_dtype {args.dtype}")
    print(f"{'cell':5} {'T':>5} {'ordinary s':>10} {'probe s':>8} {'probe/ord':>9} {'log pass/ord':>12} "
          f"{'val s':>6} {'probe peak MiB':>14}")
    for cell in args.cells:
        for length in args.lengths:
            out = subprocess.run([sys.executable, __file__, "--one", cell, str(length), "--reps", str(args.reps),
                                  "--dtype", args.dtype], cwd=ROOT, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['cell']:5} {r['T']:>5} {r['ordinary_s']:>10.3f} {r['probe_s']:>8.3f} {r['ratio']:>9.2f} "
                  f"{r['log_pass_ratio']:>12.2f} {r['val_s']:>6.2f} {r['peak_mib']:>14.0f}", flush=True)


if __name__ == "__main__":
    main()
