"""workers/optim.py: the optimizer that each `train.optimizer` value builds (class, learning rate, momentum),
the global gradient norm, and Pascanu et al. (2013)'s clipping on gradients set by hand: `norm` rescales the
whole gradient to θ, `value` clamps each entry to [−θ, θ], `none` leaves it; the norm returned is the one
before clipping."""
from __future__ import annotations

import math

import pytest
import torch

from workers.config import ClipConfig, ClipMode, Optimizer, TrainConfig
from workers.optim import clip, global_norm, make_optimizer


def params_with_grads(*grads: list[float]) -> list[torch.Tensor]:
    params = []
    for g in grads:
        p = torch.zeros(len(g), requires_grad=True)
        p.grad = torch.tensor(g)
        params.append(p)
    return params


@pytest.mark.parametrize("name,cls,momentum", [
    (Optimizer.sgd, torch.optim.SGD, 0), (Optimizer.momentum, torch.optim.SGD, 0.7),
    (Optimizer.rmsprop, torch.optim.RMSprop, 0.7), (Optimizer.adam, torch.optim.Adam, None)])
def test_each_optimizer_value_builds_its_optimizer(name, cls, momentum):
    p = torch.zeros(3, requires_grad=True)
    opt = make_optimizer([p], TrainConfig(optimizer=name, lr=0.05, momentum=0.7))
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.05 and group["params"] == [p]
    if momentum is not None:
        assert group["momentum"] == momentum
    else:
        assert "momentum" not in group          # Adam has betas, not the `train.momentum` key


def test_plain_sgd_takes_one_plain_step():
    p = torch.ones(2, requires_grad=True)
    opt = make_optimizer([p], TrainConfig(optimizer=Optimizer.sgd, lr=0.5))
    for _ in range(2):                           # no momentum: the second step is the same as the first
        p.grad = torch.tensor([1.0, -2.0])
        opt.step()
    assert p.tolist() == [0.0, 3.0]


def test_global_norm_over_every_gradient():
    params = params_with_grads([3.0], [4.0, 0.0]) + [torch.zeros(2, requires_grad=True)]   # last: no grad
    assert global_norm(params).item() == pytest.approx(5.0)
    assert global_norm([torch.zeros(2, requires_grad=True)]).item() == 0.0


def test_clip_norm_rescales_the_whole_gradient():
    params = params_with_grads([3.0], [0.0, 4.0])
    norm, clipped = clip(params, ClipConfig(mode=ClipMode.norm, threshold=1.0), measure=False)
    assert norm == pytest.approx(5.0) and clipped is True
    assert params[0].grad.tolist() == pytest.approx([0.6], abs=1e-6)
    assert params[1].grad.tolist() == pytest.approx([0.0, 0.8], abs=1e-6)
    assert global_norm(params).item() == pytest.approx(1.0, abs=1e-5)


def test_clip_norm_leaves_a_small_gradient():
    params = params_with_grads([3.0], [0.0, 4.0])
    norm, clipped = clip(params, ClipConfig(mode=ClipMode.norm, threshold=10.0), measure=True)
    assert norm == pytest.approx(5.0) and clipped is False
    assert params[0].grad.tolist() == [3.0] and params[1].grad.tolist() == [0.0, 4.0]


def test_clip_value_clamps_each_entry():
    params = params_with_grads([3.0, -4.0], [0.5])
    norm, clipped = clip(params, ClipConfig(mode=ClipMode.value, threshold=1.0), measure=True)
    assert norm == pytest.approx(math.sqrt(9 + 16 + 0.25)) and clipped is True     # before clipping
    assert params[0].grad.tolist() == [1.0, -1.0] and params[1].grad.tolist() == [0.5]
    norm, clipped = clip(params_with_grads([0.5, -0.25]), ClipConfig(mode=ClipMode.value, threshold=1.0),
                         measure=False)
    assert norm is None and clipped is False


def test_clip_none_changes_nothing():
    params = params_with_grads([30.0, -40.0])
    assert clip(params, ClipConfig(mode=ClipMode.none, threshold=1.0), measure=True) == (pytest.approx(50.0), False)
    assert clip(params, ClipConfig(mode=ClipMode.none, threshold=1.0), measure=False) == (None, False)
    assert params[0].grad.tolist() == [30.0, -40.0]


def test_an_exploding_gradient_past_float32_s_norm_range_is_measured_and_rescaled_not_zeroed():
    """Every entry 1e20 is a finite float32, but the square of the norm (4e40) is not: a float32 norm is Inf, and
    PyTorch's clip_grad_norm_ then scales the gradient by θ/Inf = 0. The norm is taken in float64: 2e20, and the
    clipped gradient has norm θ, its direction kept."""
    params = params_with_grads([1e20, 1e20, 1e20, 1e20])
    assert math.isinf(torch.linalg.vector_norm(params[0].grad).item())      # what float32 gives
    assert global_norm(params).item() == pytest.approx(2e20, rel=1e-6)
    norm, clipped = clip(params, ClipConfig(mode=ClipMode.norm, threshold=1.0), measure=True)
    assert clipped and norm == pytest.approx(2e20, rel=1e-6)
    assert params[0].grad.tolist() == pytest.approx([0.5] * 4, rel=1e-5)
    assert global_norm(params).item() == pytest.approx(1.0, rel=1e-5)
