"""Warm-started (persistent) free phases: the stored states, their effect, and training with them."""
import pytest
import torch

import rate_ref as R
from spiking_ep import train as T
from spiking_ep.checkpoint import CheckpointError
from spiking_ep.config import ConfigError, SpikingConfig, load_config
from spiking_ep.dynamics import relax_spiking, zero_state
from spiking_ep.warm_start import Particles

from test_train import SMALL, assert_same_weights, metrics
from tiny import make_spiking


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_unseen_examples_start_cold_and_stored_states_come_back(kind):
    net, x, _ = make_spiking(kind, batch=6)
    p = Particles(net, 10, synapses=True)
    idx = torch.tensor([7, 2, 9, 0, 4, 5])
    cold = p.start_state(idx, x)
    ref = zero_state(net, x, SpikingConfig(tau_syn=3.0))
    for a, b in zip((*cold.v, *cold.spikes, *cold.syn), (*ref.v, *ref.spikes, *ref.syn)):
        assert torch.equal(a, b) and a.dtype == x.dtype
    _, end, _ = relax_spiking(net, x, steps=50, cfg=SpikingConfig(tau_syn=3.0))
    p.store(idx, end)
    back = p.start_state(idx, x)
    for a, b in zip(back.v, end.v):
        assert torch.allclose(a, b, atol=2e-3)  # float16 storage
    for a, b in zip((*back.spikes, *back.syn), (*end.spikes, *end.syn)):
        assert torch.allclose(a, b, atol=2e-3)
    assert back.spikes[0].sum() > 0
    others = p.start_state(torch.tensor([1, 3, 6, 8]), x[:4])
    assert all(t.abs().sum() == 0 for t in others.v)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_warm_start_settles_faster_than_cold_start(kind):
    net, x, _ = make_spiking(kind, batch=16)
    s_star = R.relax(net, x, steps=500)
    cfg = SpikingConfig(rate_estimate="charge")
    p = Particles(net, 16)
    idx = torch.arange(16)
    _, end, _ = relax_spiking(net, x, steps=300, cfg=cfg)
    p.store(idx, end)

    def err(state):
        r, _, _ = relax_spiking(net, x, steps=8, window=4, cfg=cfg, state=state)
        return max((a - b).abs().mean().item() for a, b in zip(r, s_star))

    cold, warm = err(None), err(p.start_state(idx, x))
    assert warm < 0.5 * cold, (warm, cold)


SPIKING_SMALL = SMALL + ["model.kind=spiking", "method.T1=12", "method.T2=8", "spiking.rate_estimate=charge",
                         "data.train_subset=600", "data.test_subset=200", "optim.scheduler=none"]


def test_training_with_warm_starts_resumes_with_the_same_states(tmp_path):
    def cfg(name, epochs, warm="persistent"):
        return load_config(None, SPIKING_SMALL + [f"train.epochs={epochs}", f"train.out_dir={tmp_path}",
                                                  f"train.run_name={name}", f"method.warm_start={warm}"])
    quiet = dict(log=lambda *a: None)
    ref = T.train(cfg("ref", 2), **quiet)
    assert ref["final_test_error"] < 0.5
    ck = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    assert ck["particles"]["v"][0].shape == (600, 64) and ck["particles"]["v"][0].abs().sum() > 0
    # stop after one epoch, resume for the second: the same weights as the uninterrupted run
    T.train(cfg("resumed", 1), **quiet)
    T.train(cfg("resumed", 2), resume=tmp_path / "resumed", **quiet)
    assert metrics(tmp_path / "resumed") == metrics(tmp_path / "ref")
    assert_same_weights(tmp_path / "resumed", tmp_path / "ref")
    # and the warm starts do act: a cold-start run ends elsewhere
    cold = T.train(cfg("cold", 2, warm="none"), **quiet)
    assert not torch.equal(torch.load(tmp_path / "cold" / "weights.pt")["layers.0.weight"],
                           torch.load(tmp_path / "ref" / "weights.pt")["layers.0.weight"])
    # a checkpoint without the states cannot continue a warm-started run
    with pytest.raises(CheckpointError, match="warm-start"):
        T.train(cfg("cold", 3), resume=tmp_path / "cold", **quiet)
    assert cold["epochs"] == 2


def test_rate_particles_store_and_return_rate_states():
    net, x, _ = make_spiking("conv", batch=6)
    p = Particles(net, 10, kind="rate")
    idx = torch.tensor([7, 2, 9, 0, 4, 5])
    assert all(t.abs().sum() == 0 and t.dtype == x.dtype for t in p.start_state(idx, x))
    s = R.relax(net, x, steps=30)
    p.store(idx, s)
    for a, b in zip(p.start_state(idx, x), s):
        assert torch.allclose(a, b, atol=1e-3)      # float16 storage of values in [0, 1]
    assert p.state_dict().keys() == {"s"} and p.nbytes == 2 * 10 * sum(t[0].numel() for t in s)


def test_rate_warm_start_with_early_stopping_settles_in_fewer_steps():
    # the second visit of an example starts next to its fixed point: far fewer steps to the same tolerance
    net, x, y = make_spiking("conv", batch=8)
    _, cold = R.ep_gradients(net, x, y, beta=0.5, T1=400, T2=100, tol=1e-4, return_states=True)
    _, warm = R.ep_gradients(net, x, y, beta=0.5, T1=400, T2=100, tol=1e-4, state=cold["free"],
                             return_states=True)
    assert warm["steps"]["free"] < 0.2 * cold["steps"]["free"], (warm["steps"], cold["steps"])
    for a, b in zip(warm["free"], cold["free"]):
        assert (a - b).abs().max() < 1e-3


def test_rate_training_with_warm_starts_and_tol_logs_steps_and_resumes(tmp_path):
    # two hidden layers: with one, the free phase is feed-forward and settles in two steps anyway
    base = SMALL + ["model.layers=[{type: dense, features: 64}, {type: dense, features: 32}]", "optim.lrs=[0.05, 0.05, 0.02]",
                    "method.warm_start=persistent", "method.tol=1e-3", "method.T1=40", "method.T2=20", "optim.scheduler=none",
                    "data.train_subset=600", "data.test_subset=200", f"train.out_dir={tmp_path}"]
    quiet = dict(log=lambda *a: None)
    T.train(load_config(None, base + ["train.epochs=2", "train.run_name=ref"]), **quiet)
    rows = metrics(tmp_path / "ref")
    assert {"steps_free", "steps_plus", "steps_minus"} <= rows[0].keys()
    assert all(1 <= float(r[k]) < lim for r in rows for k, lim in (("steps_free", 40), ("steps_plus", 20)))
    ck = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    assert ck["particles"]["s"][0].shape[0] == 600 and ck["particles"]["s"][0].abs().sum() > 0
    T.train(load_config(None, base + ["train.epochs=1", "train.run_name=res"]), **quiet)
    T.train(load_config(None, base + ["train.epochs=2", "train.run_name=res"]), resume=tmp_path / "res", **quiet)
    assert metrics(tmp_path / "res") == rows
    assert_same_weights(tmp_path / "res", tmp_path / "ref")


def test_tol_is_refused_for_spiking_ep_phases():
    with pytest.raises(ConfigError, match="method.tol"):
        load_config(None, ["model.kind=spiking", "method.tol=1e-3"])
