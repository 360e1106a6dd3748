"""Local spiking updates (rate products, STDP) against the rate model's symmetric EP update; the STDP
accumulation on hand-made spike trains; only binary spikes between layers."""
import pytest
import torch
import torch.nn.functional as F

import rate_ref as R
from spiking_ep.config import SpikingConfig
from spiking_ep.dynamics import SpikingState, relax_spiking
from spiking_ep.learning import _StdpAccumulator, _weight_corr, default_windows, spiking_ep_gradients

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


# --------------------------------------------------------------------------------------------- #
# The STDP accumulation itself: hand-made spike trains with known coincidences
# --------------------------------------------------------------------------------------------- #

ALPHA = 0.5                        # trace decay per step: tau_trace = 1 / ln 2


def _hand_net():
    """Input 2 → layer 0 (2 units: A, B) → layer 1 (1 unit: post), float64."""
    torch.manual_seed(0)
    return R.build_network({"input_shape": [1, 1, 2], "layers": [{"type": "dense", "features": 2},
                                                                {"type": "dense", "features": 1}],
                            "n_classes": 2}).double()


def _trains(T, t_post, t_a, t_b):
    """Spike trains (batch 1) of layer 0 (units A, B) and layer 1 (post), one spike each, and their
    unit-gain traces x_t = α x_{t−1} + (1 − α) z_t from zero, as SpikingStates."""
    z0, z1 = torch.zeros(T, 1, 2, dtype=torch.float64), torch.zeros(T, 1, 1, dtype=torch.float64)
    z0[t_a, 0, 0] = z0[t_b, 0, 1] = z1[t_post, 0, 0] = 1.0
    states, x0, x1 = [], torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    for t in range(T):
        x0, x1 = ALPHA * x0 + (1 - ALPHA) * z0[t], ALPHA * x1 + (1 - ALPHA) * z1[t]
        states.append(SpikingState(v=(x0 * 0, x1 * 0), spikes=(z0[t], z1[t]), syn=(), trace=(x0, x1), rate=x1))
    return states


def _count_rates(T):
    """The rates of the one-spike trains of :func:`_trains` by spike count: 1/T everywhere."""
    return torch.full((1, 2), 1 / T, dtype=torch.float64), torch.full((1, 1), 1 / T, dtype=torch.float64)


@pytest.mark.parametrize("T, shift", [(4, 0), (40, 14)])   # 40 steps: the pairs straddle a CHUNK boundary
def test_stdp_accumulator_on_hand_made_spike_trains(T, shift):
    net = _hand_net()
    x = torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64)
    # post fires at shift + 2; A fires with it (coincidence), B two steps earlier; one spike each
    acc = _StdpAccumulator(net, x)
    for s in _trains(T, t_post=shift + 2, t_a=shift + 2, t_b=shift):
        acc(s)
    E = acc.eligibility(_count_rates(T), T)
    # E_ij = Σ_t ½[z_i(t) x_j(t) + x_i(t) z_j(t)]:
    #   A (coincident): ½[1·(1−α) + (1−α)·1] = 0.5;   B (2 steps before post): ½[1·(1−α)α²] = 0.0625
    torch.testing.assert_close(E["layers.1.weight"], torch.tensor([[0.5, 0.0625]], dtype=torch.float64))
    # the spike counts (and so the rates rule's product) are equal for A and B, STDP's E is not
    assert acc.counts[0].tolist() == [[1.0, 1.0]]
    # input layer: pre = x (a constant current, its own trace): ½ x_j Σ_t [z_i(t) + x_i(t)];
    # with T = 4, A's trace from its spike on sums to 0.5 + 0.25, B's to 0.5 + 0.25 + 0.125 + 0.0625
    tail_a = sum((1 - ALPHA) * ALPHA ** k for k in range(T - (shift + 2)))
    tail_b = sum((1 - ALPHA) * ALPHA ** k for k in range(T - shift))
    expected0 = 0.5 * torch.tensor([[1 + tail_a], [1 + tail_b]], dtype=torch.float64) * x.flatten(1)
    torch.testing.assert_close(E["layers.0.weight"], expected0)
    # biases: window · rate (here the count)
    torch.testing.assert_close(E["layers.0.bias"], torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(E["layers.1.bias"], torch.ones(1, dtype=torch.float64))


def test_stdp_window_is_symmetric_and_decays_with_the_lag():
    net, x = _hand_net(), torch.ones(1, 1, 1, 2, dtype=torch.float64)

    def e_pair(t_post, t_pre):            # E of the synapse post ← A for one pre and one post spike
        acc = _StdpAccumulator(net, x)
        for s in _trains(12, t_post=t_post, t_a=t_pre, t_b=11):
            acc(s)
        return acc.eligibility(_count_rates(12), 12)["layers.1.weight"][0, 0].item()

    for lag in range(1, 5):               # ½ (1−α) α^|lag|, pre before post and post before pre alike
        assert e_pair(6, 6 - lag) == pytest.approx(0.5 * (1 - ALPHA) * ALPHA ** lag)
        assert e_pair(6 - lag, 6) == pytest.approx(0.5 * (1 - ALPHA) * ALPHA ** lag)
    assert e_pair(6, 6) == pytest.approx(1 - ALPHA)


def test_charge_residual_is_paired_with_the_final_traces():
    net = _hand_net()
    x = torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64)
    T = 4
    states = _trains(T, t_post=2, t_a=2, t_b=0)

    def eligibility(c0, c1):
        acc = _StdpAccumulator(net, x)
        for s in states:
            acc(s)
        rates = ((1 + torch.tensor([c0], dtype=torch.float64)) / T, (1 + torch.tensor([[c1]], dtype=torch.float64)) / T)
        return acc.eligibility(rates, T)

    base, E = eligibility([0.0, 0.0], 0.0), eligibility([0.2, -0.1], 0.3)
    # c = window · r̂ − count: c_post = 0.3, c_pre = (0.2, −0.1); the final traces (step 3) are
    # x_pre = ((1−α)α, (1−α)α³) = (0.25, 0.0625) and x_post = (1−α)α = 0.25
    x_pre_end, x_post_end = states[-1].trace[0], states[-1].trace[1]
    torch.testing.assert_close(x_pre_end, torch.tensor([[0.25, 0.0625]], dtype=torch.float64))
    assert x_post_end.item() == 0.25
    # ΔE = ½[c_post ⊗ x_pre(end) + x_post(end) ⊗ c_pre] = ½[0.3·(0.25, 0.0625) + 0.25·(0.2, −0.1)]
    torch.testing.assert_close(E["layers.1.weight"] - base["layers.1.weight"],
                               torch.tensor([[0.0625, -0.003125]], dtype=torch.float64))
    # input layer: its presynaptic side is x (no residual): ΔE = ½ c_0 ⊗ x
    torch.testing.assert_close(E["layers.0.weight"] - base["layers.0.weight"],
                               0.5 * torch.tensor([[0.2], [-0.1]], dtype=torch.float64) * x.flatten(1))
    # biases: window · r̂ = count + c
    torch.testing.assert_close(E["layers.0.bias"], torch.tensor([1.2, 0.9], dtype=torch.float64))
    torch.testing.assert_close(E["layers.1.bias"], torch.tensor([1.3], dtype=torch.float64))


# --------------------------------------------------------------------------------------------- #
# spiking_ep_gradients(rule="stdp") is the STDP accumulation of its own nudged phases
# --------------------------------------------------------------------------------------------- #

def _naive_stdp_E(net, x, states, rates, window):
    """E per weight from the recorded states with explicit per-step sums (autograd for the
    correlation of conv layers), plus the charge residual pairing; no code from learning.py."""
    E = {}
    counts = [sum(s.spikes[i] for s in states) for i in range(len(net.layers))]
    for i, layer in enumerate(net.layers):
        w = layer.weight.detach().clone().requires_grad_(True)

        def corr(pre, post):
            (g,) = torch.autograd.grad((post * layer.drive_with(pre, w, None)).sum(), w)
            return g
        e = torch.zeros_like(w)
        for s in states:
            z_pre, x_pre = (x, x) if i == 0 else (s.spikes[i - 1], s.trace[i - 1])
            e = e + 0.5 * (corr(x_pre, s.spikes[i]) + corr(z_pre, s.trace[i]))
        c_post = window * rates[i] - counts[i]
        c_pre = torch.zeros_like(x) if i == 0 else window * rates[i - 1] - counts[i - 1]
        x_pre_end = x if i == 0 else states[-1].trace[i - 1]
        E[f"layers.{i}.weight"] = e + 0.5 * (corr(x_pre_end, c_post) + corr(c_pre, states[-1].trace[i]))
        E[f"layers.{i}.bias"] = (window * rates[i]).flatten(1).sum(0) if rates[i].dim() == 2 else \
            (window * rates[i]).sum((0, 2, 3))
    return E


@pytest.mark.parametrize("kind", list(NETS))
@pytest.mark.parametrize("estimate", ["count", "charge"])
def test_stdp_rule_is_the_accumulated_spike_timing_not_the_rate_product(kind, estimate):
    net, x, y = make(kind, batch=4)
    beta, T1, T2 = 0.5, 40, 12
    cfg = SpikingConfig(rule="stdp", rate_estimate=estimate, tau_trace=3.0)
    g, st = spiking_ep_gradients(net, x, y, rule="stdp", beta=beta, T1=T1, T2=T2, cfg=cfg)
    # replay the same (deterministic) phases and record every state of the nudged windows
    w_free, w = default_windows(T1, T2, None)
    _, s_free, _ = relax_spiking(net, x, steps=T1, window=w_free, cfg=cfg)
    E = {}
    for sign in (+1, -1):
        states = []
        rates, _, _ = relax_spiking(net, x, steps=T2, window=w, beta=sign * beta, y=y, state=s_free, cfg=cfg,
                                    record=states.append)
        E[sign] = _naive_stdp_E(net, x, states, rates, w)
    for k in E[+1]:
        expected = -(E[+1][k] - E[-1][k]) / (2 * beta * w * x.shape[0])
        torch.testing.assert_close(g[k], expected, msg=k)
    # and it is not the rates rule: same phases, different hidden-weight update
    g_rates, _ = spiking_ep_gradients(net, x, y, rule="rates", beta=beta, T1=T1, T2=T2, cfg=cfg)
    for i in range(1, len(net.layers)):
        k = f"layers.{i}.weight"
        assert (g[k] - g_rates[k]).norm() > 0.05 * g_rates[k].norm(), k


# --------------------------------------------------------------------------------------------- #
# Only binary spikes pass between spiking layers
# --------------------------------------------------------------------------------------------- #

@pytest.mark.parametrize("mode", ["sync", "evenodd", "forward"])
@pytest.mark.parametrize("neuron", [{}, {"neuron": "lif", "tau_mem": 10.0, "tau_syn": 2.0, "rate_estimate": "charge"}])
def test_layers_only_ever_see_binary_spikes(mode, neuron, monkeypatch):
    # Every current a layer receives inside the dynamics is computed from {0, 1} spikes: the state
    # handed to the drives, and every argument the layers' drive methods get while computing them
    # (the update afterwards evaluates ∂Φ/∂θ at the measured rates, outside the dynamics: not spied).
    import spiking_ep.dynamics as SD
    net, x, y = make("conv", batch=4)
    seen, inside = [], [False]
    orig_drives = SD.drives

    def drives(net_, x_, state, **kw):
        seen.extend(state)
        inside[0] = True
        try:
            return orig_drives(net_, x_, state, **kw)
        finally:
            inside[0] = False
    monkeypatch.setattr(SD, "drives", drives)

    def spy(layer, name, which):
        orig = getattr(layer, name)

        def wrapped(*args, **kwargs):
            if inside[0]:
                seen.extend(a for a in args[:which] if a is not None)
            return orig(*args, **kwargs)
        monkeypatch.setattr(layer, name, wrapped)

    for n, layer in enumerate(net.layers):
        if n >= 1:     # layer 0's presynaptic side is the input image, a constant current by design
            spy(layer, "forward_and_indices", 1)
            spy(layer, "forward_drive", 1)
        spy(layer, "feedback_given", 2)      # (spikes of this layer, spikes of the layer below)
        spy(layer, "feedback_drive", 2)
    cfg = SpikingConfig(rule="stdp", **neuron)
    _, st = spiking_ep_gradients(net, x, y, rule="stdp", beta=0.5, T1=20, T2=10, cfg=cfg, mode=mode)
    n_layers = len(net.layers)
    assert len(seen) >= 40 * n_layers                  # every step of all three phases was seen
    values = set(torch.unique(torch.cat([t.flatten() for t in seen])).tolist())
    assert values == {0.0, 1.0}, values                # binary, and spikes did flow
    assert any(set(torch.unique(r).tolist()) - {0.0, 1.0} for r in st["rates_free"])   # rates are not
