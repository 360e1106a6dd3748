"""Cost of a conv layer with 2×2 average pooling: one strided convolution vs conv, then pool.

    python benchmarks/avg_conv_pool.py [--threads 1] [--repeats 5] [--out results/avg_conv_pool]

``rate_ref.ConvPool`` computes avg2×2(W ⋆ s + b) as one stride-2 convolution with the
(k+1)×(k+1) kernel w̄ = ¼ Σ shifts of W, and the feedback drive as its transposed convolution.
This script times, side by side in one process, that ("strided") against the two-step
definition ("two-step": conv2d then avg_pool2d; unpool then conv_transpose2d), swapped in by
patching the layer, on the MNIST spiking convnet (configs/mnist_conv_spiking.yaml, seed-0 init,
the first 64 training digits):
  - each conv layer's forward drive and feedback drive on binary spike tensors (ms per call);
  - one ``spiking_ep_gradients`` call with the config's schedule (ms per image), and the largest
    relative difference between the two implementations' updates (rounding can flip spikes).
Both variants alternate over ``--repeats`` rounds; the table gives the median.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import first_images  # noqa: E402

import rate_ref as R  # noqa: E402
from spiking_ep.config import load_config  # noqa: E402
from spiking_ep.learning import spiking_ep_gradients  # noqa: E402
from spiking_ep.runinfo import provenance, provenance_line  # noqa: E402

CONFIG = "configs/mnist_conv_spiking.yaml"


def _two_step_drive(self, s_prev, weight, bias):
    return self._pool(F.conv2d(s_prev, weight, bias, padding=self.padding))[0]


def _two_step_feedback(self, s, w, idx):
    return self._transpose(self._unpool(s, idx), w)


@contextlib.contextmanager
def two_step():
    """The layer's definition before the strided form: conv then pool, unpool then transpose."""
    with mock.patch.object(R.ConvPool, "drive_with", _two_step_drive), \
            mock.patch.object(R.ConvPool, "_feedback", _two_step_feedback):
        yield


VARIANTS = {"strided": contextlib.nullcontext, "two-step": two_step}


def timed(fn, n: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def run(repeats: int) -> dict:
    cfg = load_config(CONFIG)
    torch.manual_seed(cfg.train.seed)
    net = R.build_network(cfg.model)
    x, y = first_images(cfg)
    g = torch.Generator().manual_seed(0)
    # spike tensors at the convnet's typical rate (~0.12 spikes per neuron per step)
    spikes = [(torch.rand(64, *s, generator=g) < 0.12).float() for s in net.state_shapes]
    ins = [x] + spikes[:-1]
    kw = dict(beta=cfg.method.beta, T1=cfg.method.T1, T2=cfg.method.T2, cfg=cfg.spiking, mode=cfg.method.mode)
    times: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
    grads = {}
    with torch.no_grad():
        for _ in range(repeats):
            for name, ctx in VARIANTS.items():
                with ctx():
                    for i, layer in enumerate(net.layers):
                        times[name].setdefault(f"layer {i + 1} forward drive (ms/call)", []).append(
                            1e3 * timed(lambda layer=layer, i=i: layer.forward_drive(ins[i]), 20))
                        if i > 0:
                            times[name].setdefault(f"layer {i + 1} feedback drive (ms/call)", []).append(
                                1e3 * timed(lambda layer=layer, i=i: layer.feedback_drive(spikes[i], ins[i]), 20))
    for _ in range(repeats):
        for name, ctx in VARIANTS.items():
            with ctx():
                t0 = time.perf_counter()
                grads[name], _ = spiking_ep_gradients(net, x, y, **kw)
                times[name].setdefault("spiking_ep_gradients (ms/image)", []).append(
                    1e3 * (time.perf_counter() - t0) / len(x))
    diff = max(((grads["strided"][k] - grads["two-step"][k]).norm() / grads["two-step"][k].norm()).item()
               for k in grads["strided"])
    rows = []
    for what in times["strided"]:
        a, b = statistics.median(times["strided"][what]), statistics.median(times["two-step"][what])
        rows.append({"what": what, "strided": a, "two_step": b, "speedup": b / a})
    return {"rows": rows, "max_rel_update_diff": diff,
            "schedule": f"T1 = {kw['T1']}, T2 = {kw['T2']}, {kw['mode']}, batch 64"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/avg_conv_pool")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = run(args.repeats)
    res.update(command=" ".join(["python", "benchmarks/avg_conv_pool.py"] + (argv or sys.argv[1:])),
               threads=args.threads, provenance=provenance("cpu"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2))
    lines = [
        "# Conv + 2×2 average pooling: one strided convolution vs conv, then pool",
        "",
        provenance_line({**res["provenance"], "command": res["command"]}) + ".",
        "",
        "MNIST spiking convnet (configs/mnist_conv_spiking.yaml, seed-0 init), batch of 64; both variants in "
        f"this one process, alternating, median of {args.repeats} rounds. Drives on random binary spikes "
        f"(rate 0.12); the full update uses the config's schedule ({res['schedule']}) on 64 MNIST digits.",
        "",
        "| what | strided | two-step | speed-up |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['what']} | {r['strided']:.3f} | {r['two_step']:.3f} | {r['speedup']:.2f}× |" for r in res["rows"]]
    lines += ["", f"Largest relative difference between the two variants' updates (any tensor): "
                  f"{res['max_rel_update_diff']:.1e}: the drives agree to float32 rounding "
                  "(tests/test_rate_ref.py checks 1e-12 in float64), but a rounding-level difference "
                  "in a current can flip a spike at threshold, after which the spike trains differ."]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
