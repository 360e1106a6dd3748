"""Unidirectional ("vector field") networks: separate backward weights B_n for layers n ≥ 2.

- With B = W the network *is* the bidirectional one: drives, relaxation, EP (new rule) and BPTT.
- With max pooling the backward path unpools at the argmax of B ⋆ s_{n−1}, not of W ⋆ s_{n−1}.
- Old rule (DESIGN §1): (1/2β)(∂F/∂θ(s*))ᵀ(s^β − s^{−β}), F the vector field (drives) — W and B
  get different updates; with B = W their sum tends to the bidirectional EP update as β → 0.
- New rule: one update (the average of the W and B symmetric estimates) for both; with weight
  decay as the leak, W − B decays and the W–B angle shrinks over training.
"""
import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rate_ref as R
import tiny
from tiny import TINY
from spiking_ep import train as T
from spiking_ep.config import load_config



def model_cfg(kind, loss="cross_entropy"):
    return tiny.model_cfg(kind, loss)


def pair(kind, loss="cross_entropy", seed=0, tie=True):
    """(bidirectional net, unidirectional net with the same W, b and (if ``tie``) B = W, x, y), float64."""
    cfg = model_cfg(kind, loss)
    torch.manual_seed(seed)
    bi = R.build_network(cfg).double()
    uni = R.build_network(dict(cfg, unidirectional=True)).double()
    sd = uni.state_dict()
    sd.update(bi.state_dict())
    if tie:
        for i, layer in enumerate(uni.layers):
            if layer.B is not None:
                sd[f"layers.{i}.B"] = sd[f"layers.{i}.weight"].clone()
    uni.load_state_dict(sd)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(5, *cfg["input_shape"], dtype=torch.float64, generator=g)
    y = torch.randint(0, cfg["n_classes"], (5,), generator=g)
    return bi, uni, x, y


def interior_state(net, n, seed=2):
    # random values in (0, 1): max-pool argmaxes are unambiguous
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(n, *s, dtype=torch.float64, generator=g) for s in net.state_shapes)


def test_only_layers_above_the_first_get_independent_backward_weights():
    _, uni, _, _ = pair("conv_max", tie=False)
    assert uni.layers[0].B is None
    for layer in uni.layers[1:]:
        assert layer.B is not None and layer.B.shape == layer.weight.shape
        assert not torch.equal(layer.B, layer.weight)          # initialised independently
    names = dict(uni.named_parameters())
    assert "layers.1.B" in names and "layers.2.B" in names and "layers.0.B" not in names


@pytest.mark.parametrize("kind", list(TINY))
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_tied_backward_weights_equal_the_bidirectional_network(kind, loss):
    bi, uni, x, y = pair(kind, loss)
    state = interior_state(bi, x.shape[0])
    for beta in (0.0, 0.7):
        d_bi = R.drives(bi, x, state, beta=beta, y=y)
        d_uni = R.drives(uni, x, state, beta=beta, y=y)
        for n in d_bi:
            assert torch.equal(d_bi[n], d_uni[n]), (n, beta)
    with torch.no_grad():
        for mode in ("sync", "evenodd"):
            a = R.relax(bi, x, steps=60, mode=mode)
            b = R.relax(uni, x, steps=60, mode=mode)
            assert all(torch.equal(sa, sb) for sa, sb in zip(a, b)), mode
            a = R.relax(bi, x, steps=10, beta=0.5, y=y, state=a, mode=mode)
            b = R.relax(uni, x, steps=10, beta=0.5, y=y, state=b, mode=mode)
            assert all(torch.equal(sa, sb) for sa, sb in zip(a, b)), mode

    # EP, new rule: both W_n and B_n receive exactly the bidirectional W_n update.
    for est in ("symmetric", "one_sided"):
        g_bi = R.ep_gradients(bi, x, y, estimator=est, beta=0.3, T1=80, T2=20)
        g_uni = R.ep_gradients(uni, x, y, estimator=est, beta=0.3, T1=80, T2=20, rule="new")
        for k, g in g_bi.items():
            torch.testing.assert_close(g_uni[k], g, rtol=1e-12, atol=1e-15)
        for i, layer in enumerate(uni.layers):
            if layer.B is not None:
                torch.testing.assert_close(g_uni[f"layers.{i}.B"], g_bi[f"layers.{i}.weight"], rtol=1e-12, atol=1e-15)

    # BPTT: a tied weight's gradient is the sum of its forward-path (W) and backward-path (B) parts.
    b_bi = R.bptt_gradients(bi, x, y, T1=60, K=15)
    b_uni = R.bptt_gradients(uni, x, y, T1=60, K=15)
    for i, layer in enumerate(uni.layers):
        k = f"layers.{i}.weight"
        split = b_uni[k] + (b_uni[f"layers.{i}.B"] if layer.B is not None else 0.0)
        torch.testing.assert_close(split, b_bi[k], rtol=1e-10, atol=1e-14)


def test_max_pool_backward_path_unpools_at_the_argmax_of_B():
    _, uni, x, _ = pair("conv_max", tie=False)
    layer = uni.layers[1]                      # conv 3→4 with max pooling, has B
    s_prev, s = interior_state(uni, x.shape[0])[:2]
    # Oracle: the feedback drive of a B-layer is ∂/∂s_{n−1} [s_n • maxpool(B ⋆ s_{n−1})], whose
    # adjoint routes s_n to the argmax of B ⋆ s_{n−1} and then through the flipped kernel B̃.
    s_prev_ = s_prev.clone().requires_grad_(True)
    (expect,) = torch.autograd.grad((s * F.max_pool2d(F.conv2d(s_prev_, layer.B, padding=1), 2)).sum(), s_prev_)
    got = layer.feedback_drive(s, s_prev)
    torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-14)
    # ...and not at W's argmax (the pools disagree for independently drawn W and B)
    idx_w = F.max_pool2d(F.conv2d(s_prev, layer.weight, padding=1), 2, return_indices=True)[1]
    idx_b = F.max_pool2d(F.conv2d(s_prev, layer.B, padding=1), 2, return_indices=True)[1]
    assert not torch.equal(idx_w, idx_b)
    wrong = F.conv_transpose2d(F.max_unpool2d(s, idx_w, 2, output_size=layer.conv_hw), layer.B, padding=1)
    assert not torch.allclose(got, wrong)
    # the forward drive still pools at W ⋆ s_{n−1} (+ b)
    torch.testing.assert_close(layer.forward_drive(s_prev),
                               F.max_pool2d(F.conv2d(s_prev, layer.weight, layer.bias, padding=1), 2))


def _old_rule_by_hand(net, x, y, beta, T1, T2):
    """Old rule written out for a dense net: (1/2β)(∂F/∂θ(s*))ᵀ Δs, Δs = s^β − s^{−β}, autograd sign.

    F_n = W_n s_{n−1} + b_n + B_{n+1}ᵀ s_{n+1}, so per layer (batch B_s, L = mean loss):
        ∂L/∂W_n ≈ −Δs_n s*_{n−1}ᵀ / (2βB_s),   ∂L/∂b_n ≈ −Σ Δs_n / (2βB_s),   ∂L/∂B_n ≈ −s*_n Δs_{n−1}ᵀ / (2βB_s)
    """
    s_free = R.free_phase(net, x, T1=T1)
    sp = R.nudged_phase(net, x, y, s_free, beta=beta, T2=T2)
    sm = R.nudged_phase(net, x, y, s_free, beta=-beta, T2=T2)
    c = -1.0 / (2 * beta * x.shape[0])
    prev = [x.flatten(1)] + [s.flatten(1) for s in s_free]
    delta = [(a - b).flatten(1) for a, b in zip(sp, sm)]
    out = {}
    for i, layer in enumerate(net.layers):
        out[f"layers.{i}.weight"] = c * delta[i].T @ prev[i]
        out[f"layers.{i}.bias"] = c * delta[i].sum(0)
        if layer.B is not None:
            out[f"layers.{i}.B"] = c * prev[i + 1].T @ delta[i - 1]
    return out


def test_old_rule_is_the_vector_field_estimate_of_DESIGN():
    _, uni, x, y = pair("dense", tie=False)
    got = R.ep_gradients(uni, x, y, beta=0.4, T1=80, T2=20, rule="old")
    want = _old_rule_by_hand(uni, x, y, 0.4, 80, 20)
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=1e-10, atol=1e-14)
    # the readout is outside the dynamics: it gets the symmetric EP (loss-gradient) estimate
    sym = R.ep_gradients(uni, x, y, beta=0.4, T1=80, T2=20, rule="new")
    for k in ("readout.weight", "readout.bias"):
        torch.testing.assert_close(got[k], sym[k])


@pytest.mark.parametrize("kind", ["dense", "conv_max"])
def test_old_rule_with_tied_weights_tends_to_bidirectional_ep(kind):
    # "If F derives from Φ, ∇̂_VF equals ∇̂_EP as β → 0": with B = W, W's and B's old-rule updates
    # are the two halves of the tied weight's update; their sum converges (symmetric form: O(β²)).
    bi, uni, x, y = pair(kind)
    errs = []
    for beta in (0.05, 0.005):
        g_bi = R.ep_gradients(bi, x, y, beta=beta, T1=150, T2=40)
        g_old = R.ep_gradients(uni, x, y, beta=beta, T1=150, T2=40, rule="old")
        e = 0.0
        for i, layer in enumerate(uni.layers):
            k = f"layers.{i}.weight"
            tot = g_old[k] + (g_old[f"layers.{i}.B"] if layer.B is not None else 0.0)
            e = max(e, ((tot - g_bi[k]).norm() / g_bi[k].norm()).item())
            if layer.B is not None:   # the halves themselves differ
                assert not torch.allclose(g_old[k], g_old[f"layers.{i}.B"])
        errs.append(e)
    assert errs[1] < 1e-5 and errs[1] < errs[0] / 50, errs


@pytest.mark.parametrize("kind", ["dense", "conv_max"])
def test_old_rule_updates_W_and_B_differently_new_rule_identically(kind):
    _, uni, x, y = pair(kind, tie=False)
    old = R.ep_gradients(uni, x, y, beta=0.5, T1=60, T2=15, rule="old")
    new = R.ep_gradients(uni, x, y, beta=0.5, T1=60, T2=15, rule="new")
    for i, layer in enumerate(uni.layers):
        if layer.B is None:
            continue
        kw, kb = f"layers.{i}.weight", f"layers.{i}.B"
        cos = F.cosine_similarity(old[kw].flatten(), old[kb].flatten(), 0).item()
        assert abs(cos) < 0.9, (kw, cos)
        assert torch.equal(new[kw], new[kb])
        assert new[kw].data_ptr() != new[kb].data_ptr()      # separate tensors (safe for .grad)
    with pytest.raises(ValueError, match="rule"):
        R.ep_gradients(uni, x, y, beta=0.5, T1=5, T2=5, rule="newest")


def test_new_rule_sgd_step_shrinks_w_minus_b_by_the_leak():
    # Δθ_f = η(∇̂ − λθ_f), Δθ_b = η(∇̂ − λθ_b)  ⇒  (W − B) ← (1 − ηλ)(W − B) exactly.
    _, uni, x, y = pair("conv_max", tie=False)
    lr, wd = 0.1, 0.05
    before = {i: (l.weight - l.B).detach().clone() for i, l in enumerate(uni.layers) if l.B is not None}
    opt = torch.optim.SGD(uni.parameters(), lr=lr, weight_decay=wd)
    g = R.ep_gradients(uni, x, y, beta=0.5, T1=60, T2=15, rule="new")
    params = dict(uni.named_parameters())
    for k, v in g.items():
        params[k].grad = v
    opt.step()
    for i, d in before.items():
        layer = uni.layers[i]
        torch.testing.assert_close(layer.weight - layer.B, (1 - lr * wd) * d, rtol=1e-12, atol=1e-15)


def _angle(layer):
    w, b = layer.weight.detach().flatten(), layer.B.detach().flatten()
    return math.degrees(math.acos((w @ b / (w.norm() * b.norm())).clamp(-1, 1).item()))


def _mnist(n=2000):
    from importlib import resources
    with resources.files("spiking_ep").joinpath("assets/mnist_sample.npz").open("rb") as f:
        d = np.load(f)
        x = torch.tensor(d["train_x"][:n], dtype=torch.float32).view(-1, 1, 28, 28) / 255.0
        y = torch.tensor(d["train_y"][:n]).long()
    return (x - 0.1307) / 0.3081, y


def _train_angles(rule, steps=300):
    x_all, y_all = _mnist()
    torch.manual_seed(0)
    net = R.build_network({"input_shape": [1, 28, 28], "layers": [{"type": "dense", "features": 32},
                                                                  {"type": "dense", "features": 16}],
                           "unidirectional": True, "theta": 1.0})
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    g = torch.Generator().manual_seed(1)
    angles = [_angle(net.layers[1])]
    for it in range(steps):
        idx = torch.randint(0, len(y_all), (32,), generator=g)
        grads = R.ep_gradients(net, x_all[idx], y_all[idx], beta=0.5, T1=15, T2=8, rule=rule)
        for k, p in net.named_parameters():
            p.grad = grads[k]
        opt.step()
        if (it + 1) % 50 == 0:
            angles.append(_angle(net.layers[1]))
    return angles


def test_new_rule_aligns_forward_and_backward_weights_old_rule_does_not():
    # 784-32-16 + readout on MNIST digits, 300 SGD steps (momentum 0.9, weight decay 1e-3), ≈ 3 s.
    # Measured: new 87.2° → 54.5, 39.8, 30.4, 25.7, 23.0, 21.3°; old 87.2° → … 56.1°.
    new = _train_angles("new")
    old = _train_angles("old")
    assert new[0] > 80                                   # independent initialisations: ≈ orthogonal
    assert all(b < a for a, b in zip(new, new[1:])), new  # shrinks at every checkpoint
    assert new[-1] < 35, new
    assert new[-1] < old[-1] - 15, (new, old)


def test_training_logs_the_angle_per_epoch(tmp_path):
    cfg = load_config(None, [
        "data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
        "data.train_subset=600", "data.test_subset=200", "train.batch_size=50", "train.epochs=2",
        "model.layers=[{type: dense, features: 32}, {type: dense, features: 16}]", "model.unidirectional=true",
        "optim.lrs=[0.05, 0.05, 0.02]", "optim.weight_decay=0.001", "method.T1=8", "method.T2=6",
        "method.vf_rule=new", f"train.out_dir={tmp_path}", "train.run_name=vf"])
    T.train(cfg, log=lambda *a: None)
    with open(tmp_path / "vf" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and "angle_layer2" in rows[0] and "angle_layer1" not in rows[0]
    a = [float(r["angle_layer2"]) for r in rows]
    assert 0 < a[1] < a[0] < 90, a
