"""What the gap report measures on the arms' weights (beyond their learning curves).

    gradient agreement   every arm's gradient estimate on the same weights and the same fixed
                         batches, per layer: cosine and relative error against rate EP and BPTT
    fixed-point gap      mean |spiking rate − rate fixed point| per layer after T1 spiking steps
    conversion           test error (and spikes, synaptic operations) of one arm's weights run as
                         the other kind of network, against the number of inference steps
    cost                 multiply-accumulates of the rate model, peak memory of one training step

All functions are pure in (network, data, configs) and return plain dicts / lists (JSON-ready).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

import rate_ref as R

from ..config import Config
from ..gradients import compute_gradients
from ..inference import evaluate


def layer_groups(net: R.EPNetwork) -> dict[str, list[str]]:
    """Parameter names per layer: ``layer1`` … ``layerN`` (W, b [, B]) and ``readout``."""
    groups: dict[str, list[str]] = {}
    for name, _ in net.named_parameters():
        if name.startswith("layers."):
            groups.setdefault(f"layer{int(name.split('.')[1]) + 1}", []).append(name)
        else:
            groups.setdefault("readout", []).append(name)
    return groups


def _flat(grads: dict[str, Tensor], names: list[str]) -> Tensor:
    return torch.cat([grads[k].detach().flatten().double() for k in names])


def cosine(a: Tensor, b: Tensor) -> float:
    """⟨a, b⟩ / (‖a‖ ‖b‖), NaN when either is zero."""
    na, nb = a.norm().item(), b.norm().item()
    return float("nan") if na == 0 or nb == 0 else (a @ b).item() / (na * nb)


def relative_error(a: Tensor, b: Tensor) -> float:
    """‖a − b‖ / ‖b‖ (b the reference), NaN when b is zero."""
    nb = b.norm().item()
    return float("nan") if nb == 0 else (a - b).norm().item() / nb


def gradient_estimates(net: R.EPNetwork, x: Tensor, y: Tensor, arm_cfgs: dict[str, Config],
                       seed: int = 0) -> dict[str, dict[str, Tensor]]:
    """Each arm's gradient estimate (autograd sign convention) on ``net``'s weights and the batch (x, y).

    Cold starts (no warm-start state for a fixed batch), no dropout, each arm's own steps and rule:
    exactly what ``compute_gradients`` computes in that arm's training step.
    """
    out = {}
    for arm, c in arm_cfgs.items():
        gen = torch.Generator().manual_seed(seed)
        grads, _, _ = compute_gradients(net, x, y, c, gen, None, None)
        out[arm] = grads
    return out


REFS = ("rate_ep", "bptt")


def against_refs(items: dict, refs: tuple[str, ...] = REFS):
    """(name, ref, items[name], items[ref]) for every reference present and every other entry."""
    for ref in refs:
        if ref in items:
            yield from ((name, ref, v, items[ref]) for name, v in items.items() if name != ref)


def agreement(grads: dict[str, dict[str, Tensor]], groups: dict[str, list[str]],
              refs: tuple[str, ...] = REFS) -> list[dict]:
    """Rows {method, ref, layer, cosine, rel_error, norm_ratio} for every method against every reference
    present (norm_ratio = ‖g‖/‖g_ref‖: a step size the shared learning rates turn into)."""
    rows = []
    for method, ref, g, g_ref in against_refs(grads, refs):
        for layer, names in groups.items():
            a, b = _flat(g, names), _flat(g_ref, names)
            nb = b.norm().item()
            rows.append({"method": method, "ref": ref, "layer": layer, "cosine": cosine(a, b),
                         "rel_error": relative_error(a, b),
                         "norm_ratio": a.norm().item() / nb if nb else float("nan")})
    return rows


def mean_rows(per_batch: list[list[dict]]) -> list[dict]:
    """Average the numeric fields of matching rows over batches (rows in the same order)."""
    out = []
    for rows in zip(*per_batch):
        row = dict(rows[0])
        for k in ("cosine", "rel_error", "norm_ratio"):
            row[k] = sum(r[k] for r in rows) / len(rows)
            row[f"{k}_min"], row[f"{k}_max"] = min(r[k] for r in rows), max(r[k] for r in rows)
        out.append(row)
    return out


def fixed_point_gap(net: R.EPNetwork, x: Tensor, rate_cfg: Config, spiking_cfg: Config,
                    T1s: tuple[int, ...], *, max_steps: int = 5000, tol: float = 1e-5) -> dict:
    """Mean |spiking rate − rate fixed point| per layer after each T1 (and the rate model's own
    distance after T1 steps), all from zero with the arms' schedule and the spiking rate estimate.

    The rate fixed point s* is relaxed until max|Δs| < ``tol`` (at most ``max_steps`` steps).
    """
    from ..dynamics import relax_spiking
    from ..learning import default_windows
    mode = rate_cfg.method.mode
    with torch.no_grad():
        s_star, used = R.settle(net, x, steps=max_steps, tol=tol, mode=mode)
        rows = []
        for T in T1s:
            s_T = R.relax(net, x, steps=T, mode=mode)
            window = default_windows(T, spiking_cfg.method.T2, spiking_cfg.spiking.window)[0]
            rates, _, stats = relax_spiking(net, x, steps=T, window=window, cfg=spiking_cfg.spiking,
                                            mode=spiking_cfg.method.mode)
            for n, (r, s, st) in enumerate(zip(rates, s_star, s_T)):
                rows.append({"T1": T, "layer": f"layer{n + 1}", "spiking": (r - s).abs().mean().item(),
                             "rate": (st - s).abs().mean().item(), "mean_state": s.mean().item()})
    return {"rows": rows, "fixed_point_steps": used, "fixed_point_tol": tol, "images": x.shape[0]}


def conversion(net: R.EPNetwork, test_x: Tensor, test_y: Tensor, cfg_as: Config, steps: tuple[int, ...],
               mean, std, device, dtype) -> list[dict]:
    """Test error (and spiking cost) of ``net`` run as the network ``cfg_as`` describes, per step count."""
    rows = []
    for T in steps:
        res = evaluate(net, test_x, test_y, cfg_as, device, dtype, mean, std, desc=f"{cfg_as.model.kind} T={T}",
                       steps=T)
        rows.append({"steps": T, "test_error": res["error"], "test_loss": res["loss"],
                     **{k: v for k, v in res.items() if k not in ("error", "loss")}, "n_test": len(test_y)})
    return rows


def rate_macs(net: R.EPNetwork) -> dict:
    """Multiply-accumulates of the rate model per sample: ``per_step`` (every layer's forward drive
    from the layer below, except the constant input drive, plus every feedback drive), ``input``
    (the input layer's drive, computed once per phase) and ``readout``."""
    def fwd(layer) -> int:
        if hasattr(layer, "kernel"):
            c_out, h, w = layer.out_shape
            taps = (layer.kernel + 1) ** 2 if layer.pool == "avg" else layer.kernel ** 2 * 4 ** (layer.pool != "none")
            return c_out * layer.in_shape[0] * taps * h * w
        return math.prod(layer.in_shape) * layer.out_shape[0]
    layers = list(net.layers)
    per_step = sum(fwd(layer) for layer in layers[1:]) * 2     # forward and feedback use the same weights
    readout = 0 if net.readout is None else net.readout.in_features * net.readout.out_features
    return {"per_step": per_step, "input": fwd(layers[0]), "readout": readout}


def inference_macs(net: R.EPNetwork, steps: int) -> int:
    m = rate_macs(net)
    return steps * m["per_step"] + m["input"] + m["readout"]


def peak_step_memory(fn) -> tuple[int, str]:
    """Peak bytes of the tensors ``fn()`` allocates beyond those alive when it starts, and how measured.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: torch's profiler records every allocation and
    free (``profile_memory``); their running sum, in time order, peaks at the value returned (at the
    granularity of one operator: an allocation freed inside the same operator is not seen).
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        fn()
        torch.cuda.synchronize(dev)
        return torch.cuda.max_memory_allocated(dev) - base, "torch.cuda.max_memory_allocated"
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    cur = peak = 0
    for e in events:
        cur += e.self_cpu_memory_usage
        peak = max(peak, cur)
    return peak, "peak of the running sum of tensor allocations and frees (torch profiler, profile_memory)"


def peak_memory(cfg: Config, batch: int | None = None) -> dict:
    """Peak memory one training step of ``cfg`` allocates (bytes), on random inputs of ``batch`` images."""
    batch = batch or cfg.train.batch_size
    device = torch.device("cuda" if cfg.train.device.startswith("cuda") and torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    net = R.build_network(cfg.model).to(device)
    x = torch.rand(batch, *cfg.model.input_shape, device=device)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, cfg.model.n_classes, (batch,), device=device)
    gen = torch.Generator().manual_seed(0)
    compute_gradients(net, x, y, cfg, gen, None, None)     # warm-up: caches (kernels) are not the step's
    peak, how = peak_step_memory(lambda: compute_gradients(net, x, y, cfg, gen, None, None))
    return {"peak_bytes": peak, "how": how, "batch": batch}
