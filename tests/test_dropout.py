"""Dropout for convergent networks (paper, Supplementary 4.5; DESIGN §1).

One Bernoulli mask m per layer and mini-batch, values 0 (dropped, probability p) or 1/(1−p)
(kept, so E[m] = 1), drawn once and used in the free, +β and −β phases alike; the dynamics run
on Φ(x, m⊙s), so dropped units stay at σ(0) = 0. No mask at evaluation.
"""
import pytest
import torch

import rate_ref as R
import rate_ref.estimators as E
from spiking_ep import train as T
from spiking_ep.config import load_config




def net_with_dropout(p=(0.3, 0.5), loss="cross_entropy", seed=0):
    torch.manual_seed(seed)
    cfg = {"input_shape": [1, 6, 6], "loss": loss, "n_classes": 5, "theta": 1.0,
           "layers": [{"type": "dense", "features": 9, "dropout": p[0]},
                      {"type": "dense", "features": 5 if loss == "squared_error" else 7, "dropout": p[1]}]}
    net = R.build_network(cfg).double()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(6, 1, 6, 6, dtype=torch.float64, generator=g)
    y = torch.randint(0, 5, (6,), generator=g)
    return net, x, y


def test_masks_are_bernoulli_scaled_by_one_over_keep_probability():
    net, _, _ = net_with_dropout((0.0, 0.5))
    g = torch.Generator().manual_seed(0)
    masks = R.draw_masks(net, 4000, generator=g, dtype=torch.float64)
    assert masks[0] is None                                 # p = 0: no mask at all
    m = masks[1]
    assert m.shape == (4000, *net.state_shapes[1]) and m.dtype == torch.float64
    assert set(m.unique().tolist()) == {0.0, 2.0}           # 1/(1 − 0.5)
    assert abs((m == 0).double().mean().item() - 0.5) < 0.02
    assert abs(m.mean().item() - 1.0) < 0.04                # E[m] = 1: activity scale kept
    net3, _, _ = net_with_dropout((0.2, 0.0))
    m3 = R.draw_masks(net3, 3000, generator=g)[0]
    assert m3.unique().tolist() == pytest.approx([0.0, 1.25])
    # reproducible from the generator; no dropout anywhere → None
    a = R.draw_masks(net, 8, generator=torch.Generator().manual_seed(5))
    b = R.draw_masks(net, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[1], b[1])
    plain, _, _ = net_with_dropout((0.0, 0.0))
    assert R.draw_masks(plain, 8) is None


@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_masked_drives_are_the_gradient_of_the_dropped_out_phi(loss):
    net, x, y = net_with_dropout(loss=loss)
    masks = R.draw_masks(net, x.shape[0], generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    state = tuple(torch.rand(x.shape[0], *s, dtype=x.dtype, requires_grad=True) for s in net.state_shapes)
    for beta in (0.0, 0.6):
        phi = net.phi(x, tuple(s * m for s, m in zip(state, masks)), beta, y).sum()   # Φ^β(x, m⊙s)
        auto = torch.autograd.grad(phi, state)
        got = R.drives(net, x, state, beta=beta, y=y, masks=masks)
        for n, a in enumerate(auto):
            torch.testing.assert_close(got[n], a, rtol=1e-12, atol=1e-14)


def test_one_mask_is_shared_by_the_free_and_both_nudged_phases(monkeypatch):
    net, x, y = net_with_dropout()
    masks = R.draw_masks(net, x.shape[0], generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    seen = []
    real = E.settle

    def spy(*a, **k):
        seen.append((k.get("beta", 0.0), k.get("masks")))
        return real(*a, **k)

    monkeypatch.setattr(E, "settle", spy)
    _, st = R.ep_gradients(net, x, y, beta=0.5, T1=40, T2=10, masks=masks, return_states=True)
    assert sorted(b for b, _ in seen) == [-0.5, 0.0, 0.5]
    assert all(m is masks for _, m in seen)                 # the very same mask object, three phases
    for phase in ("free", "plus", "minus"):
        for s, m in zip(st[phase], masks):
            assert (s[m == 0] == 0).all(), phase             # dropped units are silent in every phase
            assert (s[m != 0] > 0).any(), phase
    # and the phases do differ where units are kept
    assert not torch.equal(st["plus"][1], st["minus"][1])


def test_gdu_holds_for_the_dropped_out_network():
    # EP with the mask fixed across phases estimates the gradient of the same masked network that
    # BPTT differentiates; a mask redrawn between phases would break this.
    net, x, y = net_with_dropout()
    masks = R.draw_masks(net, x.shape[0], generator=torch.Generator().manual_seed(4), dtype=x.dtype)
    ref = R.bptt_gradients(net, x, y, T1=150, K=40, masks=masks)
    ep = R.ep_gradients(net, x, y, beta=0.01, T1=150, T2=40, masks=masks)
    other = R.draw_masks(net, x.shape[0], generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    unmasked = R.bptt_gradients(net, x, y, T1=150, K=40)
    for k in ref:
        assert ((ep[k] - ref[k]).norm() / ref[k].norm()).item() < 1e-3, k
    k = "layers.0.weight"
    assert ((unmasked[k] - ref[k]).norm() / ref[k].norm()).item() > 0.1      # the mask matters
    assert not torch.equal(other[0], masks[0])


def _cfg(tmp_path, *extra):
    return load_config(None, [
        "data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
        "data.train_subset=200", "data.test_subset=120", "train.batch_size=50", "train.eval_batch_size=60",
        "train.epochs=1", "model.layers=[{type: dense, features: 32, dropout: 0.5}]", "method.T1=5", "method.T2=4",
        f"train.out_dir={tmp_path}", "train.run_name=drop", *extra])


@pytest.mark.parametrize("method", ["ep", "bptt"])
def test_training_draws_one_mask_per_batch_and_evaluation_uses_none(tmp_path, monkeypatch, method):
    import rate_ref.bptt as BP
    import rate_ref.dynamics as D
    cfg = _cfg(tmp_path, f"method.name={method}")
    draws, grad_calls, relax_calls, phase = [], [], [], ["train"]
    real_draw, real_grads, real_relax, real_evaluate = R.draw_masks, T.compute_gradients, D.settle, T.evaluate

    def draw(*a, **k):
        assert phase[0] == "train", "a mask was drawn outside a training batch"
        draws.append(real_draw(*a, **k))
        return draws[-1]

    def grads(net, x, y, cfg_, gen, masks, start=None):
        grad_calls.append(masks)
        return real_grads(net, x, y, cfg_, gen, masks, start)

    def relax(*a, **k):  # every relaxation: EP phases, BPTT and inference
        relax_calls.append((phase[0], k.get("masks")))
        return real_relax(*a, **k)

    def evaluate(*a, **k):
        phase[0] = "eval"
        try:
            return real_evaluate(*a, **k)
        finally:
            phase[0] = "train"

    monkeypatch.setattr(R, "draw_masks", draw)
    monkeypatch.setattr(T, "compute_gradients", grads)
    monkeypatch.setattr(T, "evaluate", evaluate)
    for mod in (D, E, BP):   # every relaxation goes through settle (relax calls it too)
        monkeypatch.setattr(mod, "settle", relax)
    T.train(cfg, log=lambda *a: None)

    n_batches = 200 // 50
    assert len(draws) == n_batches                          # one draw per mini-batch
    assert all(d is not None and d[0].shape == (50, 32) for d in draws)
    assert len(grad_calls) == n_batches
    assert all(g is d for g, d in zip(grad_calls, draws))   # ... handed to that batch's gradient
    train_relax = [m for ph, m in relax_calls if ph == "train"]
    per_batch = 3 if method == "ep" else 2                  # free, +β, −β  |  no-graph part, graph part
    assert len(train_relax) == per_batch * n_batches
    for b in range(n_batches):
        assert all(m is draws[b] for m in train_relax[b * per_batch:(b + 1) * per_batch])
    eval_relax = [m for ph, m in relax_calls if ph == "eval"]
    assert len(eval_relax) == 2 and all(m is None for m in eval_relax)   # 120 test digits in batches of 60


def test_inference_ignores_dropout(tmp_path):
    cfg = _cfg(tmp_path)
    torch.manual_seed(0)
    net = R.build_network(cfg.model)
    x = torch.rand(20, 1, 28, 28)
    a, b = T.infer(net, x, cfg)[0], T.infer(net, x, cfg)[0]
    plain = R.relax(net, x, steps=cfg.method.inference_T1, mode=cfg.method.mode)
    assert all(torch.equal(s, t) for s, t in zip(a, plain)) and all(torch.equal(s, t) for s, t in zip(a, b))
    masks = R.draw_masks(net, 20, generator=torch.Generator().manual_seed(0))
    dropped = R.relax(net, x, steps=cfg.method.inference_T1, mode=cfg.method.mode, masks=masks)
    assert not torch.equal(dropped[0], a[0])


def test_spiking_training_applies_the_batch_masks(tmp_path, monkeypatch):
    import spiking_ep.learning as L
    real, seen = L.spiking_ep_gradients, []

    def spy(*a, **k):
        seen.append(k.get("masks"))
        return real(*a, **k)

    monkeypatch.setattr(L, "spiking_ep_gradients", spy)
    T.train(_cfg(tmp_path, "model.kind=spiking"), log=lambda *a: None)
    assert len(seen) == 4
    for masks in seen:
        kept = masks[0]
        assert set(kept.unique().tolist()) <= {0.0, 2.0} and 0.3 < (kept == 0).float().mean() < 0.7
