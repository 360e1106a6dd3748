"""Spiking BPTT (surrogate gradients through the spiking network's time steps)."""
import pytest
import torch
import torch.nn.functional as F

from spiking_ep.config import SpikingConfig
from spiking_ep.dynamics import relax_spiking
from spiking_ep.spiking_bptt import spiking_bptt_gradients

from tiny import make_spiking


class FastSigmoidSpike(torch.autograd.Function):
    """H(a) forward, 1/(1 + k|a|)² backward: written here, independently of snnTorch."""

    @staticmethod
    def forward(ctx, a, k):
        ctx.save_for_backward(a)
        ctx.k = k
        return (a > 0).to(a.dtype)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g / (ctx.k * a.abs() + 1.0) ** 2, None


def unrolled_loss(net, x, y, *, T1, K, theta, k, floor, ceiling, charge):
    """The sync IF network of a two-dense-layer net, written out step by step."""
    W1, b1 = net.layers[0].weight, net.layers[0].bias
    W2, b2 = net.layers[1].weight, net.layers[1].bias
    xf = x.flatten(1)
    v1 = x.new_zeros(x.shape[0], W1.shape[0])
    v2 = x.new_zeros(x.shape[0], W2.shape[0])
    z1, z2 = torch.zeros_like(v1), torch.zeros_like(v2)
    c1, c2 = torch.zeros_like(v1), torch.zeros_like(v2)
    for t in range(T1):
        graph = t >= T1 - K
        if t == T1 - K:
            v2s = v2
        with torch.set_grad_enabled(graph):
            i1 = xf @ W1.t() + b1 + z2 @ W2
            i2 = z1 @ W2.t() + b2
            v1, v2 = v1 + i1, v2 + i2
            if graph:
                n1, n2 = FastSigmoidSpike.apply((v1 - theta) / theta, k), FastSigmoidSpike.apply((v2 - theta) / theta, k)
            else:
                n1, n2 = (v1 > theta).to(x.dtype), (v2 > theta).to(x.dtype)
            v1 = torch.clamp(v1 - theta * n1.detach(), floor * theta, ceiling * theta)
            v2 = torch.clamp(v2 - theta * n2.detach(), floor * theta, ceiling * theta)
            z1, z2 = n1, n2
            if graph:
                c1, c2 = c1 + n1, c2 + n2
    if charge:
        r2 = torch.clamp((c2 + (v2 - v2s) / theta) / K, 0, 1)
    else:
        r2 = c2 / K
    return F.cross_entropy(net.readout(r2), y)


@pytest.mark.parametrize("charge", [False, True])
def test_surrogate_bptt_matches_the_unrolled_computation_written_out(charge):
    torch.manual_seed(0)
    net, x, y = make_spiking("dense", batch=8)
    net.layers = net.layers[:2]
    net.readout = torch.nn.Linear(12, 5).double()
    cfg = SpikingConfig(surrogate="fast_sigmoid", surrogate_slope=4.0, rate_estimate="charge" if charge else "count")
    T1, K = 30, 12
    got, stats = spiking_bptt_gradients(net, x, y, T1=T1, K=K, cfg=cfg)
    loss = unrolled_loss(net, x, y, T1=T1, K=K, theta=net.theta, k=4.0, floor=cfg.v_floor, ceiling=cfg.v_ceiling,
                         charge=charge)
    want = dict(zip(dict(net.named_parameters()), torch.autograd.grad(loss, list(net.parameters()))))
    torch.testing.assert_close(stats["loss"], loss.detach())
    for name, g in want.items():
        assert g.abs().sum() > 0, name           # every parameter gets gradient through the surrogate
        # snnTorch's surrogate functions return float32 spikes, so their backward runs in float32:
        # agreement to float32 rounding (an error in the unrolled maths would show as O(1))
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-7)


def test_spiking_bptt_forward_is_the_spiking_network_and_reduces_the_loss():
    net, x, y = make_spiking("conv", batch=16)
    cfg = SpikingConfig(rate_estimate="charge")
    grads, stats = spiking_bptt_gradients(net, x, y, T1=40, K=20, cfg=cfg)
    rates, _, _ = relax_spiking(net, x, steps=40, window=20, cfg=cfg)
    for a, b in zip(stats["rates"], rates):      # the surrogate changes only the backward pass
        torch.testing.assert_close(a, b)
    assert set(grads) == set(dict(net.named_parameters()))
    with torch.no_grad():
        for name, p in net.named_parameters():
            p -= 0.5 * grads[name]
    _, after = spiking_bptt_gradients(net, x, y, T1=40, K=20, cfg=cfg)
    assert after["loss"] < stats["loss"]
