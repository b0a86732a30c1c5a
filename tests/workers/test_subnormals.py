"""workers/subnormals.py: inside `subnormals_flushed()` a float32 result below the normal range (1.2e-38) is 0;
after the block, however it ends, the process computes gradual underflow again (PyTorch's default)."""
from __future__ import annotations

import pytest
import torch

from workers.subnormals import subnormals_flushed

TINY = torch.tensor([1e-30], dtype=torch.float32)


def subnormal() -> float:
    return (TINY * 1e-9).item()          # 1e-39: subnormal in float32


def test_flushes_inside_and_restores_after():
    assert subnormal() > 0
    with subnormals_flushed() as supported:
        if not supported:
            pytest.skip("this CPU cannot flush subnormals (no SSE3)")
        assert subnormal() == 0.0
        assert (TINY * 1e-5).item() == pytest.approx(1e-35, rel=1e-5, abs=0)      # normal numbers are untouched
    assert subnormal() == pytest.approx(1e-39, rel=1e-3, abs=0)      # approx alone would take 0 for 1e-39


def test_restores_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with subnormals_flushed():
            1 / 0
    assert subnormal() > 0


def test_a_backward_pass_underflows_to_zero_only_inside():
    """The vanishing gradient itself: d(x·1e-20·1e-20)/dx is 1e-40, subnormal, 0 inside the block."""
    def grad() -> float:
        x = torch.ones(1, requires_grad=True)
        (x * 1e-20 * 1e-20).sum().backward()
        return x.grad.item()

    with subnormals_flushed() as supported:
        inside = grad()
    if supported:
        assert inside == 0.0
    assert grad() == pytest.approx(1e-40, rel=1e-2, abs=0)
