"""Spiking dynamics on the shared layers: rates converge to the rate model's fixed point."""
import pytest
import torch
import torch.nn.functional as F

import rate_ref as R
from spiking_ep.config import SpikingConfig
from spiking_ep.dynamics import SpikingState, fanouts, relax_spiking, zero_state

from tiny import SPIKING_NETS as NETS, make_spiking as make


def assert_unique_fixed_point(net, x, s_star):
    for start in (torch.rand_like, torch.ones_like):
        other = rate_fixed_point(net, x, state=tuple(start(s) for s in s_star))
        assert mean_abs_diff(other, s_star) < 1e-9


def mean_abs_diff(a, b):
    return sum((u - v).abs().sum().item() for u, v in zip(a, b)) / sum(u.numel() for u in a)


def rate_fixed_point(net, x, beta=0.0, y=None, state=None, steps=1000):
    with torch.no_grad():
        return R.relax(net, x, steps=steps, beta=beta, y=y, state=state, mode="evenodd")


@pytest.mark.parametrize("kind", list(NETS))
@pytest.mark.parametrize("mode", ["sync", "evenodd"])
def test_free_rates_converge_to_rate_fixed_point(kind, mode):
    net, x, _ = make(kind)
    s_star = rate_fixed_point(net, x)
    assert_unique_fixed_point(net, x, s_star)
    assert 0.1 < torch.cat([s.flatten() for s in s_star]).mean().item() < 0.9
    errs = []
    for T1 in (30, 100, 300, 1000):
        rates, _, _ = relax_spiking(net, x, steps=T1, window=T1 // 2, mode=mode)
        errs.append(mean_abs_diff(rates, s_star))
    assert errs[2] <= 0.02 and errs[3] <= 0.005, errs
    assert all(b < a for a, b in zip(errs, errs[1:])), f"error does not fall with T1: {errs}"


@pytest.mark.parametrize("kind", list(NETS))
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_nudged_rates_converge_to_nudged_fixed_point(kind, loss):
    net, x, y = make(kind, loss)
    s_star = rate_fixed_point(net, x)
    assert_unique_fixed_point(net, x, s_star)
    _, s_free, _ = relax_spiking(net, x, steps=400)
    s_beta, r_beta = {}, {}
    # |β| < θ: with squared error the rate model's own sync/even-odd iteration has slope −β/θ on the
    # output's self-term and oscillates (period 2) for β ≥ θ, so it would not be a valid reference
    for beta in (0.5, -0.5):
        s_beta[beta] = rate_fixed_point(net, x, beta=beta, y=y, state=s_star)
        r_beta[beta], _, _ = relax_spiking(net, x, steps=1000, beta=beta, y=y, state=s_free)
        assert mean_abs_diff(r_beta[beta], s_beta[beta]) < 0.003
    # what EP uses: the difference between the two nudged phases
    d_rate = torch.cat([(a - b).flatten() for a, b in zip(s_beta[0.5], s_beta[-0.5])])
    d_spk = torch.cat([(a - b).flatten() for a, b in zip(r_beta[0.5], r_beta[-0.5])])
    assert d_rate.abs().mean() > 0.005
    assert torch.nn.functional.cosine_similarity(d_spk, d_rate, dim=0) > 0.99


def test_bounded_membrane_is_what_makes_nudged_rates_converge():
    # Without a ceiling a neuron driven above θ in the free phase stores unbounded charge and keeps
    # firing at one spike per step when the nudge lowers its drive: the nudged rates are biased.
    net, x, y = make("dense")
    s_star = rate_fixed_point(net, x)
    s_beta = rate_fixed_point(net, x, beta=1.0, y=y, state=s_star)
    errs = {}
    for name, cfg in (("bounded", SpikingConfig()), ("no ceiling", SpikingConfig(v_floor=0.0, v_ceiling=None))):
        _, s_free, _ = relax_spiking(net, x, steps=1000, cfg=cfg)
        rates, _, _ = relax_spiking(net, x, steps=1000, window=500, beta=1.0, y=y, state=s_free, cfg=cfg)
        errs[name] = mean_abs_diff(rates, s_beta)
    assert errs["bounded"] < 0.002 and errs["no ceiling"] > 5 * errs["bounded"], errs


def test_max_pooling_is_refused_with_average_pooling_named():
    torch.manual_seed(0)
    net = R.build_network({"input_shape": [2, 8, 8], "layers": [{"type": "conv", "channels": 3, "pool": "max"},
                                                               {"type": "dense", "features": 4}]})
    x = torch.rand(2, 2, 8, 8)
    with pytest.raises(ValueError, match="average pooling"):
        relax_spiking(net, x, steps=5)


def test_phases_do_not_mutate_the_shared_start_state():
    net, x, y = make("dense")
    _, s_free, _ = relax_spiking(net, x, steps=50)
    snapshot = [t.clone() for field in s_free[:4] for t in field] + [s_free.rate.clone()]
    a, _, _ = relax_spiking(net, x, steps=30, beta=0.5, y=y, state=s_free)
    relax_spiking(net, x, steps=30, beta=-0.5, y=y, state=s_free)
    b, _, _ = relax_spiking(net, x, steps=30, beta=0.5, y=y, state=s_free)
    after = [t for field in s_free[:4] for t in field] + [s_free.rate]
    assert all(torch.equal(u, v) for u, v in zip(snapshot, after))
    assert all(torch.equal(u, v) for u, v in zip(a, b))      # deterministic from the same state


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_input_and_options_run(dtype):
    net, x, y = make("conv", dtype=dtype)
    for cfg in (SpikingConfig(), SpikingConfig(neuron="lif", tau_mem=50.0), SpikingConfig(tau_syn=2.0),
                SpikingConfig(rate_estimate="charge"), SpikingConfig(v_floor=None, v_ceiling=None)):
        rates, state, stats = relax_spiking(net, x, steps=20, window=10, beta=0.5, y=y, cfg=cfg)
        assert isinstance(state, SpikingState)
        assert all(r.dtype == dtype and r.shape == (x.shape[0], *s) for r, s in zip(rates, net.state_shapes))
        assert all(((r >= 0) & (r <= 1)).all() for r in rates)
        assert 0 < stats["spikes_per_neuron_step"] < 1


def test_charge_estimate_is_exact_for_a_constant_current():
    # one dense layer (its only input is the constant x): (count + Δv/θ)/window = σ(u) exactly
    torch.manual_seed(0)
    net = R.build_network({"input_shape": [1, 4, 4], "layers": [{"type": "dense", "features": 30}],
                           "init_scale": 3.0}).double()
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    expected = R.sigma(net.layers[0].forward_drive(x)).detach()
    rates, _, _ = relax_spiking(net, x, steps=37, window=20, cfg=SpikingConfig(rate_estimate="charge"))
    torch.testing.assert_close(rates[0], expected, atol=1e-12, rtol=0)
    counts, _, _ = relax_spiking(net, x, steps=37, window=20)
    assert (counts[0] - expected).abs().max() <= 1 / 20 + 1e-12


def test_stats_count_spikes_and_synops():
    for kind in NETS:
        net, x, y = make(kind, batch=3)
        seen = []
        _, _, stats = relax_spiking(net, x, steps=25, window=25, beta=0.5, y=y, record=seen.append)
        assert len(seen) == 25
        per_layer = [sum(st.spikes[n] for st in seen) for n in range(len(net.layers))]
        n_spikes = sum(c.sum().item() for c in per_layer)
        neurons = sum(c[0].numel() for c in per_layer)
        assert stats["spikes"] == n_spikes
        assert stats["spikes_per_neuron_step"] == pytest.approx(n_spikes / (neurons * 3 * 25))
        fo = fanouts(net, x)
        assert stats["synops"] == pytest.approx(sum((c * f).sum().item() for c, f in zip(per_layer, fo)))


def _conv_jacobian_nonzeros(fn, in_shape):
    # brute force: per input element, the number of outputs it reaches through a map with all-ones weights
    inp = torch.zeros(1, *in_shape, dtype=torch.float64, requires_grad=True)
    J = torch.autograd.functional.jacobian(lambda t: fn(t).flatten(), inp)
    return (J != 0).sum(0).reshape(in_shape).double()


def test_fanouts_count_weight_entries_brute_force():
    net, x, _ = make("conv")
    fo = fanouts(net, x)
    l0, l1, l2 = net.layers
    ones = lambda w: torch.ones_like(w)
    # layer 0's spikes: forward through conv 1 (conv-level weight entries); no feedback into x
    fwd = _conv_jacobian_nonzeros(lambda t: F.conv2d(t, ones(l1.weight), padding=l1.padding), l1.in_shape)
    torch.testing.assert_close(fo[0], fwd)
    # layer 1's spikes: forward into the dense layer (8 entries each) + back through conv 1's transpose
    # (each pooled neuron unpools to 4 conv positions, each reaching C_in × valid kernel positions)
    back = _conv_jacobian_nonzeros(lambda t: F.conv_transpose2d(t, ones(l1.weight), padding=l1.padding),
                                   (l1.out_shape[0], *l1.conv_hw))
    back = F.avg_pool2d(back[None], 2)[0] * 4
    torch.testing.assert_close(fo[1], back + 8)
    # dense last layer: back into all of layer 1, plus the readout synapses its spikes reach
    n_readout = net.readout.out_features if net.readout is not None else 0
    torch.testing.assert_close(fo[2], torch.full((8,), float(l1.out_shape[0] * 2 * 2 + n_readout), dtype=torch.float64))


def test_zero_state_and_window_validation():
    net, x, _ = make("dense")
    st = zero_state(net, x)
    assert all((v == 0).all() for v in st.v)
    with pytest.raises(ValueError):
        relax_spiking(net, x, steps=10, window=11)
    with pytest.raises(ValueError):
        relax_spiking(net, x, steps=10, beta=0.5)      # no labels
    with pytest.raises(ValueError):
        relax_spiking(net, x, steps=10, mode="async")
