"""Arithmetic precision and compilation of the step loop (``train.precision``, ``train.compile``).

    float32   plain float32 (the default; bit-reproducible on the CPU)
    tf32      float32 tensors, but CUDA matrix products and convolutions in TF32 (10-bit mantissa
              inputs, float32 accumulation): Ampere/Hopper tensor cores, several times faster
    bf16      convolutions and matrix products under ``torch.autocast(bfloat16)``; neuron states,
              spikes, traces and the parameter update stay float32

EP updates are small differences of two nudged phases, so reduced precision is only worth it
when the estimate still agrees with float32: benchmarks/gpu_check.py measures the cosine and the
relative error of tf32 / bf16 rate-EP gradients against float32 ones on the same batch and
weights (the check: cosine ≥ 0.999 per layer). Measured on the CPU (results/benchmarks/
precision_cpu.json: the paper's net, seed-0 init, 2 random images): bf16 fails it badly — layer-1
cosine 0.00, layer-2 0.46, layer-3 0.994 — because a bf16 drive carries ~0.4 % relative error,
more than the first layers' ±β state difference; tf32 is a no-op on the CPU. Prefer tf32. ``train.compile`` wraps the rate and spiking step
functions with ``torch.compile`` for the run (a GPU option: on the CPU the convolutions dominate
and compiling gained nothing here, at minutes of compile time).
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("float32", "tf32", "bf16")


@contextlib.contextmanager
def precision(name: str, device: torch.device):
    """Run the enclosed computation in ``name`` precision on ``device`` (see the module docstring)."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    if name == "float32":
        yield
        return
    if name == "tf32":
        old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


@contextlib.contextmanager
def compiled_steps(enable: bool):
    """Swap the rate and spiking ``step`` functions for ``torch.compile``d ones while enabled.

    The relaxation loops look ``step`` up in their module at every call, so the swap reaches every
    phase, BPTT's unrolled steps and inference; the originals come back on exit.
    """
    if not enable:
        yield
        return
    import rate_ref.dynamics as RD

    from . import dynamics as SD
    saved = RD.step, SD.step
    RD.step, SD.step = torch.compile(saved[0], dynamic=False), torch.compile(saved[1], dynamic=False)
    try:
        yield
    finally:
        RD.step, SD.step = saved
