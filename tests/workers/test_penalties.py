"""workers/penalties.py: the penalties on known weights. l2 is Σθ² (gradient 2θ); Pascanu et al. (2013)'s Ω on
a linear RNN whose recurrent matrix is c·Q (Q orthogonal) is exactly (c − 1)² per layer, since every one-step
Jacobian scales every back-propagated gradient by c; and Ω's own gradient reaches the recurrent matrix."""
from __future__ import annotations

import pytest
import torch

from workers.config import Activation, Cell, ModelConfig
from workers.model.network import RecurrentNet
from workers.penalties import l2, omega

B, T, IN, H = 4, 6, 3, 5


def test_l2_on_known_weights():
    a = torch.tensor([1.0, -2.0], requires_grad=True)
    b = torch.tensor([[3.0], [0.5]], requires_grad=True)
    value = l2([a, b])
    assert value.item() == pytest.approx(1 + 4 + 9 + 0.25)
    value.backward()
    assert a.grad.tolist() == [2.0, -4.0] and b.grad.tolist() == [[6.0], [1.0]]


def linear_net(scales: list[float], per_step: bool = False) -> RecurrentNet:
    """A linear RNN with W_hh = c·Q per layer (Q a fixed random orthogonal matrix)."""
    torch.manual_seed(0)
    net = RecurrentNet(ModelConfig(cell=Cell.rnn, activation=Activation.linear, hidden_size=H, layers=len(scales)),
                       IN, 1, per_step, seed=0)
    q, _ = torch.linalg.qr(torch.randn(H, H, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        for layer, c in zip(net.layers, scales):
            layer.w_hh.copy_(c * q)
    return net


def run(net: RecurrentNet):
    x = torch.randn(B, T, IN, generator=torch.Generator().manual_seed(2))
    output = net(x, unrolled=True)
    loss = output.out.pow(2).mean() + output.out.mean()
    return output, loss


@pytest.mark.parametrize("scales,expected", [([1.0], 0.0), ([0.5], 0.25), ([2.0], 1.0), ([0.5, 1.5], 0.5)])
def test_omega_on_known_recurrent_matrices(scales, expected):
    net = linear_net(scales)
    output, loss = run(net)
    assert omega(net, output, loss).item() == pytest.approx(expected, abs=1e-5)


def test_omega_per_step_targets():
    net = linear_net([0.8], per_step=True)
    output, loss = run(net)
    assert omega(net, output, loss).item() == pytest.approx(0.04, abs=1e-5)


def test_omega_gradient_reaches_the_recurrent_matrix():
    """For W = c·Q: ∂Ω/∂W = mean 2(c − 1)·gᵀ(g Q)/‖g‖², whose inner product with Q is 2(c − 1)."""
    c = 0.5
    net = linear_net([c])
    output, loss = run(net)
    w = net.layers[0].w_hh
    (grad,) = torch.autograd.grad(omega(net, output, loss), w)
    q = w.detach() / c
    assert (grad * q).sum().item() == pytest.approx(2 * (c - 1), abs=1e-4)
    assert loss.requires_grad                     # the training loss's graph is kept for its own backward
    loss.backward()
