"""The field's core checks on the rate reference: drives = ∂Φ/∂s, EP ≈ BPTT (GDU), fixed points."""
import pytest
import torch
import torch.nn.functional as F

import rate_ref as R
import tiny
from tiny import TINY

def make(kind, loss="cross_entropy", seed=0):
    return tiny.make(kind, loss, seed)


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("kind", list(TINY))
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_drives_equal_autograd_of_phi(kind, loss):
    net, x, y = make(kind, loss)
    # a generic interior state (random in (0,1)) so max-pool argmaxes are unambiguous
    state = tuple(torch.rand(x.shape[0], *s, dtype=torch.float64, requires_grad=True) for s in net.state_shapes)
    for beta in (0.0, 0.7):
        phi = net.phi(x, state, beta, y).sum()
        auto = torch.autograd.grad(phi, state)
        explicit = R.drives(net, x, state, beta=beta, y=y)
        for n, a in enumerate(auto):
            torch.testing.assert_close(explicit[n], a, rtol=1e-10, atol=1e-12)


def test_avg_unpool_is_adjoint_of_avg_pool():
    z = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    s = torch.rand(2, 3, 3, 3, dtype=torch.float64)
    (g,) = torch.autograd.grad((F.avg_pool2d(z, 2) * s).sum(), z)
    layer = R.ConvPool((3, 6, 6), 3, pool="avg").double()
    torch.testing.assert_close(layer._unpool(s, None), g)


@pytest.mark.parametrize("hw,kernel,padding", [((6, 6), 3, 1), ((7, 5), 2, 0), ((8, 8), 5, 2), ((6, 8), 3, 0)])
def test_avg_conv_pool_as_one_strided_convolution(hw, kernel, padding):
    # the layer computes avg2x2(W ⋆ s + b) as one stride-2 convolution with a (k+1)×(k+1) kernel:
    # it must equal the two-step definition, and its feedback the two-step adjoint
    torch.manual_seed(0)
    layer = R.ConvPool((3, *hw), 4, kernel=kernel, padding=padding, pool="avg").double()
    s_prev = torch.rand(2, 3, *hw, dtype=torch.float64)
    s = torch.rand(2, *layer.out_shape, dtype=torch.float64)
    two_step = F.avg_pool2d(F.conv2d(s_prev, layer.weight, layer.bias, padding=padding), 2)
    torch.testing.assert_close(layer.forward_drive(s_prev), two_step, rtol=1e-12, atol=1e-12)
    adjoint = F.conv_transpose2d(layer._unpool(s, None), layer.weight, padding=padding)
    torch.testing.assert_close(layer.feedback_drive(s, s_prev), adjoint, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", list(TINY))
@pytest.mark.parametrize("mode", ["evenodd", "forward"])
def test_sync_and_gauss_seidel_schedules_reach_same_fixed_point(kind, mode):
    # even/odd and forward (bottom-up, the order an executed NIR graph follows) iterate the same map
    net, x, _ = make(kind)
    with torch.no_grad():
        a = R.relax(net, x, steps=400, mode="sync")
        b = R.relax(net, x, steps=200, mode=mode)
        b_short = R.relax(net, x, steps=15, mode=mode)
        a_short = R.relax(net, x, steps=15, mode="sync")
    for sa, sb in zip(a, b):
        torch.testing.assert_close(sa, sb, atol=1e-9, rtol=0)
    # they converge faster (the reason to have them)
    err = lambda st: sum((s1 - s2).abs().max().item() for s1, s2 in zip(st, a))
    assert err(b_short) <= err(a_short)


def _grads(net, x, y, est, beta, T1=300, T2=40):
    return R.ep_gradients(net, x, y, estimator=est, beta=beta, T1=T1, T2=T2)


@pytest.mark.parametrize("kind", list(TINY))
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_gdu_symmetric_ep_matches_bptt(kind, loss):
    net, x, y = make(kind, loss)
    ref = R.bptt_gradients(net, x, y, T1=300, K=40)
    sym = _grads(net, x, y, "symmetric", 0.002)
    one = _grads(net, x, y, "one_sided", 0.002)
    assert set(sym) == set(dict(net.named_parameters()))
    for k in ref:
        assert F.cosine_similarity(sym[k].flatten(), ref[k].flatten(), 0) >= 0.99, k
    e_sym = sum(rel_err(sym[k], ref[k]) for k in ref)
    e_one = sum(rel_err(one[k], ref[k]) for k in ref)
    assert e_sym * 5 < e_one, (e_sym, e_one)


def test_estimator_bias_orders_in_beta():
    net, x, y = make("dense", "cross_entropy")
    ref = R.bptt_gradients(net, x, y, T1=300, K=60)
    err = {}
    for est in ("one_sided", "symmetric"):
        for beta in (0.2, 0.1):
            g = _grads(net, x, y, est, beta, T2=60)
            err[est, beta] = sum(rel_err(g[k], ref[k]) for k in ref)
    one_ratio = err["one_sided", 0.2] / err["one_sided", 0.1]
    sym_ratio = err["symmetric", 0.2] / err["symmetric", 0.1]
    assert 1.6 < one_ratio < 2.5, one_ratio      # ≈ 2: first order
    assert 3.2 < sym_ratio < 5.0, sym_ratio      # ≈ 4: second order


def test_random_sign_uses_both_signs():
    net, x, y = make("dense")
    gen = torch.Generator().manual_seed(0)
    betas = {R.ep_gradients(net, x, y, estimator="random_sign", beta=0.1, T1=50, T2=10,
                            generator=gen, return_states=True)[1]["beta"] for _ in range(12)}
    assert betas == {0.1, -0.1}


def test_bad_arguments_are_named():
    net, x, y = make("dense")
    with pytest.raises(ValueError, match="beta"):
        R.ep_gradients(net, x, y, estimator="symmetric", beta=0.0, T1=5, T2=5)
    with pytest.raises(ValueError, match="estimator"):
        R.ep_gradients(net, x, y, estimator="two_sided", beta=0.1, T1=5, T2=5)
    with pytest.raises(ValueError, match="mode"):
        R.relax(net, x, steps=3, mode="async")
    with pytest.raises(ValueError, match="shape"):
        R.relax(net, x[:, :, :5], steps=3)


def test_dtype_and_device_follow_input():
    torch.manual_seed(0)
    net = R.build_network(TINY["conv_avg"])
    x = torch.rand(2, 2, 8, 8)
    s = R.relax(net, x, steps=3)
    assert all(t.dtype == torch.float32 for t in s)
    s64 = R.relax(net.double(), x.double(), steps=3)
    assert all(t.dtype == torch.float64 for t in s64)


def _nudged_residual(net, x, y, beta, mode):
    """max |s_{T+1} − s_T| after a long nudged phase from the free fixed point."""
    with torch.no_grad():
        s = R.relax(net, x, steps=300, mode="evenodd")
        a = R.relax(net, x, steps=200, beta=beta, y=y, state=s, mode=mode)
        b = R.relax(net, x, steps=1, beta=beta, y=y, state=a, mode=mode)
    return max((u - v).abs().max().item() for u, v in zip(a, b))


def test_squared_error_nudged_phase_settles_only_for_beta_below_theta():
    net, x, y = tiny.make("dense", loss="squared_error")
    assert _nudged_residual(net, x, y, 0.5, "evenodd") < 1e-9
    assert _nudged_residual(net, x, y, 1.0, "evenodd") > 0.1   # slope −β/θ = −1: period 2
    # sync mode can oscillate already below θ (documented in rate_ref.dynamics)
    assert _nudged_residual(net, x, y, 0.5, "sync") > 0.1


def test_trainer_refuses_squared_error_with_beta_at_or_above_theta():
    from spiking_ep.config import ConfigError, load_config
    layers = "model.layers=[{type: dense, features: 16}, {type: dense, features: 10}]"
    sets = [layers, "model.loss=squared_error", "optim.lrs=[0.1, 0.1]"]
    with pytest.raises(ConfigError, match="method.beta.*oscillate"):
        load_config(None, sets + ["method.beta=1.0"])
    load_config(None, sets + ["method.beta=0.5"])
    load_config(None, sets + ["method.beta=1.0", "model.kind=spiking"])  # not refused: the spiking nudge reads a filtered rate trace


@pytest.mark.parametrize("kind", ["dense", "conv_max", "conv_avg"])
@pytest.mark.parametrize("mode", ["sync", "evenodd"])
def test_autograd_baseline_step_equals_the_explicit_step(kind, mode):
    # the benchmarks' autograd-of-Φ baseline computes the same dynamics as the explicit drives
    net, x, y = tiny.make(kind, x_scale=2.0)
    s = R.relax(net, x, steps=5, mode=mode)
    for beta in (0.0, 0.7):
        a = R.step(net, x, s, beta=beta, y=y, mode=mode)
        b = R.step(net, x, s, beta=beta, y=y, mode=mode, impl="autograd")
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)
