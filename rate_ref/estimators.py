"""EP gradient estimators, returned in autograd's sign convention (estimates of ∂L/∂θ, L = mean loss).

With s* the free fixed point (T1 steps at β = 0) and s^{±β} the nudged states (T2 steps from s*):

    one-sided:    ∂L/∂θ ≈ −(1/βB) [∂Φ^β/∂θ(s^β) − ∂Φ/∂θ(s*)]                 bias O(β)
    random sign:  one-sided with β → ±β, sign drawn per mini-batch               unbiased on average
    symmetric:    ∂L/∂θ ≈ −(1/2βB) [∂Φ^β/∂θ(s^β) − ∂Φ^{−β}/∂θ(s^{−β})]          bias O(β²)

B is the batch size (Φ is a sum over the batch). Φ^β = Φ − βℓ carries the readout, so for
W_out the symmetric estimate is ½[∂ℓ/∂W_out(s^β) + ∂ℓ/∂W_out(s^{−β})].

Unidirectional networks (``net.cfg.unidirectional``): Φ is defined by the forward weights only.
``rule="new"`` (the paper's fix) computes the symmetric estimate for W_n and for B_n (B_n's from
the Φ with B_n in place of W_n) and applies their average to both; ``rule="old"`` is the
vector-field estimate (1/β)(∂F/∂θ(s*))ᵀ(s^β − s*) in its symmetric form (1/2β)(∂F/∂θ(s*))ᵀ(s^β − s^{−β}),
with F = ∂Φ/∂s the vector field (drives) as computed with the feedback weights B.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .dynamics import Masks, _masked, drives, settle
from .network import EPNetwork, State

ESTIMATORS = ("symmetric", "one_sided", "random_sign")


def _phi_param_grads(net: EPNetwork, x: Tensor, terms: list[tuple[float, State, float]], y: Tensor | None,
                     masks: Masks, use_B: bool = False) -> dict[str, Tensor]:
    """∂/∂θ Σ_k c_k Σ_batch Φ^{β_k}(x, s_k) for terms (c_k, s_k, β_k), states held fixed.

    With ``use_B`` the feedback weights B_n stand in for W_n in Φ (unidirectional new rule).
    """
    params = dict(net.named_parameters())
    total = 0.0
    with torch.enable_grad():
        for coef, state, beta in terms:
            state = _masked(tuple(s.detach() for s in state), masks)
            if use_B:
                total = total + coef * _phi_with_B(net, x, state, beta, y).sum()
            else:
                total = total + coef * net.phi(x, state, beta, y).sum()
        names = [k for k, p in params.items() if p.requires_grad]
        grads = torch.autograd.grad(total, [params[k] for k in names], allow_unused=True)
    return {k: (g if g is not None else torch.zeros_like(params[k])) for k, g in zip(names, grads)}


def _phi_with_B(net: EPNetwork, x: Tensor, state: State, beta: float, y: Tensor | None) -> Tensor:
    # Φ with B_n (no bias) in place of W_n wherever a layer has one; only ∂/∂B is used from it.
    prev, total = x, 0.0
    for layer, s in zip(net.layers, state):
        drive = layer.forward_drive(prev) if layer.B is None else layer.drive_with(prev, layer.B, None)
        total = total + (s * drive).flatten(1).sum(1)
        prev = s
    if beta != 0.0:
        total = total - beta * net.loss_per_sample(state, y)
    return total


def free_phase(net: EPNetwork, x: Tensor, *, T1: int, mode: str = "sync", masks: Masks = None,
               state: State | None = None, tol: float | None = None) -> State:
    """s* after T1 steps at β = 0 from ``state`` (default zeros), or fewer once settled to ``tol`` (no graph)."""
    with torch.no_grad():
        return settle(net, x, steps=T1, tol=tol, state=state, mode=mode, masks=masks)[0]


def nudged_phase(net: EPNetwork, x: Tensor, y: Tensor, s_free: State, *, beta: float, T2: int,
                 mode: str = "sync", masks: Masks = None, tol: float | None = None) -> State:
    """s^β after T2 steps at ``beta`` starting from s* (no graph)."""
    with torch.no_grad():
        return settle(net, x, steps=T2, tol=tol, beta=beta, y=y, state=s_free, mode=mode, masks=masks)[0]


def ep_gradients(net: EPNetwork, x: Tensor, y: Tensor, *, estimator: str = "symmetric", beta: float,
                 T1: int, T2: int, mode: str = "sync", masks: Masks = None, rule: str = "new",
                 generator: torch.Generator | None = None, s_free: State | None = None,
                 state: State | None = None, tol: float | None = None, return_states: bool = False):
    """EP estimate of ∂L/∂θ, ``dict[name, Tensor]`` keyed like ``net.named_parameters()``.

    ``s_free`` skips the free phase (already relaxed); ``state`` is the free phase's start (warm
    start; default zeros). ``tol``: a phase stops once max|Δs| < tol (at most T1 / T2 steps).
    With ``return_states`` also returns ``{"free": s*, "plus": s^β, "minus": s^{−β} (symmetric only),
    "beta": β used, "steps": {phase: steps used}}``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0 for the {estimator} estimator (its sign is set by the estimator), got {beta}")
    steps = {}
    with torch.no_grad():
        if s_free is None:
            s_free, steps["free"] = settle(net, x, steps=T1, tol=tol, state=state, mode=mode, masks=masks)

        def nudge(b: float, name: str) -> State:
            s, steps[name] = settle(net, x, steps=T2, tol=tol, beta=b, y=y, state=s_free, mode=mode, masks=masks)
            return s

        n = x.shape[0]
        if estimator == "symmetric":
            s_plus, s_minus = nudge(beta, "plus"), nudge(-beta, "minus")
            terms = [(1.0, s_plus, beta), (-1.0, s_minus, -beta)]
            scale = -1.0 / (2 * beta * n)
            states = {"free": s_free, "plus": s_plus, "minus": s_minus, "beta": beta, "steps": steps}
        else:
            b = beta
            if estimator == "random_sign" and torch.rand((), generator=generator).item() < 0.5:
                b = -beta
            s_plus = nudge(b, "plus")
            terms = [(1.0, s_plus, b), (-1.0, s_free, 0.0)]
            scale = -1.0 / (b * n)
            states = {"free": s_free, "plus": s_plus, "beta": b, "steps": steps}

    if net.cfg.unidirectional:
        grads = _vector_field_grads(net, x, y, terms, states, scale, masks, rule)
    else:
        grads = {k: g * scale for k, g in _phi_param_grads(net, x, terms, y, masks).items()}
    return (grads, states) if return_states else grads


def _vector_field_grads(net, x, y, terms, states, scale, masks, rule):
    if rule == "new":
        g_w = _phi_param_grads(net, x, terms, y, masks)
        g_b = _phi_param_grads(net, x, terms, y, masks, use_B=True)
        out = {k: v * scale for k, v in g_w.items()}
        for i, layer in enumerate(net.layers):
            if layer.B is None:
                continue
            kw, kb = f"layers.{i}.weight", f"layers.{i}.B"
            avg = 0.5 * (g_w[kw] + g_b[kb]) * scale
            out[kw], out[kb] = avg, avg.clone()
        return out
    if rule == "old":
        return _old_vf_grads(net, x, y, terms, states, scale, masks)
    raise ValueError(f"unidirectional rule must be 'new' or 'old', got {rule!r}")


def _old_vf_grads(net, x, y, terms, states, scale, masks):
    # (∂F/∂θ(s*))ᵀ Δs with Δs = Σ_k c_k s_k: one vector–Jacobian product of the vector field
    # F = ∂Φ/∂s as the layers compute it (feedback through B). F is taken before σ so that for
    # B = W the rule reduces to ∂²Φ/∂θ∂s · Δs, the first-order form of the standard EP update.
    s_free = tuple(s.detach() for s in states["free"])
    delta = [sum(c * st[n].detach() for c, st, _ in terms) for n in range(len(s_free))]
    params = dict(net.named_parameters())
    names = list(params)
    with torch.enable_grad():
        d = drives(net, x, s_free, masks=masks)
        f = [d[n] for n in range(len(s_free))]
        grads = torch.autograd.grad(f, [params[k] for k in names], grad_outputs=delta, allow_unused=True)
    # The readout is outside the dynamics: it gets the loss gradient of the Φ^β terms.
    ro = {k: v for k, v in _phi_param_grads(net, x, terms, y, masks).items() if k.startswith("readout")}
    out = {}
    for k, g in zip(names, grads):
        g = torch.zeros_like(params[k]) if g is None else g
        out[k] = ro[k] * scale if k in ro else g * scale
    return out
