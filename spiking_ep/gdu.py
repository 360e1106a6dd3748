"""The GDU check (paper Fig. 2): per-step EP quantities of the nudged phase vs per-step BPTT gradients.

Free phase: T1 steps s_{t+1} = σ(∂Φ/∂s(x, s_t)) from s = 0; BPTT unrolls its last T2 steps
(T1 − T2 steps without a graph, T2 with one), the loss L = mean_batch ℓ(s_T, y) at T = T1.
Each unrolled step k (s_k → s_{k+1}) gets its own copy θ_k of the parameters, so autograd
gives the gradient w.r.t. the parameters *as used at that step*. For t = 0 … T2−1:

    ∇BPTT_s(t) = σ′ ⊙ ∂L/∂s_{T−t}     (= ∂L/∂u_{T−t}, u the pre-activation, s = σ(u))
    ∇BPTT_θ(t) = ∂L/∂θ_{T−t−1}        (the parameters of the step that produces s_{T−t})

The nudged phase starts from s* = s_T and runs T2 steps at ±β (s^β_0 = s*):

    ΔEP_s(t) = (s^β_{t+1} − s^β_t) / β
    ΔEP_θ(t) = (1/β) [∂Φ/∂θ(s^β_{t+1}) − ∂Φ/∂θ(s^β_t)]          (Φ summed over the batch / batch size)
    symmetric: ΔEP^sym(t) = [ (s^β_{t+1} − s^β_t) − (s^{−β}_{t+1} − s^{−β}_t) ] / 2β   (same for θ)

GDU property (Ernoult et al. 2019): with a converged free phase, ΔEP(t) → −∇BPTT(t) as β → 0;
the one-sided error is O(β), the symmetric O(β²). Why σ′ on the neuron side: linearising the
hard-sigmoid dynamics at s* (D = diag σ′(u*), H = ∂²Φ/∂s²) gives ΔEP_s(t) = −(DH)^t D ∂ℓ/∂s and
∂L/∂s_{T−t} = (HD)^t ∂ℓ/∂s, so ΔEP_s(t) = −D ∂L/∂s_{T−t}: EP's neuron increments carry σ′
(1/θ for active units, 0 for saturated ones); the parameter quantities need no such factor.
Neuron quantities are per sample (∂ℓ_i/∂s_i, i.e. B·∂L/∂s); parameter quantities are for the
batch mean. Sums over t telescope: Σ_t ΔEP_θ(t) is the one-sided (or symmetric) EP estimate
of rate_ref.ep_gradients with the sign flipped, Σ_t ∇BPTT_θ(t) the truncated BPTT gradient.

The readout (cross-entropy) is outside the dynamics and is not part of the check. Unidirectional
networks: Φ knows only W_n, so EP's W_n quantity is compared with the gradient a *tied* weight
would get, ∇BPTT_{W_n} + ∇BPTT_{B_n} (B_n is not listed separately); with B = W this is the
bidirectional check exactly, and the distance grows as W and B part.

Metrics, per tensor and estimate e ∈ {+β, −β, symmetric}, computed on the **cumulative sums**
C_e(t) = Σ_{k≤t} ΔEP_e(k) against C(t) = −Σ_{k≤t} ∇BPTT(k) (what Fig. 2 plots), over all
t = 0…T2−1 and all elements:

    rel_rms   = ‖C_e − C‖ / ‖C‖
    sign_dis  = fraction of (t, element) with |C| > 1e-9·max|C| where sign C_e ≠ sign C
    final     = rel_rms at t = T2−1 only (the summed estimate vs the truncated-BPTT gradient)
    step_rms  = ‖ΔEP_e − (−∇BPTT)‖ / ‖∇BPTT‖ over the per-step quantities (CSV only)

Two things break the per-step match at finite β beyond the O(β)/O(β²) bias, and the outputs
count the second: hard-sigmoid units that cross a kink (0 or 1) during a nudged phase, and
max-pooling windows whose feedback argmax switches — the max-unpooled feedback is discontinuous
in s, so a switch is an O(1) jump in the drive that ΔEP divides by β (its error does not shrink
with β) and that BPTT, which differentiates almost everywhere, never sees.

Command: ``spiking-ep gdu CONFIG [--checkpoint RUN] [--n-images N] [--beta B] [--out DIR]``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

import rate_ref as R
from rate_ref.config import ConfigError

ESTIMATES = ("plus", "minus", "sym")
LABELS = {"plus": "one-sided +β", "minus": "one-sided −β", "sym": "symmetric"}


@dataclass
class GDUTrace:
    """Per-step quantities of one check; every tensor is ``(T2, *shape)``, index t = 0 … T2−1.

    ``ref[name]`` is −∇BPTT(t); ``ep[e][name]`` is ΔEP_e(t) for e in plus / minus / sym.
    Names: ``s1 … sN`` (neurons, shape ``(T2, batch, *state_shape)``) then the parameter names of
    ``net.named_parameters()`` without the readout and B (shape ``(T2, *param.shape)``).
    """
    names: list[str]
    ref: dict[str, Tensor]
    ep: dict[str, dict[str, Tensor]]
    beta: float
    T1: int
    T2: int
    residual: float            # max |s_T − s_{T−1}|: how far the free phase is from a fixed point
    window_drift: float        # max |s_T − s_{T−T2}|: the theorem assumes a constant state over the BPTT window
    pool_windows: int = 0      # max-pooling windows on feedback paths (layers ≥ 2) over the batch
    pool_switches: dict | None = None  # {"plus"/"minus": windows whose argmax left its s* position during the phase}

    def kind(self, name: str) -> str:
        if name.startswith("s") and name[1:].isdigit():
            return "neurons"
        return {"weight": "weights", "bias": "biases"}[name.rsplit(".", 1)[1]]

    def layer(self, name: str) -> int:
        """1-based layer index of a tensor."""
        return int(name[1:]) if self.kind(name) == "neurons" else int(name.split(".")[1]) + 1


class _Step(nn.Module):
    # One step of the dynamics as a module, so torch.func.functional_call can run it with a
    # per-step copy of the parameters (the "parameters as used at step k" of BPTT).
    def __init__(self, net: R.EPNetwork, mode: str):
        super().__init__()
        self.net, self.mode = net, mode

    def forward(self, x: Tensor, state: R.State) -> R.State:
        return R.step(self.net, x, state, mode=self.mode)


def _dyn_params(net: R.EPNetwork) -> dict[str, Tensor]:
    return {k: p for k, p in net.named_parameters() if not k.startswith("readout.")}


def _sigma_prime(state: R.State, theta: float) -> R.State:
    # Hard sigmoid: σ′ = 1/θ where 0 < s < 1, 0 where saturated (s = 0 or 1).
    return tuple(((s > 0) & (s < 1)).to(s.dtype) / theta for s in state)


def _feedback_argmax(net: R.EPNetwork, state: R.State) -> list[Tensor]:
    # Argmax positions that route the feedback of every max-pooling layer above the first
    # (W ⋆ s_{n−1} + b, or B ⋆ s_{n−1} when the layer has backward weights).
    out = []
    for i in range(1, len(net.layers)):
        layer = net.layers[i]
        if getattr(layer, "pool", None) != "max":
            continue
        w, b = (layer.weight, layer.bias) if layer.B is None else (layer.B, None)
        z = torch.nn.functional.conv2d(state[i - 1], w, b, padding=layer.padding)
        out.append(torch.nn.functional.max_pool2d(z, 2, return_indices=True)[1])
    return out


def _pool_switches(net: R.EPNetwork, traj: list[R.State]) -> tuple[int, int]:
    """(windows, windows whose feedback argmax differs from s*'s at some step of the trajectory).

    The max-unpooling feedback is discontinuous in s: a switch moves a whole s_n·W contribution to
    another position, a jump that ΔEP = Δs/β divides by β and BPTT (a.e. derivative) never sees.
    """
    with torch.no_grad():
        ref = _feedback_argmax(net, traj[0])
        moved = [torch.zeros_like(r, dtype=torch.bool) for r in ref]
        for st in traj[1:]:
            for m, r, a in zip(moved, ref, _feedback_argmax(net, st)):
                m |= r != a
    return sum(r.numel() for r in ref), sum(int(m.sum()) for m in moved)


def _phi_grads(net: R.EPNetwork, x: Tensor, state: R.State) -> dict[str, Tensor]:
    """∂Φ/∂θ(x, s) summed over the batch, for the forward parameters (W_n, b_n) of every layer."""
    params = {k: p for k, p in _dyn_params(net).items() if not k.endswith(".B")}
    with torch.enable_grad():
        g = torch.autograd.grad(net.phi(x, state).sum(), list(params.values()), allow_unused=True)
    return {k: (v if v is not None else torch.zeros_like(params[k])) for k, v in zip(params, g)}


def bptt_per_step(net: R.EPNetwork, x: Tensor, y: Tensor, *, T1: int, T2: int, mode: str = "sync"):
    """Per-step BPTT gradients over the last T2 of T1 free steps.

    Returns ``(states, grads_s, grads_theta)``: ``states`` = [s_{T1−T2}, …, s_{T1}] (detached);
    ``grads_s[k]`` = ∂L/∂s_{T1−T2+k} (k = 1 … T2, index 0 unused: None);
    ``grads_theta[k]`` = ∂L/∂θ_k for the step s_{T1−T2+k} → s_{T1−T2+k+1} (k = 0 … T2−1).
    L is the batch-mean loss at s_{T1}.
    """
    if not 0 < T2 <= T1:
        raise ValueError(f"the GDU check needs 0 < T2 ≤ T1, got T1 = {T1}, T2 = {T2}")
    with torch.no_grad():
        s = R.relax(net, x, steps=T1 - T2, mode=mode)
    stepper = _Step(net, mode)
    base = _dyn_params(net)
    copies = [{k: p.detach().clone().requires_grad_(True) for k, p in base.items()} for _ in range(T2)]
    states = [s]
    with torch.enable_grad():
        for k in range(T2):
            s = torch.func.functional_call(stepper, {f"net.{n}": v for n, v in copies[k].items()}, (x, s))
            states.append(s)
        loss = net.loss_per_sample(s, y).mean()
        inputs = [t for st in states[1:] for t in st] + [v for c in copies for v in c.values()]
        grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    grads = [g if g is not None else torch.zeros_like(i) for g, i in zip(grads, inputs)]
    n_layers = len(net.layers)
    gs = [None] + [tuple(grads[k * n_layers:(k + 1) * n_layers]) for k in range(T2)]
    off, n_par = T2 * n_layers, len(base)
    gt = [dict(zip(base, grads[off + k * n_par: off + (k + 1) * n_par])) for k in range(T2)]
    return [tuple(t.detach() for t in st) for st in states], gs, gt


def nudged_trajectory(net: R.EPNetwork, x: Tensor, y: Tensor, s_free: R.State, *, beta: float, T2: int,
                      mode: str = "sync") -> list[R.State]:
    """[s^β_0 = s*, s^β_1, …, s^β_{T2}] (no graph)."""
    out = [tuple(s_free)]
    with torch.no_grad():
        x_drive = net.layers[0].forward_drive(x)
        for _ in range(T2):
            out.append(R.step(net, x, out[-1], beta=beta, y=y, mode=mode, x_drive=x_drive))
    return out


def gdu_trace(net: R.EPNetwork, x: Tensor, y: Tensor, *, beta: float, T1: int, T2: int,
              mode: str = "sync") -> GDUTrace:
    """Run the check on one batch (use float64 for meaningful small-β numbers); see the module docstring."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0 (both signs are run), got {beta}")
    net.check_input(x)
    n = x.shape[0]
    states, gs, gt = bptt_per_step(net, x, y, T1=T1, T2=T2, mode=mode)
    s_star = states[-1]
    names = [f"s{i + 1}" for i in range(len(net.layers))] + [k for k in _dyn_params(net) if not k.endswith(".B")]
    for step_grads in gt:  # unidirectional: compare W_n with the tied-weight gradient (W_n and B_n parts)
        for k in [k for k in step_grads if k.endswith(".B")]:
            w = k[:-2] + ".weight"
            step_grads[w] = step_grads[w] + step_grads.pop(k)

    # −∇BPTT(t), t = 0 … T2−1: neuron t ↔ s_{T−t} = states[T2 − t]; parameters of the step producing it.
    ref: dict[str, list[Tensor]] = {k: [] for k in names}
    for t in range(T2):
        k = T2 - t
        dsig = _sigma_prime(states[k], net.theta)
        for i, (g, d) in enumerate(zip(gs[k], dsig)):
            ref[f"s{i + 1}"].append(-(g * d) * n)           # per sample: ∂ℓ_i/∂s_i = B ∂L/∂s_i
        for name, g in gt[k - 1].items():
            ref[name].append(-g)

    traj = {+1: nudged_trajectory(net, x, y, s_star, beta=beta, T2=T2, mode=mode),
            -1: nudged_trajectory(net, x, y, s_star, beta=-beta, T2=T2, mode=mode)}
    phi_g = {sgn: [_phi_grads(net, x, st) for st in tr] for sgn, tr in traj.items()}
    ep = {e: {k: [] for k in names} for e in ESTIMATES}
    for t in range(T2):
        d = {}
        for sgn in (+1, -1):
            tr, pg = traj[sgn], phi_g[sgn]
            d[sgn] = {f"s{i + 1}": tr[t + 1][i] - tr[t][i] for i in range(len(net.layers))}
            d[sgn].update({k: (pg[t + 1][k] - pg[t][k]) / n for k in pg[t]})
        for k in names:
            ep["plus"][k].append(d[+1][k] / beta)
            ep["minus"][k].append(d[-1][k] / -beta)
            ep["sym"][k].append((d[+1][k] - d[-1][k]) / (2 * beta))

    residual = max((a - b).abs().max().item() for a, b in zip(states[-1], states[-2]))
    drift = max((a - b).abs().max().item() for a, b in zip(states[-1], states[0]))
    windows, sw_plus = _pool_switches(net, traj[+1])
    sw_minus = _pool_switches(net, traj[-1])[1]
    return GDUTrace(names=names, ref={k: torch.stack(v) for k, v in ref.items()},
                    ep={e: {k: torch.stack(v) for k, v in d.items()} for e, d in ep.items()},
                    beta=beta, T1=T1, T2=T2, residual=residual, window_drift=drift,
                    pool_windows=windows, pool_switches={"plus": sw_plus, "minus": sw_minus})


# --- metrics ----------------------------------------------------------------------------------
def _rel(a: Tensor, b: Tensor) -> float:
    den = b.norm().item()
    return (a - b).norm().item() / den if den > 0 else (0.0 if a.norm().item() == 0 else math.inf)


def _sign_dis(a: Tensor, b: Tensor) -> float:
    big = b.abs() > 1e-9 * b.abs().max()
    if not big.any():
        return 0.0
    return (torch.sign(a[big]) != torch.sign(b[big])).double().mean().item()


def metrics(trace: GDUTrace) -> list[dict]:
    """One row per tensor: rel_rms / sign_dis / final / step_rms for each estimate (see module docstring)."""
    rows = []
    for name in trace.names:
        ref = trace.ref[name]
        c_ref = ref.cumsum(0)
        row = {"tensor": name, "kind": trace.kind(name), "layer": trace.layer(name),
               "elements": ref[0].numel(), "bptt_rms": c_ref.pow(2).mean().sqrt().item()}
        for e in ESTIMATES:
            est = trace.ep[e][name]
            c = est.cumsum(0)
            row[f"rel_rms_{e}"] = _rel(c, c_ref)
            row[f"sign_dis_{e}"] = _sign_dis(c, c_ref)
            row[f"final_{e}"] = _rel(c[-1], c_ref[-1])
            row[f"step_rms_{e}"] = _rel(est, ref)
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], trace: GDUTrace, title: str, command: str | None = None) -> str:
    lines = [f"# {title}", ""] + ([f"Command: `{command}`", ""] if command else []) + [
             f"β = {trace.beta:g}, T1 = {trace.T1}, T2 = {trace.T2}; free-phase residual max|s_T − s_(T−1)| = "
             f"{trace.residual:.2e}; {window_text(trace)}." + _switch_text(trace), "",
             "Errors of the cumulative sums Σ_{k≤t} ΔEP(k) against −Σ_{k≤t} ∇BPTT(k) over t = 0…T2−1 and all "
             "elements: relative RMS error ‖C_EP − C_BPTT‖/‖C_BPTT‖ and the fraction of sign disagreements; "
             "'final' is the relative error of the full sum (the EP estimate vs the truncated-BPTT gradient). "
             "Neurons are compared with σ′⊙∂L/∂s.", "",
             "| tensor | elements | rel. RMS one-sided +β | rel. RMS one-sided −β | rel. RMS symmetric "
             "| sign disagr. one-sided +β | sign disagr. symmetric | final one-sided +β | final symmetric |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['tensor']} | {r['elements']} | {r['rel_rms_plus']:.3g} | {r['rel_rms_minus']:.3g} | "
                     f"{r['rel_rms_sym']:.3g} | {100 * r['sign_dis_plus']:.2f} % | {100 * r['sign_dis_sym']:.2f} % | "
                     f"{r['final_plus']:.3g} | {r['final_sym']:.3g} |")
    return "\n".join(lines) + "\n"


def _switch_text(trace: GDUTrace) -> str:
    if not trace.pool_windows:
        return ""
    sw = trace.pool_switches
    return (f" Max-pooling feedback argmax switches during the nudged phase: {sw['plus']} (+β) and {sw['minus']} "
            f"(−β) of {trace.pool_windows} windows (each is a jump in the dynamics that EP divides by β and BPTT "
            f"does not see).")


def window_text(trace: GDUTrace) -> str:
    """How far the state moved over the BPTT window, or, when T1 = T2, why that is no warning.

    The GDU property assumes the state constant over the unrolled window (s_{T−t} = s* for the
    compared steps). With T1 > T2 the window should lie after convergence: a drift above 1e-3 says
    it does not. With T1 = T2 BPTT unrolls the whole free phase from s = 0, so the state moves by
    construction (drift ≈ max s*, often 1) and only the first nudged steps t, whose BPTT step
    s_{T−t} had already settled, are expected to match.
    """
    if trace.T1 == trace.T2:
        return ("BPTT unrolls the whole free phase from s = 0 (T1 = T2), so the state moves over its window by "
                "construction; per-step agreement is expected only for the first nudged steps, whose BPTT "
                "counterparts s_(T−t) had already settled (T1 > T2 unrolls a settled window)")
    text = f"drift over the BPTT window max|s_T − s_(T−T2)| = {trace.window_drift:.2e}"
    if trace.window_drift > 1e-3:
        text += (" — the state still moves over the window, the GDU property assumes it constant: "
                 "raise method.T1 (or lower T2)")
    return text


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# --- the command ------------------------------------------------------------------------------
def _check(cfg, n_images: int, beta: float | None) -> float:
    """The β to use; ConfigError for what the check cannot run."""
    if cfg.model.kind != "rate":
        raise ConfigError("model.kind: the GDU check runs the rate dynamics; use kind: rate "
                          "(spiking weights are the same tensors and load into the rate network)")
    if n_images < 1:
        raise ConfigError(f"--n-images: at least one image is needed, got {n_images}")
    m = cfg.method
    beta = m.beta if beta is None else float(beta)
    if not beta > 0:
        raise ConfigError(f"--beta: must be > 0 (both signs are run), got {beta}")
    if not 0 < m.T2 <= m.T1:
        raise ConfigError(f"method.T2: the check unrolls the last T2 of T1 free steps; needs T2 ≤ T1, got "
                          f"T1 = {m.T1}, T2 = {m.T2}")
    return beta


def _network_and_batch(cfg, checkpoint, n_images: int, dtype):
    """The (trained or seed-initialised) network and ``n_images`` random training images, normalised."""
    from . import data as D
    from .checkpoint import load_weights
    from .prepare import load_data, normalisation
    torch.manual_seed(cfg.train.seed)
    net = R.build_network(cfg.model)
    if checkpoint is not None:
        load_weights(net, checkpoint)
    net = net.to(dtype=dtype)
    ds = load_data(cfg)
    g = torch.Generator().manual_seed(cfg.train.seed)
    idx = torch.randperm(len(ds.train_x), generator=g)[:n_images]
    x = D.normalize(ds.train_x[idx], *normalisation(cfg, ds), dtype=dtype)
    return net, x, ds.train_y[idx], idx, ds.source


def _log_result(log, title, trace, rows, m, beta, out, seconds) -> None:
    log(title)
    log(f"β = {beta:g}, T1 = {m.T1}, T2 = {m.T2}, mode {m.mode}; free-phase residual {trace.residual:.1e}")
    log(("note: " if m.T1 == m.T2 else "") + window_text(trace))
    if trace.pool_windows:
        log(f"max-pooling feedback argmax switches: {trace.pool_switches['plus']} (+β), "
            f"{trace.pool_switches['minus']} (−β) of {trace.pool_windows} windows")
    if trace.residual > 1e-3:
        log("warning: the free phase has not converged (residual > 1e-3); the GDU property assumes a fixed "
            "point: raise method.T1 (--set method.T1=...)")
    if m.mode != "sync":
        log("note: the GDU theorem is stated for synchronous updates; per-step agreement is not expected "
            f"in mode {m.mode}")
    log("relative RMS error of the cumulative sums vs −BPTT (one-sided +β | symmetric):")
    for r in rows:
        log(f"  {r['tensor']:<18} {r['rel_rms_plus']:10.3g} | {r['rel_rms_sym']:10.3g}   "
            f"sign disagreement {100 * r['sign_dis_plus']:5.1f} % | {100 * r['sign_dis_sym']:5.1f} %")
    log(f"written to {out}: gdu_table.md, gdu_table.csv, gdu_curves.png, gdu_layers.png, summary.json "
        f"({seconds:.1f} s)")


def run(cfg, *, config_path: str | None = None, checkpoint: str | None = None, n_images: int = 10,
        beta: float | None = None, out: str | Path | None = None, dtype=torch.float64, log=print) -> dict:
    """Load data (and weights), run :func:`gdu_trace` on ``n_images`` random training images, write the outputs.

    Runs on the CPU in ``dtype`` (float64 by default: the small-β differences are tiny); the images
    are drawn from the training split with ``train.seed`` and normalised as in training (no augmentation).

    Out folder (default ``<train.out_dir>/gdu-<config stem>-<time>``): ``gdu_table.md``,
    ``gdu_table.csv``, ``gdu_curves.png``, ``gdu_layers.png``, ``config.yaml``, ``summary.json``.
    Returns the summary dict.
    """
    from .config import dump_config
    from .gdu_plots import plot_curves, plot_layers
    from .train import command_line, git_commit, hardware, versions

    beta = _check(cfg, n_images, beta)
    m = cfg.method
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    t0 = time.time()
    net, x, y, idx, source = _network_and_batch(cfg, checkpoint, n_images, dtype)
    if out is None:
        stem = Path(config_path).stem if config_path else "config"
        tag = f"-{Path(checkpoint).name}" if checkpoint else "-untrained"
        out = Path(cfg.train.out_dir) / f"gdu-{stem}{tag}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    trace = gdu_trace(net, x, y, beta=beta, T1=m.T1, T2=m.T2, mode=m.mode)
    rows = metrics(trace)
    what = f"trained ({checkpoint})" if checkpoint else "untrained (seed {})".format(cfg.train.seed)
    title = f"GDU check: {Path(config_path).stem if config_path else 'config'}, {what}, {n_images} training images"
    (out / "gdu_table.md").write_text(markdown_table(rows, trace, title, command_line()))
    (out / "gdu_table.csv").write_text(_csv(rows))
    plot_curves(trace, out / "gdu_curves.png", seed=cfg.train.seed, title=title)
    plot_layers(rows, out / "gdu_layers.png", title=title)
    (out / "config.yaml").write_text(dump_config(replace(cfg, method=replace(m, beta=beta))))
    weights = [r for r in rows if r["kind"] == "weights"]
    summary = {
        "command": command_line(), "config": config_path, "checkpoint": checkpoint, "data_source": source,
        "image_indices": idx.tolist(), "n_images": n_images, "beta": beta, "T1": m.T1, "T2": m.T2, "mode": m.mode,
        "dtype": str(dtype).replace("torch.", ""), "free_residual": trace.residual, "window_drift": trace.window_drift,
        "window_note": window_text(trace),
        "pool_windows": trace.pool_windows, "pool_switches": trace.pool_switches,
        "mean_rel_rms_weights": {e: sum(r[f"rel_rms_{e}"] for r in weights) / len(weights) for e in ESTIMATES},
        "mean_rel_rms_neurons": {e: sum(r[f"rel_rms_{e}"] for r in rows if r["kind"] == "neurons") /
                                 len(net.layers) for e in ESTIMATES},
        "seconds": round(time.time() - t0, 2), "hardware": hardware(torch.device("cpu")), "versions": versions(),
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "out": str(out),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _log_result(log, title, trace, rows, m, beta, out, summary["seconds"])
    return summary


def main(args) -> int:
    """``spiking-ep gdu``: entry point for the parsed arguments."""
    from .config import load_config
    cfg = load_config(args.config, args.overrides)
    run(cfg, config_path=args.config, checkpoint=args.checkpoint, n_images=args.n_images, beta=args.beta,
        out=args.out)
    return 0
