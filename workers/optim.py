"""Optimizers (`train.optimizer`) and gradient clipping (`train.clip`).

Clipping follows Pascanu et al. (2013): mode `norm` rescales the whole gradient g ← θ·g/‖g‖ when
‖g‖ ≥ θ (global norm over every trainable parameter); mode `value` clamps each entry to [−θ, θ].
"""
from __future__ import annotations

import torch

from workers.config import ClipConfig, ClipMode, Optimizer, TrainConfig


def make_optimizer(params: list[torch.Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == Optimizer.sgd:
        return torch.optim.SGD(params, lr=cfg.lr)
    if cfg.optimizer == Optimizer.momentum:
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == Optimizer.rmsprop:
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(params, lr=cfg.lr)


def global_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """‖∂L/∂θ‖ over every gradient, summed in float64: a float32 norm overflows to Inf once it passes ~1.8e19
    (its square, 3.4e38), while every entry of an exploding gradient is still finite."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), dtype=torch.float64)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64) for g in grads]))


def clip(params: list[torch.Tensor], cfg: ClipConfig, measure: bool) -> tuple[float | None, bool]:
    """Clip in place; returns (global norm before clipping or None if not measured, clipped?)."""
    if cfg.mode == ClipMode.norm:   # g ← g·θ/‖g‖ where ‖g‖ > θ (Pascanu et al. 2013), the norm in float64: PyTorch's
        # clip_grad_norm_ takes it in the gradients' dtype, and a float32 norm past ~1.8e19 is Inf, which
        # scales a finite exploding gradient to zero instead of to θ
        norm = global_norm(params).item()
        if norm > cfg.threshold:
            scale = cfg.threshold / (norm + 1e-6)
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(scale)
        return norm, norm > cfg.threshold
    norm = global_norm(params).item() if measure else None
    if cfg.mode == ClipMode.value:
        clipped = any(bool((p.grad.abs() > cfg.threshold).any()) for p in params if p.grad is not None)
        torch.nn.utils.clip_grad_value_(params, cfg.threshold)
        return norm, clipped
    return norm, False
