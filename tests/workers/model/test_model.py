"""The recurrent network (workers/model/): shapes, the unrolled pass against the fused kernels, the
remedies (residual, norms, attention), echo state networks, the initialization schemes and the
parameter groups. Real modules, small sizes, no mocks."""
from __future__ import annotations

import math

import pytest
import torch

from workers.config import Activation, Cell, Init, InputInit, ModelConfig, Norm
from workers.model.init import largest_singular_value, spectral_radius
from workers.model.network import RecurrentNet

B, T, IN, OUT, H = 4, 7, 3, 2, 16


def make_net(seed: int = 0, input_size: int = IN, output_size: int = OUT, per_step: bool = True,
             **kw) -> RecurrentNet:
    """A RecurrentNet built as `workers.trial.build` does: the global RNG seeded first (PyTorch's
    default init and the readout draw from it), the configured schemes from `seed`."""
    cfg = ModelConfig(**{"hidden_size": H, **kw})
    torch.manual_seed(seed)
    return RecurrentNet(cfg, input_size, output_size, per_step, seed)


def inputs(batch: int = B, steps: int = T, size: int = IN, seed: int = 123) -> torch.Tensor:
    return torch.randn(batch, steps, size, generator=torch.Generator().manual_seed(seed))


def trainable(net: RecurrentNet) -> list[torch.Tensor]:
    return [p for p in net.parameters() if p.requires_grad]


# --- every cell: shapes --------------------------------------------------------------------------------

CELLS = ([dict(cell=Cell.rnn, activation=a) for a in Activation]
         + [dict(cell=Cell.lstm), dict(cell=Cell.gru)]
         + [dict(cell=Cell.esn, activation=a) for a in (Activation.tanh, Activation.relu)])


def cell_id(kw: dict) -> str:
    return kw["cell"].value + (f"-{kw['activation'].value}" if "activation" in kw else "")


@pytest.mark.parametrize("kw", CELLS, ids=cell_id)
@pytest.mark.parametrize("per_step", [True, False])
def test_forward_shapes(kw, per_step):
    net = make_net(per_step=per_step, **kw)
    x = inputs()
    out = net(x)
    assert out.out.shape == ((B, T, OUT) if per_step else (B, 1, OUT))
    assert torch.isfinite(out.out).all()
    assert out.hs is None and out.inputs is None
    assert len(out.states) == 1
    n_state = 2 if kw["cell"] == Cell.lstm else 1
    assert len(out.states[0]) == n_state and all(s.shape == (B, H) for s in out.states[0])

    un = net(x, unrolled=True)
    assert un.out.shape == out.out.shape
    assert len(un.hs) == 1 and len(un.hs[0]) == T
    assert all(h.shape == (B, H) for h in un.hs[0])
    assert len(un.inputs) == 1 and un.inputs[0].shape == (B, T, IN)
    # the last h_t is the last state's h
    assert torch.equal(un.hs[0][-1], un.states[0][0])
    # every h_t is an autograd node, even when the recurrent weights are frozen (esn)
    assert all(h.requires_grad for h in un.hs[0])


@pytest.mark.parametrize("kw", CELLS, ids=cell_id)
def test_unrolled_matches_fused(kw):
    """The unrolled pass computes the same function as the fused kernel (or, for cells without one,
    the same loop) with the very same weights."""
    net = make_net(**kw)
    x = inputs()
    fused, unrolled = net(x), net(x, unrolled=True)
    assert torch.allclose(fused.out, unrolled.out, atol=1e-5, rtol=0)
    for a, b in zip(fused.states[0], unrolled.states[0]):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kw", [dict(cell=Cell.rnn, activation=Activation.tanh),
                                dict(cell=Cell.rnn, activation=Activation.relu),
                                dict(cell=Cell.lstm), dict(cell=Cell.gru)], ids=cell_id)
def test_fused_path_is_really_the_kernel(kw):
    """For these cells the plain pass is PyTorch's fused module itself: its output equals calling the
    nn.RNN/LSTM/GRU directly, and the unrolled equations agree with it."""
    net = make_net(**kw)
    layer = net.layers[0]
    assert layer.has_fused_kernel
    x = inputs()
    direct, _ = layer.core(x)
    out, steps, _ = layer(x)
    assert steps is None and torch.equal(out, direct)
    out_u, steps_u, _ = layer(x, unrolled=True)
    assert torch.allclose(out_u, direct, atol=1e-5, rtol=0)
    assert torch.equal(torch.stack(steps_u, 1), out_u)


def test_activation_changes_the_rnn():
    x = inputs()
    outs = {a: make_net(cell=Cell.rnn, activation=a)(x).out for a in Activation}
    values = list(outs.values())
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            assert not torch.allclose(values[i], values[j], atol=1e-6)


def test_unrolled_gradient_matches_fused_gradient():
    """The weight gradients of both passes agree (the probes rely on the same weights being read)."""
    net = make_net(cell=Cell.lstm)
    x = inputs()
    net(x).out.pow(2).sum().backward()
    fused = [p.grad.clone() for p in trainable(net)]
    net.zero_grad(set_to_none=True)
    net(x, unrolled=True).out.pow(2).sum().backward()
    for g, p in zip(fused, trainable(net)):
        assert torch.allclose(g, p.grad, atol=1e-4, rtol=1e-4)


# --- multi-layer and the remedies ------------------------------------------------------------------------

DEEP = [dict(), dict(residual=True), dict(norm=Norm.layer), dict(norm=Norm.batch), dict(attention=True),
        dict(residual=True, norm=Norm.layer, attention=True)]


@pytest.mark.parametrize("kw", DEEP, ids=lambda kw: "-".join(f"{k}={getattr(v, 'value', v)}"
                                                              for k, v in kw.items()) or "plain")
@pytest.mark.parametrize("cell", [Cell.rnn, Cell.lstm, Cell.gru])
@pytest.mark.parametrize("per_step", [True, False])
def test_three_layers(kw, cell, per_step):
    net = make_net(cell=cell, layers=3, per_step=per_step, **kw)
    net.train()
    x = inputs()
    fused, unrolled = net(x), net(x, unrolled=True)
    assert fused.out.shape == ((B, T, OUT) if per_step else (B, 1, OUT))
    assert torch.allclose(fused.out, unrolled.out, atol=1e-5, rtol=0)
    assert len(fused.states) == 3 and len(unrolled.hs) == 3
    assert all(len(layer) == T and all(h.shape == (B, H) for h in layer) for layer in unrolled.hs)
    # the layer inputs: x, then each layer's (normalized, residual-added) output sequence
    assert torch.equal(unrolled.inputs[0], x)
    assert all(i.shape == (B, T, H) for i in unrolled.inputs[1:])
    # the readout sees the hidden state, plus the attention summary when on
    assert net.readout.in_features == H * (2 if kw.get("attention") else 1)
    # probes differentiate the final-step loss w.r.t. every h_t of every layer: all reachable
    grads = torch.autograd.grad(unrolled.out[:, -1].sum(), [h for layer in unrolled.hs for h in layer],
                                allow_unused=True)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("option", [dict(residual=True), dict(attention=True), dict(norm=Norm.layer),
                                    dict(norm=Norm.batch)], ids=lambda kw: next(iter(kw)) + str(
                                        getattr(next(iter(kw.values())), "value", "")))
@pytest.mark.parametrize("per_step", [True, False])
def test_options_change_the_output(option, per_step):
    x = inputs()
    off = make_net(layers=3, per_step=per_step, seed=5)
    on = make_net(layers=3, per_step=per_step, seed=5, **option)
    # the recurrent layers are identical (same seed), the option alone makes the difference
    for a, b in zip(off.layers.parameters(), on.layers.parameters()):
        assert torch.equal(a, b)
    assert on(x).out.shape == off(x).out.shape
    assert not torch.allclose(on(x).out, off(x).out, atol=1e-4)


def test_residual_adds_layer_inputs():
    """With residual=True the second and third layers' outputs are added to their inputs."""
    net = make_net(layers=3, residual=True)
    x = inputs()
    un = net(x, unrolled=True)
    h1 = torch.stack(un.hs[0], 1)
    h2 = torch.stack(un.hs[1], 1)
    assert torch.allclose(un.inputs[1], h1, atol=1e-6)          # no skip around the first layer
    assert torch.allclose(un.inputs[2], h1 + h2, atol=1e-6)     # skip around the second


def test_residual_is_a_no_op_with_one_layer():
    x = inputs()
    assert torch.equal(make_net(residual=True)(x).out, make_net()(x).out)


def test_attention_is_causal():
    """With per-step readouts, output t depends only on inputs up to t."""
    net = make_net(attention=True, layers=2)
    x = inputs()
    x2 = x.clone()
    x2[:, 4:] += 1.0
    a, b = net(x).out, net(x2).out
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-4)


def test_norm_layer_normalizes_features():
    net = make_net(layers=2, norm=Norm.layer)
    un = net(inputs(), unrolled=True)
    h = un.inputs[1]   # the first layer's normalized output (LayerNorm at its initial affine 1, 0)
    assert torch.allclose(h.mean(-1), torch.zeros(B, T), atol=1e-5)
    assert torch.allclose(h.var(-1, unbiased=False), torch.ones(B, T), atol=1e-3)


# --- echo state networks --------------------------------------------------------------------------------

def test_esn_only_readout_learns():
    net = make_net(cell=Cell.esn, hidden_size=64, layers=2)
    for layer in net.layers:
        assert all(not p.requires_grad for p in layer.core.parameters())
        bias = layer.core.bias_ih_l0                # a fixed input bias U(−s, s), s = input_scaling (1)
        assert torch.count_nonzero(bias) == 64 and bias.abs().max() <= 1.0
        assert torch.count_nonzero(layer.core.bias_hh_l0) == 0
    assert {id(p) for p in trainable(net)} == {id(p) for p in net.readout.parameters()}
    groups = net.parameter_groups()
    assert set(groups) == {"readout"}

    with_extras = make_net(cell=Cell.esn, hidden_size=64, layers=2, attention=True, norm=Norm.layer)
    expected = {id(p) for m in (with_extras.readout, with_extras.attention, *with_extras.norms)
                for p in m.parameters()}
    assert {id(p) for p in trainable(with_extras)} == expected
    assert set(with_extras.parameter_groups()) == {"readout", "other"}

    # a training step leaves the reservoir exactly as it was
    before = [p.detach().clone() for p in net.layers.parameters()]
    opt = torch.optim.SGD(trainable(net), lr=0.1)
    net(inputs(size=IN)).out.pow(2).mean().backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, net.layers.parameters()))
    assert all(p.grad is None for p in net.layers.parameters())


@pytest.mark.parametrize("radius,sparsity", [(0.9, 0.9), (1.3, 0.8), (0.5, 0.95)])
def test_esn_reservoir_spectral_radius_and_sparsity(radius, sparsity):
    net = make_net(cell=Cell.esn, hidden_size=200, spectral_radius=radius, sparsity=sparsity,
                   input_scaling=0.5)
    w = net.layers[0].w_hh.detach()
    assert spectral_radius(w) == pytest.approx(radius, rel=1e-4)
    zeros = (w == 0).float().mean().item()
    assert abs(zeros - sparsity) <= 0.05
    w_in = net.layers[0].w_ih.detach()
    assert w_in.abs().max() <= 0.5 and w_in.abs().max() > 0.4   # U(−s, s), s = input_scaling


def test_esn_reservoir_is_seeded():
    a = make_net(cell=Cell.esn, hidden_size=50, seed=1).layers[0].w_hh
    torch.manual_seed(999)   # the reservoir depends on `seed` only, not on the global RNG
    b = RecurrentNet(ModelConfig(cell=Cell.esn, hidden_size=50), IN, OUT, True, 1).layers[0].w_hh
    c = make_net(cell=Cell.esn, hidden_size=50, seed=2).layers[0].w_hh
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_esn_leak_changes_the_dynamics():
    x = inputs()
    full = make_net(cell=Cell.esn, leak=1.0)
    leaky = make_net(cell=Cell.esn, leak=0.3)
    assert torch.equal(full.layers[0].w_hh, leaky.layers[0].w_hh)
    hs_full = torch.stack(full(x, unrolled=True).hs[0], 1)
    hs_leaky = torch.stack(leaky(x, unrolled=True).hs[0], 1)
    assert not torch.allclose(hs_full, hs_leaky, atol=1e-4)
    # the leaky update, by hand: h_1 = a·tanh(W_in x_1 + b) from h_0 = 0
    w_in, b = leaky.layers[0].w_ih.detach(), leaky.layers[0].core.bias_ih_l0.detach()
    assert torch.allclose(hs_leaky[:, 0], 0.3 * torch.tanh(x[:, 0] @ w_in.T + b), atol=1e-6)
    assert torch.allclose(hs_full[:, 0], torch.tanh(x[:, 0] @ w_in.T + b), atol=1e-6)
    # h_2 = (1 − a) h_1 + a·tanh(W_in x_2 + W h_1)
    w = leaky.layers[0].w_hh.detach()
    h1 = hs_leaky[:, 0]
    expected = 0.7 * h1 + 0.3 * torch.tanh(x[:, 1] @ w_in.T + b + h1 @ w.T)
    assert torch.allclose(hs_leaky[:, 1], expected, atol=1e-6)


# --- initialization ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("gain", [0.5, 0.9, 1.0, 1.5, 3.0])
def test_scaled_rnn_lambda1_is_the_gain(gain):
    net = make_net(cell=Cell.rnn, init=Init.scaled, init_gain=gain, hidden_size=32, layers=2)
    for layer in net.layers:
        assert largest_singular_value(layer.w_hh.detach()) == pytest.approx(gain, rel=1e-5)


@pytest.mark.parametrize("cell,gates", [(Cell.lstm, 4), (Cell.gru, 3)])
@pytest.mark.parametrize("gain", [0.7, 1.0, 2.0])
def test_scaled_gated_every_block_lambda1_is_the_gain(cell, gates, gain):
    net = make_net(cell=cell, init=Init.scaled, init_gain=gain, hidden_size=24)
    blocks = net.layers[0].recurrent_blocks()
    assert len(blocks) == gates and all(b.shape == (24, 24) for b in blocks)
    for b in blocks:
        assert largest_singular_value(b) == pytest.approx(gain, rel=1e-5)
    # the blocks are distinct draws
    assert not torch.allclose(blocks[0], blocks[1])


@pytest.mark.parametrize("cell", [Cell.rnn, Cell.lstm])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_identity_init(cell, gain):
    net = make_net(cell=cell, init=Init.identity, init_gain=gain)
    for block in net.layers[0].recurrent_blocks():
        assert torch.equal(block, gain * torch.eye(H))


@pytest.mark.parametrize("cell", [Cell.rnn, Cell.lstm, Cell.gru])
@pytest.mark.parametrize("gain", [1.0, 0.8, 1.2])
def test_orthogonal_init(cell, gain):
    net = make_net(cell=cell, init=Init.orthogonal, init_gain=gain, hidden_size=32)
    for block in net.layers[0].recurrent_blocks():
        assert torch.allclose(block.T @ block, gain ** 2 * torch.eye(32), atol=1e-5)
        assert largest_singular_value(block) == pytest.approx(gain, rel=1e-5)


def test_xavier_uniform_bound():
    n = 64
    net = make_net(init=Init.xavier_uniform, hidden_size=n)
    w = net.layers[0].w_hh.detach()
    bound = math.sqrt(6.0 / (2 * n))
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.9 * bound                      # it fills the range
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)


def test_xavier_normal_std():
    n = 64
    w = make_net(init=Init.xavier_normal, hidden_size=n).layers[0].w_hh.detach()
    assert w.std().item() == pytest.approx(math.sqrt(1.0 / n), rel=0.1)


def test_kaiming_std():
    n = 64
    w = make_net(init=Init.kaiming, hidden_size=n).layers[0].w_hh.detach()
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / n), rel=0.1)
    assert abs(w.mean().item()) < 0.05


def test_default_init_is_pytorchs_uniform():
    w = make_net(hidden_size=64).layers[0].w_hh.detach()
    assert w.abs().max() <= 1 / math.sqrt(64)
    assert w.std().item() == pytest.approx(1 / math.sqrt(64) / math.sqrt(3), rel=0.1)


@pytest.mark.parametrize("cell", [Cell.rnn, Cell.lstm])
@pytest.mark.parametrize("input_size,hidden", [(3, 16), (20, 8)])
def test_input_init_orthogonal(cell, input_size, hidden):
    net = make_net(cell=cell, input_init=InputInit.orthogonal, input_size=input_size, hidden_size=hidden)
    layer = net.layers[0]
    blocks = layer.w_ih.detach().chunk(layer.gates, 0)
    for w in blocks:
        assert w.shape == (hidden, input_size)
        if hidden >= input_size:   # orthonormal columns
            assert torch.allclose(w.T @ w, torch.eye(input_size), atol=1e-5)
        else:                      # orthonormal rows
            assert torch.allclose(w @ w.T, torch.eye(hidden), atol=1e-5)


def test_input_init_xavier_uniform_bound():
    net = make_net(input_init=InputInit.xavier_uniform, input_size=10, hidden_size=30)
    w = net.layers[0].w_ih.detach()
    assert w.abs().max() <= math.sqrt(6.0 / 40)


def test_input_init_leaves_recurrent_matrix_alone():
    a = make_net(seed=3)
    b = make_net(seed=3, input_init=InputInit.orthogonal)
    assert torch.equal(a.layers[0].w_hh, b.layers[0].w_hh)
    assert not torch.equal(a.layers[0].w_ih, b.layers[0].w_ih)


def test_forget_bias():
    net = make_net(cell=Cell.lstm, forget_bias=1.0, layers=2)
    for layer in net.layers:
        b_ih, b_hh = layer.core.bias_ih_l0.detach(), layer.core.bias_hh_l0.detach()
        assert torch.equal(b_ih[H:2 * H], torch.ones(H))
        assert torch.equal(b_hh[H:2 * H], torch.zeros(H))
        # the other gates keep PyTorch's init
        assert torch.count_nonzero(b_ih[:H]) == H and torch.count_nonzero(b_ih[2 * H:]) == 2 * H
    # the fused kernel and the unrolled pass both see it
    x = inputs()
    assert torch.allclose(net(x).out, net(x, unrolled=True).out, atol=1e-5, rtol=0)
    plain = make_net(cell=Cell.lstm, layers=2)
    assert not torch.allclose(plain(x).out, net(x).out, atol=1e-5)


@pytest.mark.parametrize("init", [Init.default, Init.scaled, Init.orthogonal, Init.kaiming])
@pytest.mark.parametrize("cell", [Cell.rnn, Cell.lstm, Cell.esn])
def test_same_seed_same_weights(init, cell):
    a = make_net(seed=7, cell=cell, init=init, input_init=InputInit.xavier_normal)
    b = make_net(seed=7, cell=cell, init=init, input_init=InputInit.xavier_normal)
    c = make_net(seed=8, cell=cell, init=init, input_init=InputInit.xavier_normal)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layers.0.core.weight_hh_l0"], sc["layers.0.core.weight_hh_l0"])
    assert not torch.equal(sa["readout.weight"], sc["readout.weight"])


@pytest.mark.parametrize("init", [Init.scaled, Init.orthogonal, Init.xavier_uniform])
def test_configured_schemes_depend_on_seed_only(init):
    """The configured recurrent schemes draw from `seed`, not from the global RNG."""
    torch.manual_seed(1)
    a = RecurrentNet(ModelConfig(hidden_size=H, init=init), IN, OUT, True, seed=4)
    torch.manual_seed(2)
    b = RecurrentNet(ModelConfig(hidden_size=H, init=init), IN, OUT, True, seed=4)
    assert torch.equal(a.layers[0].w_hh, b.layers[0].w_hh)


# --- parameter groups ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,names", [
    (dict(cell=Cell.rnn), {"input", "recurrent", "bias", "readout"}),
    (dict(cell=Cell.lstm, layers=2), {"input", "recurrent", "bias", "readout"}),
    (dict(cell=Cell.gru, layers=3, attention=True), {"input", "recurrent", "bias", "readout", "other"}),
    (dict(cell=Cell.rnn, layers=2, norm=Norm.batch), {"input", "recurrent", "bias", "readout", "other"}),
    (dict(cell=Cell.esn), {"readout"}),
], ids=["rnn", "lstm2", "gru3-attention", "rnn2-batchnorm", "esn"])
def test_parameter_groups(kw, names):
    net = make_net(**kw)
    groups = net.parameter_groups()
    assert set(groups) == names
    assert all(groups.values())
    flat = [id(p) for params in groups.values() for p in params]
    assert len(flat) == len(set(flat)), "a parameter appears in two groups"
    assert set(flat) == {id(p) for p in trainable(net)}
    if kw["cell"] != Cell.esn:
        layers = kw.get("layers", 1)
        assert len(groups["input"]) == layers and len(groups["recurrent"]) == layers
        assert len(groups["bias"]) == 2 * layers
        assert all(p is layer.w_hh for p, layer in zip(groups["recurrent"], net.layers))
        assert all(p is layer.w_ih for p, layer in zip(groups["input"], net.layers))
    assert {id(p) for p in groups["readout"]} == {id(p) for p in net.readout.parameters()}
