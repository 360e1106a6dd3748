"""The GPU checks in one run (benchmarks/gpu_check.sh): speed, memory, precision, compile, a short training.

    python benchmarks/gpu_check.py --out DIR [--budget 480] [--device cuda]

Every part is timed against a budget (seconds) and skipped, with a note, when too little is left;
a failing part records its error and the others still run. Writes DIR/gpu_check.json (and prints
it). Parts, on the paper's CIFAR-10 architecture with average pooling
(configs/compare/cifar10_paper.yaml):
  1. device and the measured bf16 / fp32 matrix-product throughput;
  2. one training iteration of every compare arm (batch 128, the preset's fast schedule), median of 3:
     ms, seconds per epoch extrapolated to 50,000 images, peak memory (torch.cuda.max_memory_allocated);
  3. the paper's own schedule (sync, cold, T1 = 250, T2 = 25) for rate EP: seconds per epoch (target ≤ 60 s);
  4. precision: rate-EP gradients in tf32 and bf16 against float32 on the same batch and weights:
     per-layer cosine and relative error, and the time per iteration (check: cosine ≥ 0.999);
  5. torch.compile of the step functions: iteration time eager vs compiled, and the compile time;
  6. a short training: rate EP and spiking EP (rates rule) through ``spiking-ep compare`` (train,
     evaluate, report without measurements) on the carried CIFAR-10 subset, test error and seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rate_ref as R  # noqa: E402
from spiking_ep import accel  # noqa: E402
from spiking_ep.compare import measure as M  # noqa: E402
from spiking_ep.compare.arms import ARMS, arm_config  # noqa: E402
from spiking_ep.config import load_config  # noqa: E402
from spiking_ep.gradients import compute_gradients  # noqa: E402

CONFIG = "configs/compare/cifar10_paper.yaml"
EPOCH_IMAGES = 50_000


class Budget:
    def __init__(self, seconds: float):
        self.end = time.time() + seconds

    def left(self) -> float:
        return self.end - time.time()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats=3) -> list[float]:
    fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def setup(device, batch):
    base = load_config(CONFIG, ["method.tol=null"])
    cfgs = {a: arm_config(base, a, 0, "unused") for a in ARMS}
    torch.manual_seed(0)
    net = R.build_network(cfgs["rate_ep"].model).to(device)
    x = torch.rand(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    return cfgs, net, x, y


def part_device(device) -> dict:
    out = {"torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        out.update(name=torch.cuda.get_device_name(device), capability=list(torch.cuda.get_device_capability(device)))
        for dt in (torch.bfloat16, torch.float32):
            a = torch.rand(8192, 8192, device=device, dtype=dt)
            t = timed(lambda: a @ a, device, 5)
            out[f"matmul_tflops_{str(dt)[6:]}"] = 2 * 8192 ** 3 / min(t) / 1e12
    return out


def part_iterations(device, batch) -> dict:
    cfgs, net, x, y = setup(device, batch)
    gen = torch.Generator().manual_seed(0)
    rows = {}
    for arm, c in cfgs.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        t = timed(lambda c=c: compute_gradients(net, x, y, c, gen, None, None), device)
        m = c.method
        rows[arm] = {"steps": [m.T1, m.T2 if m.name == "ep" else m.bptt_K], "ms": 1e3 * min(t),
                     "epoch_s_extrapolated": min(t) * EPOCH_IMAGES / batch,
                     "peak_memory_mib": ((torch.cuda.max_memory_allocated(device) - base) / 2**20
                                         if device.type == "cuda" else None)}
    return rows


def part_paper_schedule(device, batch) -> dict:
    cfgs, net, x, y = setup(device, batch)
    c = cfgs["rate_ep"]
    c = dataclasses.replace(c, method=dataclasses.replace(c.method, mode="sync", T1=250, T2=25, warm_start="none"))
    t = timed(lambda: compute_gradients(net, x, y, c, None, None, None), device, 2)
    return {"schedule": "sync, cold, T1 250, T2 25, symmetric", "ms": 1e3 * min(t),
            "epoch_s_extrapolated": min(t) * EPOCH_IMAGES / batch, "target_epoch_s": 60}


def part_precision(device, batch) -> dict:
    cfgs, net, x, y = setup(device, batch)
    c = cfgs["rate_ep"]
    groups = M.layer_groups(net)
    out = {}
    ref = None
    for name in ("float32", "tf32", "bf16"):
        with accel.precision(name, device):
            g, _, _ = compute_gradients(net, x, y, c, None, None, None)
            t = timed(lambda: compute_gradients(net, x, y, c, None, None, None), device, 2)
        if ref is None:
            ref = g
        rows = {la: {"cosine": M.cosine(M._flat(g, n), M._flat(ref, n)),
                     "rel_error": M.relative_error(M._flat(g, n), M._flat(ref, n))} for la, n in groups.items()}
        out[name] = {"ms": 1e3 * min(t), "layers": rows,
                     "passes_cosine_0.999": all(r["cosine"] >= 0.999 for r in rows.values())}
    return out


def part_compile(device, batch) -> dict:
    cfgs, net, x, y = setup(device, batch)
    c = cfgs["rate_ep"]
    eager = timed(lambda: compute_gradients(net, x, y, c, None, None, None), device, 2)
    t0 = time.perf_counter()
    with accel.compiled_steps(True):
        compute_gradients(net, x, y, c, None, None, None)
        compile_s = time.perf_counter() - t0
        comp = timed(lambda: compute_gradients(net, x, y, c, None, None, None), device, 2)
    return {"eager_ms": 1e3 * min(eager), "compiled_ms": 1e3 * min(comp), "compile_s": compile_s,
            "speedup": min(eager) / min(comp)}


def part_training(device, out_dir: Path) -> dict:
    from spiking_ep.compare import run_compare
    cfg = load_config(CONFIG, ["train.epochs=2", "data.train_subset=10000", "data.test_subset=2000",
                               f"train.device={device}", "train.checkpoint_every_minutes=60"])
    t0 = time.time()
    rep = run_compare(cfg, out=out_dir / "compare", arms=("rate_ep", "spiking_rates"), measure=False,
                      title="GPU check: short training", log=lambda *a: None)
    return {"seconds": time.time() - t0, "n_train": 10000, "n_test": 2000, "epochs": 2,
            "test_error": {a: v["mean_final_test_error"] for a, v in rep["accuracy"].items()},
            "curves": rep["curves"]}


PARTS = [("device", part_device, 30), ("iterations", part_iterations, 90), ("paper_schedule", part_paper_schedule, 60),
         ("precision", part_precision, 60), ("compile", part_compile, 150), ("training", part_training, 150)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for all parts together")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--only", nargs="*", help="run only these parts")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budget, res = Budget(args.budget), {}
    from spiking_ep.runinfo import provenance
    res["provenance"] = provenance(device)
    for name, fn, need in PARTS:
        if args.only and name not in args.only:
            continue
        if budget.left() < need:
            res[name] = {"skipped": f"{budget.left():.0f} s of the budget left, this part needs about {need} s"}
            continue
        t0 = time.time()
        try:
            kw = {"out_dir": out} if name == "training" else ({} if name == "device" else {"batch": args.batch})
            res[name] = fn(device, **kw)
        except Exception as e:   # record and go on: one broken part must not hide the others
            res[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
        res[name]["part_seconds"] = time.time() - t0
        (out / "gpu_check.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    print(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
