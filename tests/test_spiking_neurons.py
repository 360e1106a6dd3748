"""Neuron models: the IF rate is the hard sigmoid; golden trajectories against snnTorch and norse."""
import math

import pytest
import torch

from spiking_ep.neurons import (IFState, LIFState, SynapseState, decay, if_step, init_state, lif_step,
                                synapse_step, trace_step)


def run(step, state, currents, **kw):
    zs, vs = [], []
    for i in currents:
        state, z = step(state, i, **kw)
        zs.append(z)
        vs.append(state.v)
    return torch.stack(zs), torch.stack(vs), state


@pytest.mark.parametrize("theta", [1.0, 2.0])
@pytest.mark.parametrize("T", [10, 37, 200])
def test_if_rate_is_hard_sigmoid_within_one_over_T(theta, T):
    u = torch.linspace(-0.5, 1.5, 81, dtype=torch.float64) * theta
    z, _, _ = run(if_step, init_state(IFState, u), [u] * T, v_threshold=theta, v_floor=0.0)
    rate = z.sum(0) / T
    expected = torch.clamp(u / theta, 0, 1)
    assert (rate - expected).abs().max().item() <= 1.0 / T + 1e-12


def test_lif_leak_lowers_the_rate():
    u = torch.full((5,), 0.3, dtype=torch.float64)
    z_if, _, _ = run(if_step, init_state(IFState, u), [u] * 100)
    z_lif, _, _ = run(lif_step, init_state(LIFState, u), [u] * 100, tau_mem=5.0)
    # v∞ = 0.3 / (1 − e^−0.2) ≈ 1.65 > θ, so the LIF neuron fires, but it loses charge to the leak
    assert 0 < z_lif.sum() < z_if.sum()
    assert abs(z_if[:, 0].sum().item() / 100 - 0.3) <= 0.01 + 1e-12


def test_at_most_one_spike_per_step_and_charge_is_kept():
    u = torch.tensor([2.5], dtype=torch.float64)
    z, v, _ = run(if_step, IFState(torch.zeros(1, dtype=torch.float64)), [u] * 4)
    assert z.flatten().tolist() == [1.0, 1.0, 1.0, 1.0]
    # the excess charge accumulates (reset subtracts one θ per spike)
    assert v.flatten().tolist() == pytest.approx([1.5, 3.0, 4.5, 6.0])
    z, v, _ = run(if_step, IFState(torch.zeros(1, dtype=torch.float64)), [u] * 4, v_ceiling=2.0)
    assert v.max().item() == 2.0


def test_floor_bounds_negative_excursions():
    u = torch.tensor([-0.7], dtype=torch.float64)
    _, v, _ = run(if_step, IFState(torch.zeros(1, dtype=torch.float64)), [u] * 5, v_floor=-1.0)
    assert v.min().item() == -1.0
    _, v, _ = run(if_step, IFState(torch.zeros(1, dtype=torch.float64)), [u] * 5, v_floor=None)
    assert v[-1].item() == pytest.approx(-3.5)


def test_steps_are_functional_and_follow_dtype():
    for dtype in (torch.float32, torch.float64):
        v0 = torch.full((3,), 0.5, dtype=dtype)
        state = IFState(v0.clone())
        new, z = if_step(state, torch.ones(3, dtype=dtype) * 0.7)
        assert torch.equal(state.v, v0)          # input state untouched
        assert new.v.dtype == dtype and z.dtype == dtype
        new, z = lif_step(LIFState(v0), torch.ones(3, dtype=dtype), tau_mem=10.0)
        assert new.v.dtype == dtype
        s, i = synapse_step(SynapseState(torch.zeros(3, dtype=dtype)), torch.ones(3, dtype=dtype), tau_syn=4.0)
        assert i.dtype == dtype


def test_synapse_filter_unit_dc_gain_closed_form():
    a = decay(4.0)
    state = init_state(SynapseState, torch.zeros(2, dtype=torch.float64))
    current = torch.tensor([1.0, -2.0], dtype=torch.float64)
    for t in range(1, 30):
        state, i = synapse_step(state, current, tau_syn=4.0)
        torch.testing.assert_close(i, current * (1 - a ** t))
    # no filter: identity
    _, i = synapse_step(state, current, tau_syn=None)
    assert torch.equal(i, current)


def test_trace_is_a_unit_gain_rate_estimate():
    z = (torch.arange(2000) % 4 == 0).double()    # rate 1/4
    x = torch.zeros(())
    xs = []
    for zt in z:
        x = trace_step(x, zt, tau=20.0)
        xs.append(x)
    assert torch.stack(xs[1000:]).mean().item() == pytest.approx(0.25, abs=1e-3)


def test_decay_rejects_bad_tau():
    assert decay(None) == 1.0
    assert decay(10.0) == pytest.approx(math.exp(-0.1))
    with pytest.raises(ValueError):
        decay(0.0)


# --- golden trajectories against the ecosystem -------------------------------------------------

def _currents(T=300, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, n, generator=g, dtype=torch.float64) * 2.0 - 0.5    # [-0.5, 1.5]


@pytest.mark.parametrize("theta", [1.0, 0.75])
@pytest.mark.parametrize("tau_mem, reset_delay", [(None, True), (None, False), (8.0, False)])
def test_golden_snntorch_leaky(theta, tau_mem, reset_delay):
    """snnTorch ``Leaky(beta, reset_mechanism="subtract")`` is our IF (beta = 1) / LIF (beta = exp(−1/τ_mem)).

    With the default ``reset_delay=True`` snnTorch applies the subtraction one step late, so for the
    IF neuron its ``mem`` is our pre-reset potential v + θz, for any input (with a leak the late
    subtraction escapes one step of decay, a different model). With ``reset_delay=False`` its ``mem``
    is our post-reset v as long as the membrane never stays above θ after a reset (inputs ≤ θ):
    otherwise snnTorch subtracts θ a second time before deciding on the next spike.
    """
    snn = pytest.importorskip("snntorch")
    currents = _currents()
    if not reset_delay:
        currents = currents.clamp(max=1.0)
    currents = currents * theta
    beta = decay(tau_mem)
    neuron = snn.Leaky(beta=torch.tensor(beta, dtype=torch.float64), threshold=torch.tensor(theta, dtype=torch.float64),
                       reset_mechanism="subtract", reset_delay=reset_delay)
    mem = torch.zeros(currents.shape[1], dtype=torch.float64)
    ref_z, ref_v = [], []
    with torch.no_grad():
        for i in currents:
            spk, mem = neuron(i, mem)
            ref_z.append(spk)
            ref_v.append(mem)
    ref_z, ref_v = torch.stack(ref_z).double(), torch.stack(ref_v)
    if tau_mem is None:
        z, v, _ = run(if_step, init_state(IFState, currents[0]), currents, v_threshold=theta)
    else:
        z, v, _ = run(lif_step, init_state(LIFState, currents[0]), currents, tau_mem=tau_mem, v_threshold=theta)
    assert ref_z.sum() > 100          # the trajectory does spike
    torch.testing.assert_close(z, ref_z, rtol=0, atol=0)
    torch.testing.assert_close(v + theta * z if reset_delay else v, ref_v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("theta", [1.0, 0.75])
def test_golden_norse_iaf(theta):
    pytest.importorskip("norse")
    from norse.torch.functional.iaf import IAFFeedForwardState, IAFParameters, iaf_feed_forward_step
    currents = _currents(seed=1)
    p = IAFParameters(v_th=torch.as_tensor(theta, dtype=torch.float64), v_reset=torch.as_tensor(0.0, dtype=torch.float64))
    st = IAFFeedForwardState(v=torch.zeros(currents.shape[1], dtype=torch.float64))
    ref_z, ref_v = [], []
    for i in currents:
        zz, st = iaf_feed_forward_step(i, st, p)
        ref_z.append(zz)
        ref_v.append(st.v)
    # norse's IAF resets to v_reset = 0 (not by subtraction)
    z, v, _ = run(if_step, init_state(IFState, currents[0]), currents, v_threshold=theta, reset="zero")
    assert torch.stack(ref_z).sum() > 100
    torch.testing.assert_close(z, torch.stack(ref_z).double(), rtol=0, atol=0)
    torch.testing.assert_close(v, torch.stack(ref_v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau_mem", [4.0, 20.0])
def test_golden_norse_lif_box_subtract(tau_mem):
    pytest.importorskip("norse")
    from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters, lif_box_feed_forward_step
    from norse.torch.functional.reset import reset_subtract
    currents = _currents(seed=2)
    dt = 1e-3
    k = 1.0 - math.exp(-1.0 / tau_mem)        # norse's Euler factor dt/τ equal to our 1 − exp(−1/τ_mem)
    p = LIFBoxParameters(tau_mem_inv=torch.as_tensor(k / dt, dtype=torch.float64),
                         v_th=torch.as_tensor(1.0, dtype=torch.float64),
                         v_leak=torch.as_tensor(0.0, dtype=torch.float64), reset_method=reset_subtract)
    st = LIFBoxFeedForwardState(v=torch.zeros(currents.shape[1], dtype=torch.float64))
    ref_z, ref_v = [], []
    for i in currents:
        zz, st = lif_box_feed_forward_step(i / k * 4.0, st, p, dt=dt)    # ×4 so that the leaky membrane fires
        ref_z.append(zz)
        ref_v.append(st.v)
    # same map: v ← v·(1 − k) + k·i with our I = k·i
    z, v, _ = run(lif_step, init_state(LIFState, currents[0]), currents * 4.0, tau_mem=tau_mem)
    assert torch.stack(ref_z).sum() > 100
    torch.testing.assert_close(z, torch.stack(ref_z).double(), rtol=0, atol=0)
    torch.testing.assert_close(v, torch.stack(ref_v), rtol=1e-10, atol=1e-10)
