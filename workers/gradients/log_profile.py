"""The exact temporal gradient profile, log10 ‖∂L_T/∂h_t‖ for every layer and t = 1..T, at any T.

Autograd cannot give it at long horizons: over T = 1000 steps of a vanishing network ∂L_T/∂h_1 falls below
the float32 range (1e-38, and its norm, a sum of squares, already at 1e-23), and even float64 (1e-308)
runs out a few thousand steps later. So the probe walks the chain rule backwards itself, in log space:

    a_t = ∂L_T/∂h_t = s_t + J_{t+1}ᵀ a_{t+1}        J_{t+1} = ∂state_{t+1}/∂state_t (one step of the cell)

where s_t is the *direct* part (through the layers above, attention, the readout; zero for t < T in a
plain stack). The map a_{t+1} ↦ J_{t+1}ᵀ a_{t+1} is linear, so every adjoint is kept as a unit-norm
mantissa m_t and a log scale σ_t with a_t = e^{σ_t} m_t: after each step the mantissa is divided by its
norm and the log of that norm is added to σ — exact, whatever the decay (for an LSTM the state adjoint is
[∂L/∂h_t | ∂L/∂c_t], scaled together). Sums of two scaled adjoints are taken at the larger scale.

The walk runs on a copy of the network in `train.probe_dtype` (float32 by default: the trajectory the
network trains on, each step's factor exact to float32 rounding, about 1e-7; float64 for a float64
trajectory at about twice the cost), with float64 log scales, and costs O(T) time and memory: one forward
by the fused kernel, the gates of every step at once, then per step a few elementwise products and one
product with W_hh (`workers/model/jacobians.py`). Down the stack, ∂L/∂(input of layer l)_t = W_ihᵀ ∂L/∂p_t keeps each
step's scale and becomes, through normalization and the residual sum, the direct part s_t of layer l − 1.
Batch normalization pools its statistics over all steps: its backward is taken at the largest scale of
the sequence (terms more than 10^308 below it are dropped — below float64 precision of the sum anyway).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Optional

import torch

from workers.model.jacobians import Trajectory, trajectory
from workers.model.network import RecurrentNet
from workers.tasks import Batch, Task

LN10 = math.log(10.0)
# renormalize the walked mantissa every RENORM steps: between two renormalizations a mantissa cannot
# leave its dtype's range unless one step scales it by more than 10^±19 (float32) or 10^±38 (float64)
RENORM = {torch.float32: 2, torch.float64: 8}
FLOOR = -1e300   # a log scale low enough that exp(FLOOR − σ) is 0 for any σ that matters


@dataclass
class Scaled:
    """A sequence of adjoints a_t = e^{scale[t]} · mantissa[t]: mantissa [T, B, ·] (time-major), scale [T]
    (float64, natural log, −inf where a_t = 0)."""
    mantissa: torch.Tensor
    scale: torch.Tensor

    @staticmethod
    def of(values: torch.Tensor) -> "Scaled":
        scale = torch.zeros(values.shape[0], dtype=torch.float64, device=values.device)
        return Scaled(values, scale).normalized()

    def normalized(self) -> "Scaled":
        norms = torch.linalg.vector_norm(self.mantissa.flatten(1), dim=1)
        tiny = torch.finfo(norms.dtype).tiny
        return Scaled(self.mantissa / norms.clamp_min(tiny)[:, None, None], self.scale + torch.log(norms))

    def at(self, common: torch.Tensor) -> torch.Tensor:
        """The values relative to e^{common}: mantissa · e^{scale − common} (those far below underflow to 0)."""
        return self.mantissa * torch.exp(self.scale - common).to(self.mantissa.dtype)[:, None, None]

    def plus(self, other: "Scaled") -> "Scaled":
        common = torch.maximum(self.scale, other.scale).clamp_min(FLOOR)
        return Scaled(self.at(common) + other.at(common), common).normalized()

    def map(self, fn) -> "Scaled":
        """A map that is linear and acts on each step alone, applied to the mantissas."""
        return Scaled(fn(self.mantissa), self.scale).normalized()


@torch.no_grad()
def _walk(traj: Trajectory, direct: Scaled, want_inputs: bool) -> tuple[torch.Tensor, Optional[Scaled]]:
    """The reverse pass of one layer: natural log of ‖∂L_T/∂h_t‖ for t = 1..T ([T], float64) and, with
    `want_inputs`, ∂L_T/∂p_t (the projected input) as a scaled sequence.

    The mantissa is divided by its norm every RENORM steps (and wherever a direct part is added): between two
    renormalizations it stays in range (see RENORM). The log scale is not carried step by step: the walk keeps
    what it divided by, and the scale of every step is summed from those divisors after the walk, in one
    vectorized pass (exact whatever the divisor: a_t = e^σ · m holds for σ + log d and m / d). Where a direct
    part is added, the scale so far is summed at that step and a new run of divisors begins."""
    steps = direct.scale.shape[0]
    with_direct = set((direct.scale > -math.inf).nonzero().flatten().tolist())
    a = direct.mantissa.new_zeros(direct.mantissa.shape[1], traj.state_size)
    renorm, tiny = RENORM[a.dtype], torch.finfo(a.dtype).tiny
    hiddens, grads = [], []
    divisors: list[torch.Tensor] = []     # every divisor of the mantissa, in walk order
    bases = [direct.scale.new_full((), -math.inf)]   # the log scale where each run of divisors begins
    starts = [0]                          # the index in `divisors` where each run begins
    kept = []                             # per step (walk order): (run, divisors applied by then)
    for t in reversed(range(steps)):
        if t in with_direct:
            sigma = bases[-1]
            if len(divisors) > starts[-1]:
                sigma = sigma + torch.log(torch.stack(divisors[starts[-1]:]).double()).sum()
            top = torch.maximum(sigma, direct.scale[t])
            a = a * torch.exp(sigma - top)
            a[:, :traj.hidden].add_(direct.mantissa[t] * torch.exp(direct.scale[t] - top))
            bases.append(top)
            starts.append(len(divisors))
        if t in with_direct or t % renorm == 0:
            divisor = torch.linalg.vector_norm(a).clamp_min_(tiny)
            a = a / divisor
            divisors.append(divisor)
        hiddens.append(traj.hidden_part(a))
        kept.append((len(bases) - 1, len(divisors)))
        a, grad = traj.back(t, a, want_inputs)
        if want_inputs:
            grads.append(grad)
    logs = torch.log(torch.stack(divisors).double()) if divisors else direct.scale.new_zeros(0)
    summed = torch.cat([logs.new_zeros(1), torch.cumsum(logs, 0)])     # summed[k]: the first k logs
    run, count = torch.tensor(kept, device=logs.device).T
    sigma_t = (torch.stack(bases)[run] + summed[count] - summed[torch.tensor(starts, device=logs.device)[run]]).flip(0)
    norms = torch.linalg.vector_norm(torch.stack(hiddens[::-1]).flatten(1), dim=1)
    inputs = Scaled(torch.stack(grads[::-1]), sigma_t).normalized() if want_inputs else None
    return sigma_t + torch.log(norms.double()), inputs


def _direct_of_top(net: RecurrentNet, top: torch.Tensor, task: Task,
                   y: torch.Tensor) -> tuple[Scaled, torch.Tensor]:
    """∂L_T/∂(the head's input sequence), by autograd through attention, readout and loss; and the whole
    loss L of that forward (the training loss, which is L_T where only the final step has a target)."""
    leaf = top.detach().requires_grad_()
    out = net.head(leaf)
    (grad,) = torch.autograd.grad(task.final_step_loss(out, y), leaf)
    return Scaled.of(grad.transpose(0, 1)), task.loss(out.detach(), y)


def _through_norm(net: RecurrentNet, i: int, out: torch.Tensor, adjoint: Scaled) -> Scaled:
    """∂L_T/∂(layer i's output) from ∂L_T/∂(its normalized output)."""
    norm = net.norms[i]
    if isinstance(norm, torch.nn.Identity):
        return adjoint
    leaf = out.detach().requires_grad_()
    normed = norm(leaf)

    def vjp(cotangent: torch.Tensor) -> torch.Tensor:   # cotangent time-major, like every mantissa
        (grad,) = torch.autograd.grad(normed, leaf, cotangent.transpose(0, 1), retain_graph=True)
        return grad.transpose(0, 1)

    if net.time_local:
        return adjoint.map(vjp)
    common = adjoint.scale.max().clamp_min(FLOOR)
    return Scaled(vjp(adjoint.at(common)), torch.full_like(adjoint.scale, common.item())).normalized()


def log_profile(net: RecurrentNet, task: Task, batch: Batch,
                dtype: torch.dtype = torch.float32) -> list[list[float]]:
    """log10 ‖∂L_T/∂h_t‖ per layer (bottom first), t = 1..T, for L_T the loss at the final step.
    −inf where the gradient is exactly zero, NaN where the network's states are not finite.
    `dtype` is that of the forward states and the walked mantissas (`train.probe_dtype`); log scales are
    always float64. The network is copied, so the probe never touches its weights or norm statistics."""
    return log_profile_and_loss(net, task, batch, dtype)[0]


def log_profile_and_loss(net: RecurrentNet, task: Task, batch: Batch,
                         dtype: torch.dtype = torch.float32) -> tuple[list[list[float]], float]:
    """`log_profile`, and the batch's loss from the same forward (in `dtype`): what a probe at
    initialization without the parameter gradient reports as its loss (`train.probe_loss_gradient=false`)."""
    copy_ = copy.deepcopy(net).to(dtype).train(net.training)
    x = batch.x.to(dtype)
    y = batch.y.to(dtype) if batch.y.is_floating_point() else batch.y
    trajectories = []
    with torch.no_grad():
        u = x
        for i, layer in enumerate(copy_.layers):
            trajectories.append(trajectory(layer, u))
            u = copy_.between(i, u, trajectories[-1].outputs)
    adjoint, loss = _direct_of_top(copy_, u, task, y)       # ∂L_T/∂(input of the head)
    profiles: list[list[float]] = [[] for _ in copy_.layers]
    for i in reversed(range(len(copy_.layers))):
        traj = trajectories[i]
        direct = _through_norm(copy_, i, traj.outputs, adjoint)
        log_norms, grads = _walk(traj, direct, want_inputs=i > 0)
        profiles[i] = (log_norms / LN10).tolist()
        if i > 0:   # ∂L_T/∂(input of layer i) = W_ihᵀ ∂L_T/∂p_t (+ the residual path)
            below = grads.map(lambda m, w=traj.w_ih: m @ w)
            adjoint = below.plus(adjoint) if copy_.cfg.residual else below
        trajectories[i] = None   # free the layer's coefficients before the next walk
    return profiles, loss.item()
