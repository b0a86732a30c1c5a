"""How an echo state network (`model.cell=esn`) is trained: its reservoir is fixed, so its readout is fit
in closed form (workers/ridge_readout.py) instead of by gradient steps.

`train.steps` is the number of training windows whose reservoir states are collected, `train.batch_size`
at a time (`train.probe_every` and `train.log_every` count windows too; every step reported is the
number of windows collected); the first `model.washout` steps of each window only drive the reservoir
(per-step tasks), and the readout is solved with `model.ridge` at the first batch, every `probe_every`
windows and the last, from what has been collected so far. A probe then measures, as for every cell, the exact ‖∂L_T/∂h_t‖ profile through the reservoir for the
readout as it is, its λ1 and spectral radius, and scores the validation set after the washout; no
update is made. The trial's test score (workers/trial.py) also leaves the washout steps out.

The profile of an ESN normally fades back in time: fading memory is the echo state property (Jaeger
2001), so the verdict `vanishing` is the design working, not a failure; it is kept, and said so.
"""
from __future__ import annotations

import math
import time

import torch

from workers.config import Cell, TrialConfig
from workers.loop import LoopResult, Trainer, Window, _probe_record, evaluate
from workers.model.network import RecurrentNet
from workers.reporter import Reporter
from workers.ridge_readout import RidgeFit, design
from workers.tasks import Task


def washout_of(task: Task, cfg: TrialConfig) -> int:
    """The steps of a window left out of an ESN's fit and scores (per-step tasks only; 0 for other cells)."""
    return cfg.model.washout if task.per_step and cfg.model.cell == Cell.esn else 0


@torch.no_grad()
def scored_loss(net: RecurrentNet, task: Task, features: torch.Tensor, y: torch.Tensor, skip: int) -> float:
    """The task's loss of the readout as it is on a batch's features, after the washout."""
    if task.per_step:
        return task.pointwise(net.readout(features[:, skip:]), y[:, skip:]).mean().item()
    return task.pointwise(net.readout(features[:, -1]), y).mean().item()


def fit_readout(net: RecurrentNet, task: Task, cfg: TrialConfig, reporter: Reporter,
                device: torch.device) -> LoopResult:
    tc, skip = cfg.train, washout_of(task, cfg)
    classes = task.output_size if task.classification else None
    trainer = Trainer(net, task, cfg, optimize=False)   # its probes only: never an update
    val = task.held_out("val", cfg.task.val_size).to(device)
    generator = torch.Generator().manual_seed(tc.seed)
    fit = RidgeFit(net.readout.in_features, net.readout.out_features, device)
    result, window = LoopResult(), Window()
    start = time.perf_counter()
    net.eval()                                 # nothing learns: batch norm keeps its statistics
    total = max(tc.steps, 1)                   # windows to collect (train.steps=0: one batch, measured)
    collected = 0
    while collected < total:
        size = min(tc.batch_size, total - collected)
        batch = task.batch(size, generator).to(device)
        before, collected = collected, collected + size
        with torch.no_grad():
            features = net.features(batch.x)
            x, y = design(features, batch.y, classes, skip)
            finite = bool(torch.isfinite(x).all())
            if finite:
                fit.add(x, y)
        probing = (before == 0 or collected // tc.probe_every > before // tc.probe_every or collected >= total
                   or not finite)
        record = None
        if probing:
            if finite:
                fit.solve_into(net.readout, cfg.model.ridge)
            val_scores = evaluate(net, task, val, skip)
            loss, _, _, fields = trainer.step(collected, batch, True, update=False)
            record = _probe_record(collected, fields, loss, val_scores)
            result.probes.append(record)
            reporter.on_probe(record)
            if result.steps_to_solve is None and task.solved(val_scores):
                result.steps_to_solve = collected
        result.steps = collected if finite else before
        window.add(scored_loss(net, task, features, batch.y, skip) if finite else math.nan, None, False)
        if collected // tc.log_every > before // tc.log_every or collected >= total or not finite:
            reporter.on_step(collected, window.flush())
        if not finite or (record is not None and record["health"] == "diverged"):
            result.status = "diverged"
            break
        if probing and reporter.should_stop(collected) and collected < total:   # a finished fit is not pruned
            result.status = "pruned"
            break
    result.wall_s = time.perf_counter() - start
    return result
