"""Local spiking updates (rate products, STDP) against the rate model's symmetric EP update."""
import pytest
import torch
import torch.nn.functional as F

import rate_ref as R
from spiking_ep.config import SpikingConfig
from spiking_ep.dynamics import relax_spiking
from spiking_ep.learning import _weight_corr, default_windows, spiking_ep_gradients

from tiny import SPIKING_NETS as NETS, make_spiking as make


def cos(a, b):
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.mark.parametrize("kind", list(NETS))
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
@pytest.mark.parametrize("rule", ["rates", "stdp"])
def test_spiking_update_aligns_with_rate_symmetric_ep(kind, loss, rule):
    net, x, y = make(kind, loss)
    beta = 0.5
    ref = R.ep_gradients(net, x, y, beta=beta, T1=1000, T2=1000, mode="evenodd")
    per_window = []
    for window in (30, 100, 300, 1000):
        g, _ = spiking_ep_gradients(net, x, y, rule=rule, beta=beta, T1=400, T2=window)
        assert set(g) == set(ref)
        per_window.append({k: cos(g[k], ref[k]) for k in ref})
    worst = [min(c.values()) for c in per_window]
    # every parameter tensor (each layer's weight and bias, the readout) at the longest window
    assert worst[-1] >= 0.95, per_window[-1]
    # and the alignment improves with the window (quantisation error ~ 1/window)
    assert worst[-1] > worst[0]
    assert all(b >= a - 0.02 for a, b in zip(worst, worst[1:])), worst


def test_charge_estimate_helps_at_short_windows():
    net, x, y = make("conv")
    beta = 0.2
    ref = R.ep_gradients(net, x, y, beta=beta, T1=1000, T2=1000, mode="evenodd")
    worst = {}
    for est in ("count", "charge"):
        g, _ = spiking_ep_gradients(net, x, y, beta=beta, T1=400, T2=30, cfg=SpikingConfig(rate_estimate=est))
        worst[est] = min(cos(g[k], ref[k]) for k in ref)
    assert worst["charge"] > worst["count"] + 0.05, worst


def test_rates_rule_is_the_local_rate_product_and_readout_gets_the_mean_loss_gradient():
    net, x, y = make("dense")
    beta, n = 0.5, x.shape[0]
    g, st = spiking_ep_gradients(net, x, y, rule="rates", beta=beta, T1=100, T2=50)
    rp, rm = st["rates_plus"], st["rates_minus"]
    pre_p, pre_m = (x.flatten(1),) + tuple(rp[:-1]), (x.flatten(1),) + tuple(rm[:-1])
    for i in range(len(net.layers)):
        expected = -(rp[i].t() @ pre_p[i] - rm[i].t() @ pre_m[i]) / (2 * beta * n)
        torch.testing.assert_close(g[f"layers.{i}.weight"], expected)
        torch.testing.assert_close(g[f"layers.{i}.bias"], -(rp[i] - rm[i]).sum(0) / (2 * beta * n))
    # readout: ½[∂ℓ/∂W_out(r^{+β}) + ∂ℓ/∂W_out(r^{−β})] with ℓ the mean loss
    W = net.readout.weight
    grads = [torch.autograd.grad(R.loss(net, r, y), W)[0] for r in (rp, rm)]
    torch.testing.assert_close(g["readout.weight"], 0.5 * (grads[0] + grads[1]))


@pytest.mark.parametrize("kind", list(NETS))
def test_stdp_with_constant_spikes_equals_rate_product(kind):
    # STDP's normalisation: if every neuron fired every step (traces = 1 = spikes), E/window is the
    # rate product at rate 1, so the correlation helper must equal ∂/∂W of Σ post • P(W ⋆ pre).
    net, x, _ = make(kind)
    for i, layer in enumerate(net.layers):
        pre = torch.rand(3, *layer.in_shape, dtype=torch.float64)
        post = torch.rand(3, *layer.out_shape, dtype=torch.float64)
        w = layer.weight.detach().clone().requires_grad_(True)
        (expected,) = torch.autograd.grad((post * layer.drive_with(pre, w, None)).sum(), w)
        torch.testing.assert_close(_weight_corr(layer, pre, post), expected)


def test_stats_spikes_synops_and_free_rates():
    net, x, y = make("conv", batch=4)
    T1, T2 = 60, 20
    g, st = spiking_ep_gradients(net, x, y, rule="stdp", beta=0.5, T1=T1, T2=T2)
    sp = st["spikes_per_neuron_step"]
    assert set(sp) == {"free", "plus", "minus"} and all(0 < v < 1 for v in sp.values())
    # synops over all phases = the three relaxations' own counts
    _, s_free, a = relax_spiking(net, x, steps=T1, window=T1 // 2)
    _, _, b = relax_spiking(net, x, steps=T2, beta=0.5, y=y, state=s_free)
    _, _, c = relax_spiking(net, x, steps=T2, beta=-0.5, y=y, state=s_free)
    assert st["synops"] == pytest.approx(a["synops"] + b["synops"] + c["synops"])
    # the measured free rates give train predictions through the rate model's readout
    assert R.predict(net, st["rates_free"]).shape == (4, 5)
    assert st["windows"] == {"free": T1 // 2, "nudged": T2}


def test_argument_checks():
    net, x, y = make("dense")
    with pytest.raises(ValueError, match="rule"):
        spiking_ep_gradients(net, x, y, rule="hebb", beta=0.5, T1=10, T2=10)
    with pytest.raises(ValueError, match="beta"):
        spiking_ep_gradients(net, x, y, beta=0.0, T1=10, T2=10)
    torch.manual_seed(0)
    maxnet = R.build_network({"input_shape": [2, 8, 8], "layers": [{"type": "conv", "channels": 3, "pool": "max"},
                                                                  {"type": "dense", "features": 4}]})
    with pytest.raises(ValueError, match="average pooling"):
        spiking_ep_gradients(maxnet, torch.rand(2, 2, 8, 8), torch.tensor([0, 1]), beta=0.5, T1=10, T2=10)
    assert default_windows(100, 40, None) == (50, 40)
    assert default_windows(100, 40, 60) == (60, 40)


@pytest.mark.parametrize("rule", ["rates", "stdp"])
def test_sgd_with_spiking_updates_tracks_rate_ep(rule):
    # the same SGD steps with the spiking estimate and with rate EP lower the loss about equally
    def data():
        net, x, _ = make("dense", batch=32)
        # learnable labels: a fixed random linear teacher
        teacher = torch.randn(x[0].numel(), 5, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
        return net, x - 0.5, ((x - 0.5).flatten(1) @ teacher).argmax(1)

    def train(estimate):
        net, x, y = data()
        opt = torch.optim.SGD(net.parameters(), lr=0.3)
        params = dict(net.named_parameters())
        for _ in range(20):
            for k, v in estimate(net, x, y).items():
                params[k].grad = v
            opt.step()
        with torch.no_grad():
            return R.loss(net, R.relax(net, x, steps=300, mode="evenodd"), y).item()

    net, x, y = data()
    with torch.no_grad():
        before = R.loss(net, R.relax(net, x, steps=300, mode="evenodd"), y).item()
    rate = train(lambda n, a, b: R.ep_gradients(n, a, b, beta=0.5, T1=300, T2=100, mode="evenodd"))
    spk = train(lambda n, a, b: spiking_ep_gradients(n, a, b, rule=rule, beta=0.5, T1=200, T2=100)[0])
    assert rate < 0.9 * before
    assert (before - spk) > 0.8 * (before - rate), (before, rate, spk)


@pytest.mark.parametrize("rule", ["rates", "stdp"])
def test_dropout_masks_follow_the_rate_model(rule):
    # with dropout masks (fixed over the phases) the spiking update still follows rate EP's masked update
    net, x, y = make("dense")
    masks = (None, (torch.rand(x.shape[0], 12, generator=torch.Generator().manual_seed(0)) > 0.3).double() / 0.7)
    ref = R.ep_gradients(net, x, y, beta=0.5, T1=1000, T2=1000, mode="evenodd", masks=masks)
    g, st = spiking_ep_gradients(net, x, y, rule=rule, beta=0.5, T1=400, T2=1000, masks=masks)
    assert min(cos(g[k], ref[k]) for k in ref) > 0.95
    dropped = masks[1] == 0
    assert (st["rates_free"][1][dropped] == 0).all()      # dropped neurons get no current, never fire
