"""Verification that ``export`` runs on the file it wrote, and prints.

1. Spike for spike (``--feedback full``): the file is read back with ``nir.read``, executed with
   nirtorch through our node map (:mod:`.nir_run`), and stepped in lockstep with our simulator in
   the NIR-exact profile (:mod:`.profile`, schedule ``forward``) on the first ``n_verify`` test
   images: every spike of every layer at every step is compared, and the predictions (argmax of
   the readout of the window's spike counts). In float64 both sides compute the same currents up
   to rounding of ~1e-16, so the trains must be identical; in float32 the coarse-grid
   convolutions of a conv export round differently from our native ones, and a neuron within
   rounding of θ can flip (counted and reported, not a failure).
2. Test error on the first ``n_test`` test images of: the network as trained (its own kind, mode
   and inference T1), ours as a spiking network with the run's spiking settings (training profile),
   ours in the NIR-exact profile, the nirtorch execution of the file, and the snnTorch / norse
   importers where they load (:mod:`.importers`).
"""
from __future__ import annotations

import dataclasses

import torch

import rate_ref as R

from .. import dynamics as D
from ..config import Config
from .profile import nir_exact


def spike_check(net, graph, lin0, lays, x: torch.Tensor, cfg_nir: Config, *, steps: int, window: int,
                dtype: torch.dtype, cfg_train: Config | None = None) -> dict:
    """Lockstep comparison of our simulator (NIR-exact profile) and nirtorch on the batch ``x``.

    With ``cfg_train`` our simulator also runs in the run's own spiking settings and schedule
    (training profile), and how far its spikes are from the graph's is reported
    (``training_profile``: differing spikes, fraction of (neuron, step) entries equal, mean
    |window rate difference|) — the price of the NIR-exact semantics, spike by spike.
    """
    from .nir_graph import name
    from .nir_run import load_module
    import copy
    net = copy.deepcopy(net).to(dtype)
    x = x.to(dtype).contiguous()
    module = load_module(graph, dtype)
    scfg = cfg_nir.spiking
    state = D.zero_state(net, x, scfg)
    x_drive = net.layers[0].forward_drive(x)
    n = len(net.layers)
    counts = [torch.zeros_like(v) for v in state.v]
    mism, spikes, first = [0] * n, [0] * n, None
    g_state, out_sum = None, None
    other = None if cfg_train is None else {"state": D.zero_state(net, x, cfg_train.spiking), "bad": 0,
                                            "counts": [torch.zeros_like(v) for v in state.v], "gcounts": None}
    with torch.no_grad():
        for t in range(steps):
            state = D.step(net, x, state, cfg=scfg, mode="forward", x_drive=x_drive)
            if other is not None:
                other["state"] = D.step(net, x, other["state"], cfg=cfg_train.spiking, mode=cfg_train.method.mode,
                                        x_drive=x_drive)
            out, g_state = module(lin0.to_export(x), g_state)
            for i in range(n):
                zg = lays[i].to_native(g_state[name(i + 1, "neuron")].z)
                bad = int((zg != state.spikes[i]).sum())
                mism[i] += bad
                spikes[i] += int(state.spikes[i].sum())
                if bad and first is None:
                    first = {"step": t + 1, "layer": i + 1, "neurons": bad}
                if other is not None:
                    other["bad"] += int((zg != other["state"].spikes[i]).sum())
                    if t >= steps - window:
                        other["counts"][i] += other["state"].spikes[i]
            if t >= steps - window:
                out_sum = out.clone() if out_sum is None else out_sum + out
                counts = [c + z for c, z in zip(counts, state.spikes)]
        ours = R.predict(net, tuple(c / window for c in counts)).argmax(1)
    graph_pred = out_sum.flatten(1).argmax(1)
    extra = {}
    if other is not None:
        entries = sum(c.numel() for c in counts) * steps
        extra["training_profile"] = {
            "mismatched_spikes": other["bad"], "entries_equal": 1.0 - other["bad"] / entries,
            "mean_abs_rate_diff": sum(float((a - b).abs().sum()) for a, b in zip(other["counts"], counts))
            / (window * sum(c.numel() for c in counts))}
    return {**extra, "dtype": str(dtype).replace("torch.", ""), "images": int(x.shape[0]), "steps": steps,
            "identical": sum(mism) == 0, "mismatched_spikes": sum(mism), "mismatched_per_layer": mism,
            "spikes": sum(spikes), "spikes_per_layer": spikes, "first_mismatch": first,
            "predictions_equal": (ours == graph_pred).sum().item() / len(ours)}


def _batches(x, y, bs):
    for i in range(0, len(x), bs):
        yield x[i:i + bs], y[i:i + bs]


def predictions(fn, xs, ys, bs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, labels) of ``fn(x_batch) -> class scores`` over the whole set."""
    preds = [fn(xb).argmax(1) for xb, _ in _batches(xs, ys, bs)]
    return torch.cat(preds), ys


def ours_scores(net, cfg: Config, steps: int | None):
    from ..inference import as_input, infer

    def fn(x):
        state, _ = infer(net, as_input(x, cfg), cfg, steps)
        return R.predict(net, state)
    return fn


def graph_scores(module, lin0, steps: int, window: int):
    from .nir_run import run
    return lambda x: run(module, lin0.to_export(x).contiguous(), steps=steps, window=window).flatten(1)


def _err(pred, y) -> float:
    return (pred != y).sum().item() / len(y)


def verify_export(path, fmt: str, cfg: Config, net, *, steps: int, window: int, n_verify: int, n_test: int | None,
                  importers: bool, log=print) -> dict:
    """Run the checks of the module docstring; returns the results (also logged, one line each)."""
    from .. import data as Dmod
    from ..prepare import load_data, normalisation
    ds = load_data(cfg)
    mean, std = normalisation(cfg, ds)
    n_test = len(ds.test_x) if n_test is None else min(int(n_test), len(ds.test_x))
    xs = Dmod.normalize(ds.test_x[:n_test], mean, std)
    ys = ds.test_y[:n_test]
    bs = cfg.train.eval_batch_size
    cfg_nir = nir_exact(cfg)
    cfg_spk = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind="spiking"))
    res = {"data": ds.source, "n_test": n_test, "test_error": {}, "agreement": {}}
    pred = {}
    with torch.no_grad():
        pred["trained"] = predictions(ours_scores(net, cfg, None), xs, ys, bs)[0]
        log(f"test error, as trained ({cfg.model.kind}, mode {cfg.method.mode}, T1 = {cfg.method.inference_T1}): "
            f"{_err(pred['trained'], ys):.4f} on {n_test} images")
        if cfg.model.kind == "spiking" and steps == cfg.method.inference_T1:
            pred["ours_training_profile"] = pred["trained"]
        else:
            pred["ours_training_profile"] = predictions(ours_scores(net, cfg_spk, steps), xs, ys, bs)[0]
        pred["ours_nir_profile"] = predictions(ours_scores(net, cfg_nir, steps), xs, ys, bs)[0]
        for key in ("ours_training_profile", "ours_nir_profile"):
            log(f"test error, ours ({key.replace('ours_', '').replace('_', ' ')}, spiking, T1 = {steps}): "
                f"{_err(pred[key], ys):.4f}")
        if fmt == "nir":
            res.update(_verify_graph(path, cfg_nir, cfg_spk, net, xs, ys, pred, steps=steps, window=window,
                                     n_verify=n_verify, bs=bs, importers=importers, log=log))
        else:
            res["roundtrip"] = _verify_h5(path, net)
            log(f"HDF5 round trip: weights identical = {res['roundtrip']['weights_identical']}")
    res["test_error"] = {k: _err(p, ys) for k, p in pred.items()}
    if "nirtorch" in pred:
        res["agreement"]["nirtorch_vs_ours_nir_profile"] = (pred["nirtorch"] == pred["ours_nir_profile"]).sum().item() / n_test
    return res


def _verify_graph(path, cfg_nir, cfg_train, net, xs, ys, pred: dict, *, steps, window, n_verify, bs, importers,
                  log) -> dict:
    from .importers import run_importers
    from .layout import layouts
    from .nir_graph import read_graph
    from .nir_run import load_module
    graph = read_graph(path)
    feedback = str(graph.metadata.get("feedback", "full"))
    lin0, lays = layouts(net, feedback)
    out = {}
    if feedback == "full":
        xv = xs[:n_verify]
        out["spike_check"] = [spike_check(net, graph, lin0, lays, xv, cfg_nir, steps=steps, window=window, dtype=dt,
                                          cfg_train=cfg_train if dt == torch.float64 else None)
                              for dt in (torch.float64, torch.float32)]
        for c in out["spike_check"]:
            log(f"spike check ({c['dtype']}, {c['images']} images, {steps} steps, schedule forward): "
                f"{'IDENTICAL' if c['identical'] else 'DIFFERENT'} spike trains "
                f"({c['mismatched_spikes']} of {c['spikes']} spikes differ), predictions equal "
                f"{c['predictions_equal']:.3f}")
            if "training_profile" in c:
                tp = c["training_profile"]
                log(f"  ours in the training profile ({cfg_train.method.mode}) vs the graph: {tp['mismatched_spikes']} "
                    f"spikes differ, {tp['entries_equal']:.4f} of (neuron, step) entries equal, mean |rate "
                    f"difference| {tp['mean_abs_rate_diff']:.4f} spikes/step")
    else:
        out["spike_check"] = []
        log("spike check skipped: with --feedback none the graph is a different (feed-forward) network; "
            "its test error is below")
    module = load_module(graph, torch.float32)
    pred["nirtorch"] = predictions(graph_scores(module, lin0, steps, window), xs, ys, bs)[0]
    log(f"test error, nirtorch execution of {path} (float32, feedback {feedback}): {_err(pred['nirtorch'], ys):.4f}")
    if importers:
        out["importers"] = run_importers(path, lin0, xs, ys, pred["nirtorch"], graph_scores(module, lin0, steps, window),
                                         steps=steps, window=window, bs=bs, n_verify=n_verify, log=log)
        for key, r in out["importers"].items():
            if r.get("predictions") is not None:
                pred[key] = r.pop("predictions")
            else:
                r.pop("predictions", None)
    return out


def _verify_h5(path, net) -> dict:
    from .h5 import read_h5
    back = read_h5(path)
    same = all(torch.equal(a.float(), b) for a, b in zip(net.state_dict().values(), back.net.state_dict().values()))
    return {"weights_identical": bool(same)}
