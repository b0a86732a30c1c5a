"""Penalty terms added to the training loss (`train.penalty.*`).

- l2: λ·Σθ² over every trainable parameter.
- omega: the regularizer Ω of Pascanu, Mikolov & Bengio (2013, eq. 9), which asks the Jacobian of one
  step to preserve the norm of the back-propagated gradient:

      Ω = mean_k mean_batch ( ‖g_{k+1} · ∂h_{k+1}/∂h_k‖ / ‖g_{k+1}‖ − 1 )²,   g_{k+1} = ∂L/∂h_{k+1}

  with g treated as a constant, as in the paper. The one-step Jacobians are taken by re-running every
  step k → k+1 at once from the detached states (a batched cell call), so the cost is one extra cell
  evaluation and one double-backward, not T. Needs the unrolled pass; for rnn and gru (the state is h).
  The mean over k (the paper sums) keeps the weight independent of the sequence length.
"""
from __future__ import annotations

import torch

from workers.model.network import NetOutput, RecurrentNet

EPS = 1e-12


def l2(params: list[torch.Tensor]) -> torch.Tensor:
    return sum(p.pow(2).sum() for p in params)


def omega(net: RecurrentNet, output: NetOutput, loss: torch.Tensor) -> torch.Tensor:
    """Ω summed over layers; `output` must come from the unrolled pass."""
    flat = [h for layer in output.hs for h in layer]
    grads = torch.autograd.grad(loss, flat, retain_graph=True, allow_unused=True)
    steps = len(output.hs[0])
    total = loss.new_zeros(())
    for i, layer in enumerate(net.layers):
        g = [grads[i * steps + t] for t in range(1, steps)]
        g_next = torch.stack([x if x is not None else torch.zeros_like(flat[0]) for x in g]).detach()
        h_prev = torch.stack(output.hs[i][:-1]).detach().requires_grad_()           # [T-1, B, H]
        xp = layer.input_projection(output.inputs[i][:, 1:].detach()).transpose(0, 1)
        (h_next,) = layer.step(xp, (h_prev,))
        (vjp,) = torch.autograd.grad(h_next, h_prev, grad_outputs=g_next, create_graph=True)
        ratio = vjp.norm(dim=-1) / (g_next.norm(dim=-1) + EPS)
        total = total + (ratio - 1).pow(2).mean()
    return total
