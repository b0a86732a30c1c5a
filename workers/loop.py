"""The training loop of one trial.

Every step draws a fresh batch, computes the gradient, clips it and takes an optimizer step. Ordinary
steps use the fused kernels (and truncated BPTT when `train.tbptt` = k > 0: the sequence is cut into
chunks of k steps, the state carried across chunks detached, the chunk gradients summed into one
update). Probe steps — step 0, every `train.probe_every` steps and the last — also measure, before the
update and with the same weights, the full, untruncated log10 ‖∂L_T/∂h_t‖ in log space
(`workers/gradients/log_profile.py`; see `workers/gradients/probes.py` for the figures read from it), the
parameter-group norms, the clipping, λ1 and the size of the update, and score the validation set.
`train.steps=0` is one probe at step 0 and no update: the network measured at initialization.

`step` in every report is the number of updates done before it: the probe at step 0 sees the network at
initialization. A non-finite loss, or a non-finite gradient norm where it is measured (clipping by
norm, probe steps), ends the trial at once with verdict `diverged`; otherwise a non-finite gradient
shows in the next step's loss.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from workers import penalties
from workers.config import ClipMode, ProbeDtype, TrialConfig
from workers.gradients import health, probes
from workers.gradients.log_profile import log_profile_and_loss
from workers.model.network import RecurrentNet
from workers.optim import clip, make_optimizer
from workers.reporter import Reporter
from workers.tasks import Batch, Task

PROBE_DTYPES = {ProbeDtype.float32: torch.float32, ProbeDtype.float64: torch.float64}
FLOAT32_MAX_LOG10 = math.log10(torch.finfo(torch.float32).max)     # 38.53: the network's gradients are float32


@dataclass
class LoopResult:
    status: str = "completed"            # completed | pruned | diverged
    steps: int = 0                       # updates done
    wall_s: float = 0.0
    probes: list[dict[str, Any]] = field(default_factory=list)
    steps_to_solve: Optional[int] = None
    final: dict[str, Any] = field(default_factory=dict)   # extra summary `final` entries (an ESN's ridge λ)


@torch.no_grad()
def evaluate(net: RecurrentNet, task: Task, batch: Batch, skip: int = 0) -> dict[str, Any]:
    """The task's scores on a held-out set, in eval mode (batch norm uses its running statistics);
    `skip`: the first steps of a per-step task left unscored (an echo state network's washout)."""
    was_training = net.training
    net.eval()
    out, y = net(batch.x).out, batch.y
    if skip and task.per_step:
        out, y = out[:, skip:], y[:, skip:]
    scores = task.evaluate(out, y)
    net.train(was_training)
    return scores


class Trainer:
    def __init__(self, net: RecurrentNet, task: Task, cfg: TrialConfig, optimize: bool = True):
        """`optimize=False`: gradients and probes only, never an update (an ESN's ridge fit)."""
        self.net, self.task, self.cfg = net, task, cfg.train
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.groups = net.parameter_groups()
        self.optimizer = make_optimizer(self.params, self.cfg) if optimize else None
        self.unrolled_always = self.cfg.penalty.omega > 0

    # --- gradients -------------------------------------------------------------------------------------
    def _backward_penalties(self, output=None, loss=None) -> None:
        pen = self.cfg.penalty
        if pen.omega > 0:
            (pen.omega * penalties.omega(self.net, output, loss)).backward()
        if pen.l2 > 0:
            (pen.l2 * penalties.l2(self.params)).backward()

    def _backward_loss(self, output, loss: torch.Tensor) -> torch.Tensor:
        """The loss's gradient plus the penalties' (Ω reads ∂L/∂h_t first, while the graph lives)."""
        if self.unrolled_always:
            self._backward_penalties(output, loss)
        loss.backward()
        if not self.unrolled_always:
            self._backward_penalties()
        return loss.detach()

    def _backward_full(self, batch: Batch) -> torch.Tensor:
        output = self.net(batch.x, unrolled=self.unrolled_always)
        return self._backward_loss(output, self.task.loss(output.out, batch.y))

    def _backward_truncated(self, batch: Batch) -> torch.Tensor:
        k, length = self.cfg.tbptt, batch.x.shape[1]
        states, total = None, batch.x.new_zeros(())
        for start in range(0, length, k):
            x = batch.x[:, start:start + k]
            if self.task.per_step:
                output = self.net(x, states)
                y = batch.y[:, start:start + k]
                loss = self.task.pointwise(output.out, y).sum() / batch.y.numel()
                loss.backward()
                total = total + loss.detach()
            elif start + k < length:   # no target before the last step: nothing to back-propagate
                with torch.no_grad():
                    output = self.net(x, states)
            else:
                output = self.net(x, states)
                loss = self.task.loss(output.out, batch.y)
                loss.backward()
                total = loss.detach()
            states = [tuple(s.detach() for s in st) for st in output.states]
        self._backward_penalties()
        return total

    def truncates(self, batch: Batch) -> bool:
        return bool(self.cfg.tbptt) and self.cfg.tbptt < batch.x.shape[1]

    def backward(self, batch: Batch) -> torch.Tensor:
        return self._backward_truncated(batch) if self.truncates(batch) else self._backward_full(batch)

    # --- probes ---------------------------------------------------------------------------------------
    def measure(self, batch: Batch) -> dict[str, Any]:
        """The exact log profile of ∂L_T/∂h_t (`workers/gradients/log_profile.py`) with the recurrent matrices' λ1
        and spectral radius, for the weights as they are now, the task's dependency span, and the batch's loss
        by the probe's forward (`probe_loss`)."""
        log10, loss = log_profile_and_loss(self.net, self.task, batch, PROBE_DTYPES[self.cfg.probe_dtype])
        lambda1, radius = probes.weight_spectra(self.net)
        return {"grad_h_log10": log10, "lambda1": lambda1, "spectral_radius": radius, "span": self.task.span(),
                "probe_loss": loss}

    def step(self, step: int, batch: Batch, probing: bool,
             update: bool = True) -> tuple[float, Optional[float], bool, dict]:
        """One update (the gradient alone without `update`); returns (loss, global norm or None, clipped,
        probe fields or {})."""
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        else:
            for p in self.params:
                p.grad = None
        fields: dict[str, Any] = self.measure(batch) if probing else {}
        if probing and not update and not self.cfg.probe_loss_gradient:
            # at initialization, where nothing is trained and the study reads the profile alone
            # (`train.probe_loss_gradient=false`): no backward through the T steps, the loss from the probe
            return fields.pop("probe_loss"), None, False, dict(fields, loss_gradient=False)
        fields.pop("probe_loss", None)
        loss = self.backward(batch)
        if probing:
            fields["group_norms"] = probes.group_norms(self.groups)
            fields["nonfinite"] = probes.nonfinite_count(self.params)
        norm, clipped = clip(self.params, self.cfg.clip, measure=probing)
        loss_value = loss.item()
        if probing:
            fields.update(global_norm=norm, clipped=clipped)
            before = probes.snapshot(self.groups)
        finite = math.isfinite(loss_value) and (norm is None or math.isfinite(norm))
        if update and self.optimizer is not None and finite:
            self.optimizer.step()
            if probing:
                fields["update_ratio"] = probes.update_ratios(before, self.groups)
        return loss_value, norm, clipped, fields


def probe_record(step: int, fields: dict, loss: float, val: dict) -> dict[str, Any]:
    """The probe's record (workers/gradients/probes.py); its `health` judges `span_ratio`, the attenuation over the
    task's dependency span `fields["span"]` (the whole profile where it is not given)."""
    log10 = fields["grad_h_log10"]
    span = min(fields.get("span") or len(log10[-1]), len(log10[-1]))   # Task.span(): already ≥ 1
    ratio = probes.span_ratio(log10[-1], span)
    record = {
        "step": step,
        "loss": loss,
        "val_loss": val["loss"],
        "val_accuracy": val.get("accuracy"),
        "grad_h_log10": [[round(v, 6) if math.isfinite(v) else v for v in layer] for layer in log10],
        "grad_h_norms": [probes.norms_from_log10(layer) for layer in log10],
        "vanishing_ratio": probes.vanishing_ratio(log10[-1]),
        "span": span,
        "span_ratio": ratio,
        "horizon": probes.horizon(log10[-1]),
        "decay_rate": probes.decay_rate(log10[-1]),
        "global_norm": fields.get("global_norm"),
        "clipped": fields.get("clipped", False),
        "group_norms": fields.get("group_norms", {}),
        "nonfinite": fields.get("nonfinite", 0),
        "update_ratio": fields.get("update_ratio", {}),
        "lambda1": fields["lambda1"],
        "spectral_radius": fields["spectral_radius"],
    }
    norm = record["global_norm"]
    if fields.get("loss_gradient", True):
        loss_finite = math.isfinite(loss) and norm is not None and math.isfinite(norm)
    else:   # `train.probe_loss_gradient=false`: no gradient was taken; float32's backward overflows (Inf) where
        # ‖∂L/∂h_t‖ passes float32's largest number, which the log-space profile sees
        loss_finite = math.isfinite(loss) and probes.profile_peak(log10) < FLOAT32_MAX_LOG10
    record["health"] = health.probe_verdict(ratio, record["nonfinite"], loss_finite,
                                            probes.profile_finite(log10))
    return record


class Window:
    """Step metrics averaged over `train.log_every` steps; `grad/clipped_fraction` only where the trial clips
    (`clipping`): a trial without clipping would chart a line of zeros."""

    def __init__(self, clipping: bool = True):
        self.clipping = clipping
        self.losses, self.norms, self.clipped = [], [], 0

    def add(self, loss: float, norm: Optional[float], clipped: bool) -> None:
        self.losses.append(loss)
        if norm is not None:
            self.norms.append(norm)
        self.clipped += int(clipped)

    def flush(self) -> dict[str, float]:
        metrics = {"train/loss": sum(self.losses) / len(self.losses)}
        if self.clipping:
            metrics["grad/clipped_fraction"] = self.clipped / len(self.losses)
        if self.norms:
            metrics["grad/global_norm"] = sum(self.norms) / len(self.norms)
        self.__init__(self.clipping)
        return metrics


def train(net: RecurrentNet, task: Task, cfg: TrialConfig, reporter: Reporter,
          device: torch.device) -> LoopResult:
    tc = cfg.train
    trainer = Trainer(net, task, cfg)
    val = task.held_out("val", cfg.task.val_size).to(device)
    generator = torch.Generator().manual_seed(tc.seed)
    result, window = LoopResult(), Window(clipping=cfg.train.clip.mode != ClipMode.none)
    start = time.perf_counter()
    net.train()
    update = tc.steps > 0              # train.steps=0: one probe at step 0, no update
    last = max(tc.steps, 1) - 1
    for step in range(last + 1):
        probing = step % tc.probe_every == 0 or step == last
        batch = task.batch(tc.batch_size, generator).to(device)
        val_scores = evaluate(net, task, val) if probing else None
        loss, norm, clipped, fields = trainer.step(step, batch, probing, update)
        finite = math.isfinite(loss) and (norm is None or math.isfinite(norm))
        if not finite and not probing:   # measure the state it diverged in
            fields = dict(trainer.measure(batch), nonfinite=1,
                          global_norm=norm if norm is not None else math.nan)
            val_scores = evaluate(net, task, val)
            probing = True
        window.add(loss, norm, clipped)
        if probing:
            record = probe_record(step, fields, loss, val_scores)
            result.probes.append(record)
            reporter.on_probe(record)
            if result.steps_to_solve is None and task.solved(val_scores):
                result.steps_to_solve = step
        result.steps = step + (1 if finite and update else 0)
        if (step + 1) % tc.log_every == 0 or not finite or not update:
            reporter.on_step(step + 1 if update else 0, window.flush())
        if not finite or (probing and record["health"] == "diverged"):
            result.status = "diverged"
            break
        if probing and reporter.should_stop(step) and step != last:   # a finished trial is not pruned
            result.status = "pruned"
            break
    result.wall_s = time.perf_counter() - start
    return result
