"""The readout of an echo state network, fit in closed form by ridge regression (Jaeger 2001;
Lukoševičius 2012, "A practical guide to applying echo state networks", §4.1).

With the reservoir states X (one row per scored step, after each window's washout, plus a constant 1 for
the bias) and the targets Y (the value to predict; a one-hot row for a classification task):

    W_out = (XᵀX + λ I')⁻¹ XᵀY,     I' = the identity without the bias entry (the bias is not shrunk).

XᵀX and XᵀY are accumulated in float64 batch by batch (`RidgeFit.add`), so the states of every training
window never need to be held at once, and `solve` can be called at any point (a learning curve over the
windows collected). No gradient step is taken.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class RidgeFit:
    def __init__(self, features: int, outputs: int, device: torch.device | None = None):
        self.xtx = torch.zeros(features + 1, features + 1, dtype=torch.float64, device=device)
        self.xty = torch.zeros(features + 1, outputs, dtype=torch.float64, device=device)
        self.rows = 0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """x [N, features], y [N, outputs]."""
        x1 = torch.cat([x.double(), x.new_ones(x.shape[0], 1, dtype=torch.float64)], 1)
        self.xtx += x1.T @ x1
        self.xty += x1.T @ y.double()
        self.rows += x.shape[0]

    def solve(self, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(W [outputs, features], b [outputs]) in float64."""
        reg = torch.eye(self.xtx.shape[0], dtype=torch.float64, device=self.xtx.device) * ridge
        reg[-1, -1] = 0.0
        try:
            w = torch.linalg.solve(self.xtx + reg, self.xty)
        except RuntimeError:   # singular (λ = 0 and too few or collinear states): the least-norm solution
            w = torch.linalg.pinv(self.xtx + reg) @ self.xty
        return w[:-1].T, w[-1]

    @torch.no_grad()
    def solve_into(self, readout: nn.Linear, ridge: float) -> None:
        weight, bias = self.solve(ridge)
        readout.weight.copy_(weight.to(readout.weight.dtype))
        readout.bias.copy_(bias.to(readout.bias.dtype))


def design(features: torch.Tensor, y: torch.Tensor, classes: int | None,
           skip: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the regression from the readout's input [B, L, F] and the targets ([B, L] per step, [B] at
    the last step): steps before `skip` dropped; a classification target one-hot over `classes`."""
    if y.dim() == 2:                       # a target per step: [B, L]
        features, y = features[:, skip:], y[:, skip:]
    else:                                  # the last step only: features [B, 1, F]
        features, y = features[:, -1:], y.unsqueeze(1)
    x = features.reshape(-1, features.shape[-1])
    y = y.reshape(-1)
    target = F.one_hot(y.long(), classes).double() if classes else y.double().unsqueeze(1)
    return x, target
