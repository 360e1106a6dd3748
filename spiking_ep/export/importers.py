"""Third-party NIR importers (snnTorch, norse) run on an exported file, with what we know of them.

Each importer gets a freshly read graph, runs ``steps`` steps per test batch (state threaded
through ``module(x, state)``), and its prediction (argmax of the output summed over the window)
is compared with the nirtorch execution through our node map. A failure to import, load or run
is caught and reported with the exception and, where we traced it in the importer's source, the
cause (docs/export.md has the measurements).
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import torch

# Causes found by reading the importers' source (snntorch 1.0.0, norse 1.1.0); shown with a failure
# or a disagreement so that the output says why, not only that.
KNOWN = {
    "snntorch": ("snntorch.import_nir maps nir.IF to snn.Leaky(beta=0.9, init_hidden=False) — a leaky neuron with "
                 "reset by subtraction, not IF with reset to v_reset — and that module returns (spk, mem), which "
                 "nirtorch hands on as a tuple to the next node (TypeError at the first step); nir.LIF is read "
                 "with dt = 1e-4 s (beta = 1 - dt/tau) and reset to zero"),
    "norse": ("norse.torch.from_nir maps nir.IF to IAFCell (v <- v + I, H(v - v_th), reset to 0: our semantics) and "
              "Affine/Linear/Conv2d correctly, and nirtorch's older GraphExecutor it runs on feeds a cycle the "
              "previous step's value as nir_to_torch does; but it maps nir.Flatten to torch.nn.Flatten(start_dim, "
              "end_dim) without the batch dimension NIR shapes omit, so start_dim 0 flattens the batch and the "
              "readout after it fails (conv exports)"),
}


def _load_snntorch(graph):
    from snntorch.import_nir import import_from_nir
    return import_from_nir(graph)


def _load_norse(graph):
    from norse.torch.utils.import_nir import from_nir
    return from_nir(graph)


LOADERS = {"snntorch": _load_snntorch, "norse": _load_norse}


def _first_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0][:300]


def _scores(module, x: torch.Tensor, steps: int, window: int) -> torch.Tensor:
    state, total = None, None
    for t in range(steps):
        out, state = module(x, state)
        if isinstance(out, tuple):   # some importers' modules hand back (spikes, membrane)
            out = out[0]
        if t >= steps - window:
            total = out.clone() if total is None else total + out
    return total.reshape(x.shape[0], -1)


def run_importers(path, lin0, xs: torch.Tensor, ys: torch.Tensor, ref_pred: torch.Tensor, ref_scores, *,
                  steps: int, window: int, bs: int, n_verify: int, log=print) -> dict:
    """``{importer: {loads, runs, error, known_cause, test_error, agreement_with_nirtorch,
    output_max_abs_diff, predictions}}``. ``ref_scores(x)``: nirtorch's summed output, against which
    the importer's summed output is compared on the first ``n_verify`` images (0 = same spikes at the
    output, up to float rounding)."""
    import nir
    results = {}
    for key, loader in LOADERS.items():
        r = {"loads": False, "runs": False, "error": None, "known_cause": KNOWN[key]}
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), _quiet():
                module = loader(nir.read(path))
            r["loads"] = True
            with torch.no_grad(), contextlib.redirect_stdout(sink), _quiet():
                preds = [_scores(module, lin0.to_export(xs[i:i + bs]).contiguous().float(), steps, window).argmax(1)
                         for i in range(0, len(xs), bs)]
                xv = xs[:n_verify]
                diff = (_scores(module, lin0.to_export(xv).contiguous().float(), steps, window)
                        - ref_scores(xv).float()).abs().max()
            pred = torch.cat(preds)
            r.update(output_max_abs_diff=float(diff), runs=True, predictions=pred, test_error=(pred != ys).sum().item() / len(ys),
                     agreement_with_nirtorch=(pred == ref_pred).sum().item() / len(ys))
        except Exception as e:   # an importer's bug must not stop the export: report it
            r["error"] = _first_line(e)
        results[key] = r
        if r["runs"]:
            log(f"{key} import: runs; test error {r['test_error']:.4f}, predictions equal to nirtorch's "
                f"{r['agreement_with_nirtorch']:.3f}, summed outputs differ by at most {r['output_max_abs_diff']:.3g}"
                + ("" if r["agreement_with_nirtorch"] == 1.0 else
                                                         f" — known differences: {KNOWN[key]}"))
        else:
            log(f"{key} import: {'loads but fails to run' if r['loads'] else 'fails to load'} ({r['error']}) — "
                f"known cause: {KNOWN[key]}")
    return results


@contextlib.contextmanager
def _quiet():
    # the importers log parameter warnings and deprecations; their results are reported instead
    level = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(level)
