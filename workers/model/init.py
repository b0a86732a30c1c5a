"""Initialization of the recurrent and input matrices (`model.init`, `model.input_init`).

Recurrent schemes act on each gate's H×H block of W_hh separately:
- default: PyTorch's U(−1/√H, 1/√H).
- xavier_uniform, xavier_normal (Glorot & Bengio 2010), kaiming (He et al. 2015, fan-in, ReLU gain).
- orthogonal (Saxe et al. 2014): all singular values equal `init_gain`.
- identity (IRNN, Le et al. 2015): `init_gain`·I.
- scaled: Gaussian, rescaled so that its largest singular value λ1 equals `init_gain`: the knob of
  Pascanu et al. (2013), whose bound says λ1 < 1/γ is sufficient for vanishing gradients.
So for orthogonal, identity and scaled, λ1 of every block is `init_gain`.

An echo state network's reservoir is a sparse Gaussian matrix rescaled to `model.spectral_radius`
(the largest |eigenvalue|, Jaeger 2001), with fixed input weights U(−s, s), s = `model.input_scaling`,
and a fixed input bias U(−b, b), b = `model.bias_scaling` (null: b = s).
"""
from __future__ import annotations

import torch

from workers.config import Cell, Init, InputInit, ModelConfig
from workers.model.layer import RecurrentLayer


def largest_singular_value(w: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(w.double(), ord=2).item()


def spectral_radius(w: torch.Tensor) -> float:
    return torch.linalg.eigvals(w.double()).abs().max().item()


def _recurrent_block(block: torch.Tensor, scheme: Init, gain: float, g: torch.Generator) -> None:
    n = block.shape[0]
    if scheme == Init.xavier_uniform:
        bound = (6.0 / (2 * n)) ** 0.5
        block.uniform_(-bound, bound, generator=g)
    elif scheme == Init.xavier_normal:
        block.normal_(0.0, (2.0 / (2 * n)) ** 0.5, generator=g)
    elif scheme == Init.kaiming:
        block.normal_(0.0, (2.0 / n) ** 0.5, generator=g)
    elif scheme == Init.orthogonal:
        q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        block.copy_(gain * q * torch.sign(torch.diagonal(r)))
    elif scheme == Init.identity:
        block.copy_(gain * torch.eye(n))
    elif scheme == Init.scaled:
        w = torch.randn(n, n, generator=g, dtype=torch.float64)
        block.copy_(w * (gain / largest_singular_value(w)))


def _input_matrix(w: torch.Tensor, scheme: InputInit, g: torch.Generator) -> None:
    rows, cols = w.shape
    if scheme == InputInit.xavier_uniform:
        bound = (6.0 / (rows + cols)) ** 0.5
        w.uniform_(-bound, bound, generator=g)
    elif scheme == InputInit.xavier_normal:
        w.normal_(0.0, (2.0 / (rows + cols)) ** 0.5, generator=g)
    elif scheme == InputInit.kaiming:
        w.normal_(0.0, (2.0 / cols) ** 0.5, generator=g)
    elif scheme == InputInit.orthogonal:
        a = torch.randn(max(rows, cols), min(rows, cols), generator=g, dtype=torch.float64)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))
        w.copy_(q if rows >= cols else q.T)


def _reservoir(layer: RecurrentLayer, cfg: ModelConfig, g: torch.Generator) -> None:
    n = layer.hidden_size
    w = torch.randn(n, n, generator=g, dtype=torch.float64)
    w[torch.rand(n, n, generator=g) < cfg.sparsity] = 0.0
    radius = spectral_radius(w)
    if radius == 0.0:   # an all-zero draw at extreme sparsity: fall back to a dense one
        w = torch.randn(n, n, generator=g, dtype=torch.float64)
        radius = spectral_radius(w)
    layer.w_hh.copy_(w * (cfg.spectral_radius / radius))
    layer.w_ih.uniform_(-cfg.input_scaling, cfg.input_scaling, generator=g)
    # a fixed input bias on the same scale (Lukoševičius 2012 §3.2.3): without it a tanh reservoir is odd-
    # symmetric in its input, and a readout fed back as input (the free-running test) drifts away
    # (`model.bias_scaling`; null: the input's scale)
    bias = cfg.input_scaling if cfg.bias_scaling is None else cfg.bias_scaling
    layer.core.bias_ih_l0.uniform_(-bias, bias, generator=g)


@torch.no_grad()
def initialize(layers: list[RecurrentLayer], cfg: ModelConfig, seed: int) -> None:
    """Apply the configured schemes in place, deterministically from `seed`."""
    g = torch.Generator().manual_seed(seed)
    for layer in layers:
        if layer.cell == Cell.esn:
            _reservoir(layer, cfg, g)
            continue
        if cfg.init != Init.default:
            for block in layer.w_hh.chunk(layer.gates, 0):
                _recurrent_block(block, cfg.init, cfg.init_gain, g)
        if cfg.input_init != InputInit.default:
            for block in layer.w_ih.chunk(layer.gates, 0):
                _input_matrix(block, cfg.input_init, g)
        if layer.cell == Cell.lstm and cfg.forget_bias is not None:
            h = layer.hidden_size
            layer.core.bias_ih_l0[h:2 * h] = cfg.forget_bias
            layer.core.bias_hh_l0[h:2 * h] = 0.0

