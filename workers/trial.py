"""One trial: build the task and the network from a TrialConfig, train with probes, score the test set.

    summary = run_trial(cfg, reporter)

is the whole public entry point of `workers/`; the summary follows docs/summary-json.md (`config`, `health`,
`final`, `probes`) plus `health_span` (the task's dependency span in steps, over which the verdict judged
the gradient: workers/gradients/health.py), `status` (completed | pruned | diverged), `steps` (updates done) and
`device`.
Non-finite numbers are already turned into null, so the summary is valid JSON as it is.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch

from workers.config import Cell, TaskName, TrialConfig, to_dict, validate
from workers.device import pick_device
from workers.forecast.ar_baseline import ar_baseline
from workers.forecast.esn_fit import fit_readout, washout_of
from workers.forecast.free_run import free_run_nrmse, teacher_length
from workers.gradients import health
from workers.loop import evaluate, train
from workers.memory import check_fits
from workers.model.network import RecurrentNet
from workers.reporter import Reporter
from workers.subnormals import subnormals_flushed
from workers.summary import json_safe
from workers.tasks import make_task


def _stop_reason(reporter: Reporter) -> str:
    """Why the trial was pruned (a reporter without `stop_reason` gives no reason: "pruned")."""
    reason = getattr(reporter, "stop_reason", None)
    return (reason() if callable(reason) else None) or "pruned"


def build(cfg: TrialConfig, device: torch.device):
    """The task and the network of a trial, deterministic from `train.seed`."""
    seed = cfg.train.seed
    torch.manual_seed(seed)
    task = make_task(cfg.task, seed)
    net = RecurrentNet(cfg.model, task.input_size, task.output_size, task.per_step, seed).to(device)
    return task, net


def run_trial(cfg: TrialConfig, reporter: Optional[Reporter] = None,
              device: Optional[torch.device] = None) -> dict[str, Any]:
    with subnormals_flushed():   # vanishing gradients are subnormal floats: ~5x slower on a CPU otherwise
        return _run_trial(cfg, reporter, device)


def _run_trial(cfg: TrialConfig, reporter: Optional[Reporter], device: Optional[torch.device]) -> dict[str, Any]:
    validate(cfg)
    reporter = reporter or Reporter()
    device = device or pick_device(cfg.train.device)
    check_fits(cfg, device)   # a trial that cannot fit is refused before it allocates (workers/memory.py)
    task, net = build(cfg, device)
    reporter.on_start({"config": to_dict(cfg), "device": str(device), "task_length": task.length,
                       "parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
                       "baseline_loss": task.baseline_loss})
    fit = fit_readout if cfg.model.cell == Cell.esn else train
    result = fit(net, task, cfg, reporter, device)
    test = evaluate(net, task, task.held_out("test", cfg.task.test_size).to(device), washout_of(task, cfg))
    solved = math.isfinite(test["loss"]) and task.solved(test)
    steps_to_solve = result.steps_to_solve
    if solved and steps_to_solve is None:
        steps_to_solve = result.steps
    final = {
        "test_loss": test["loss"],
        "baseline_loss": task.baseline_loss,
        "baseline_ratio": test["loss"] / task.baseline_loss,
        "accuracy": test.get("accuracy"),
        "solved": bool(solved),
        "steps_to_solve": steps_to_solve,
        "wall_s": result.wall_s,
        "seq_per_s": (result.steps * (1 if cfg.model.cell == Cell.esn else cfg.train.batch_size) / result.wall_s
                      if result.wall_s > 0 and result.steps > 0 else None),   # an ESN's steps are windows
        **{k: v for k, v in test.items() if k not in ("loss", "accuracy")},
    }
    final.update(result.final)                                 # an ESN's chosen ridge λ
    teacher = teacher_length(task, cfg.task.free_run_teacher) if cfg.task.free_run else 0
    if cfg.task.free_run:
        final["free_run_nrmse"] = free_run_nrmse(net, task, cfg.task.free_run, cfg.task.test_size, teacher)
    if cfg.task.name == TaskName.mackey_glass and cfg.task.ar_order:   # the linear yardstick, scored alike
        test_set = task.held_out("test", cfg.task.test_size)
        final.update(ar_baseline(task, cfg.task.ar_order, test_set, washout_of(task, cfg),
                                 cfg.task.free_run, cfg.task.test_size, teacher))
    verdict = health.trial_verdict([p["health"] for p in result.probes], result.status == "diverged")
    summary = json_safe({
        "config": to_dict(cfg),
        "health": verdict,
        "health_span": task.span(),
        "status": result.status,
        **({"prune_reason": _stop_reason(reporter)} if result.status == "pruned" else {}),
        "steps": result.steps,
        "device": str(device),
        "final": final,
        "probes": result.probes,
    })
    reporter.on_end(summary)
    return summary
