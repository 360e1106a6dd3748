"""Neuron layouts of an exported network, and its connections as convolutions NIR can express.

NIR has Conv2d (with stride and padding) but no transposed convolution, upsampling or
reshape, so the feedback of a strided layer (a stride-2 transposed convolution) has no direct
NIR node. The export therefore lays each layer's neurons out on a *coarse grid*:

    flat  (F,)                 dense networks: Affine forward, Linear(Wᵀ) feedback
    grid  (C·f², H/f, W/f)     conv layers (and dense layers after them, as (F, 1, 1)): the
                               native (C, H, W) state by space-to-depth with factor f, i.e.
                               native neuron (c, f·I + a, f·J + b) is exported neuron
                               (c·f² + a·f + b, I, J)   (``torch.nn.functional.pixel_unshuffle``)

With layer n at factor f_n = S_{n+1} · f_{n+1} (S = 2 for an average-pooled conv layer, 1
without pooling; f_N = 1 for the top conv layer) all connected layers share one coarse grid,
so every forward connection is a stride-1 convolution there, and its adjoint — the feedback —
is again a stride-1 convolution (flipped kernel, in/out channels swapped). The coarse kernels
hold the native kernel's entries rearranged, and zeros: exact in any dtype.

A native connection is a strided convolution ``NativeConv`` (kernel K[c_out, c_in, u, v],
stride S, padding p); its coarse form is found per spatial dimension by :func:`_coarse_dim`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rate_ref.layers import ConvPool, Dense
from rate_ref.network import EPNetwork

from .errors import ExportError


@dataclass(frozen=True)
class Layout:
    """How one layer's native state ``(N, *native)`` is laid out in the graph.

    ``factor`` None: flat ``(F,)`` (native must be 1-D); otherwise a (C·f², H/f, W/f) grid of the
    native (C, H, W) state, with a 1-D native (F,) state shown as (F, 1, 1).
    """
    native: tuple[int, ...]
    factor: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Export shape (no batch dimension)."""
        if self.factor is None:
            return self.native
        c, h, w = self._chw
        f = self.factor
        return (c * f * f, h // f, w // f)

    @property
    def _chw(self) -> tuple[int, int, int]:
        return self.native if len(self.native) == 3 else (self.native[0], 1, 1)

    def to_export(self, t: Tensor) -> Tensor:
        """``(N, *native)`` → ``(N, *shape)``."""
        if self.factor is None:
            return t.reshape(t.shape[0], *self.shape)
        t = t.reshape(t.shape[0], *self._chw)
        return F.pixel_unshuffle(t, self.factor) if self.factor > 1 else t

    def to_native(self, t: Tensor) -> Tensor:
        """``(N, *shape)`` → ``(N, *native)``."""
        if self.factor is not None and self.factor > 1:
            t = F.pixel_shuffle(t, self.factor)
        return t.reshape(t.shape[0], *self.native)

    def native_index(self) -> Tensor:
        """For each exported neuron (flattened), the index of its native neuron (flattened)."""
        idx = torch.arange(math.prod(self.native), dtype=torch.float64).view(1, *self.native)
        return self.to_export(idx).flatten().long()

    def describe(self) -> dict:
        return {"native_shape": list(self.native), "export_shape": list(self.shape),
                "space_to_depth": self.factor if self.factor is not None else 0}


@dataclass(frozen=True)
class NativeConv:
    """out = conv2d(in, kernel, bias, stride, padding) on native (C, H, W) states."""
    kernel: Tensor           # (C_out, C_in, kh, kw)
    bias: Tensor | None      # (C_out,)
    stride: int
    padding: int


@dataclass(frozen=True)
class CoarseConv:
    """A stride-σ Conv2d between two layouts: weight (C_out', C_in', Kh, Kw), padding (Ph, Pw)."""
    weight: Tensor
    bias: Tensor
    stride: int
    padding: tuple[int, int]

    def __call__(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def adjoint(self) -> "CoarseConv":
        """The transpose of a stride-1 CoarseConv as a stride-1 Conv2d (no bias)."""
        assert self.stride == 1
        kh, kw = self.weight.shape[-2:]
        w = self.weight.transpose(0, 1).flip(2, 3).contiguous()
        return CoarseConv(w, self.weight.new_zeros(w.shape[0]), 1, (kh - 1 - self.padding[0], kw - 1 - self.padding[1]))


def _taps(S: int, k: int, p: int, f_in: int, f_out: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(output phase a_o, native tap u) → (coarse offset D, input phase a), one spatial dimension.

    Native output i = f_out·I + a_o reads native input S·i + u − p = f_in·(σ·I + D) + a with
    σ = S·f_out / f_in, so D = ⌊(S·a_o + u − p) / f_in⌋ and a = (S·a_o + u − p) mod f_in.
    """
    return {(ao, u): divmod(S * ao + u - p, f_in) for ao in range(f_out) for u in range(k)}


def _coarse_dim(taps: dict, sigma: int, g_in: int, g_out: int, adjoint: bool) -> tuple[int, int]:
    """(padding P, kernel size Kc) of the coarse convolution along one dimension.

    Needs P ≥ −D_min, Kc ≥ P + D_max + 1, ⌊(g_in + 2P − Kc)/σ⌋ + 1 = g_out, and for an adjoint
    (feedback) σ = 1 and Kc − 1 − P ≥ 0. The smallest kernel, then the smallest padding.
    """
    ds = [d for d, _ in taps.values()]
    p0 = max(0, -min(ds))
    for kc_extra in range(0, 4 * sigma + 2 * g_in + 8):
        for P in range(p0, p0 + g_in + 8):
            kc = P + max(ds) + 1 + kc_extra
            if (g_in + 2 * P - kc) // sigma + 1 != g_out or g_in + 2 * P < kc:
                continue
            if adjoint and (sigma != 1 or kc - 1 - P < 0):
                continue
            return P, kc
    raise ExportError(f"no convolution with symmetric padding maps a {g_in}-grid onto a {g_out}-grid "
                      f"(stride {sigma}); this layer shape cannot be exported")


def coarse_conv(nc: NativeConv, lin: Layout, lout: Layout, adjoint: bool) -> CoarseConv:
    """The coarse-grid Conv2d from layout ``lin`` to ``lout`` equal to the native convolution ``nc``."""
    fi, fo = lin.factor or 1, lout.factor or 1
    if (nc.stride * fo) % fi:
        raise ExportError(f"layouts with factors {fi} → {fo} do not share a grid at stride {nc.stride}")
    sigma = nc.stride * fo // fi
    c_out, c_in, kh, kw = nc.kernel.shape
    th = _taps(nc.stride, kh, nc.padding, fi, fo)
    tw = _taps(nc.stride, kw, nc.padding, fi, fo)
    ph, kch = _coarse_dim(th, sigma, lin.shape[1], lout.shape[1], adjoint)
    pw, kcw = _coarse_dim(tw, sigma, lin.shape[2], lout.shape[2], adjoint)
    w = nc.kernel.new_zeros(c_out * fo * fo, c_in * fi * fi, kch, kcw)
    for (ah, u), (dh, a) in th.items():
        for (bw, v), (dw, b) in tw.items():
            # every (output phase, tap) pair lands on its own coarse entry: assignment, not a sum
            w[ah * fo + bw::fo * fo, a * fi + b::fi * fi, dh + ph, dw + pw] = nc.kernel[:, :, u, v]
    bias = nc.bias if nc.bias is not None else nc.kernel.new_zeros(c_out)
    return CoarseConv(w, bias.repeat_interleave(fo * fo), sigma, (ph, pw))


def native_kernel(cc: CoarseConv, nc_shape: tuple[int, ...], stride: int, padding: int,
                  lin: Layout, lout: Layout) -> Tensor:
    """Read the native kernel (shape ``nc_shape``) back out of a coarse convolution (import)."""
    fi, fo = lin.factor or 1, lout.factor or 1
    kernel = cc.weight.new_zeros(nc_shape)
    th = _taps(stride, nc_shape[2], padding, fi, fo)
    tw = _taps(stride, nc_shape[3], padding, fi, fo)
    ph, pw = cc.padding
    for u in range(nc_shape[2]):
        dh, a = th[0, u]
        for v in range(nc_shape[3]):
            dw, b = tw[0, v]
            kernel[:, :, u, v] = cc.weight[0::fo * fo, a * fi + b::fi * fi, dh + ph, dw + pw]
    return kernel


# --- the network's layouts and native connections ------------------------------------------------
def check_exportable(net: EPNetwork) -> None:
    """Raise :class:`ExportError` for what NIR (or this exporter) cannot express, naming the layer."""
    for i, layer in enumerate(net.layers):
        if getattr(layer, "pool", None) == "max":
            raise ExportError(f"model.layers[{i}] uses max pooling, which NIR cannot express (no max-pooling node, "
                              f"and its unpooling follows a changing argmax); train with pool: avg")
        if layer.B is not None:
            raise ExportError(f"model.layers[{i}] is unidirectional (separate feedback weights B); the exporter "
                              f"supports symmetric EP networks only")


def layouts(net: EPNetwork, feedback: str) -> tuple[Layout, list[Layout]]:
    """(input layout, one layout per layer). Dense-only networks are flat; otherwise the input is
    the native image and layers are grids, at the space-to-depth factors of the module docstring
    with ``feedback="full"`` and at factor 1 (native, strided convolutions) with ``"none"``."""
    if not any(isinstance(layer, ConvPool) for layer in net.layers):
        return Layout((math.prod(net.input_shape),)), [Layout(layer.out_shape) for layer in net.layers]
    factors = [1] * len(net.layers)
    if feedback == "full":
        for n in range(len(net.layers) - 2, -1, -1):
            up = net.layers[n + 1]
            factors[n] = (2 if up.pool == "avg" else 1) * factors[n + 1] if isinstance(up, ConvPool) else 1
    return Layout(tuple(net.input_shape), 1), [Layout(layer.out_shape, f) for layer, f in zip(net.layers, factors)]


def native_conv(layer, lin: Layout) -> NativeConv:
    """The layer's forward drive as one native strided convolution (grid layouts only)."""
    if isinstance(layer, ConvPool):
        if layer.pool == "avg":
            return NativeConv(layer._avg_kernel(layer.weight.detach()), layer.bias.detach(), 2, layer.padding)
        return NativeConv(layer.weight.detach(), layer.bias.detach(), 1, layer.padding)
    # a dense layer on a grid: a convolution whose kernel covers the whole input, output 1×1
    c, h, w = lin.native if len(lin.native) == 3 else (lin.native[0], 1, 1)
    return NativeConv(layer.weight.detach().view(-1, c, h, w), layer.bias.detach(), 1, 0)


def is_dense_flat(layer, lin: Layout) -> bool:
    return isinstance(layer, Dense) and lin.factor is None
