"""Shared layer definitions of a layered EP network (rate reference and spiking model alike).

Layer n connects state s_{n-1} (shape ``(N, *in_shape)``) to state s_n (``(N, *out_shape)``)
and contributes one term to the primitive function

    Φ_n(s_{n-1}, s_n) = s_n • P(W_n ⋆ s_{n-1} + b_n)        (conv + 2×2 pooling P)
    Φ_n(s_{n-1}, s_n) = s_n · (W_n s_{n-1} + b_n)            (dense)

Each layer gives the two partial derivatives of its term, computed explicitly:

    forward_drive(s_{n-1})        = ∂Φ_n/∂s_n     = P(W_n ⋆ s_{n-1} + b_n)
    feedback_drive(s_n, s_{n-1})  = ∂Φ_n/∂s_{n-1} = W̃_n ⋆ P⁻¹(s_n)

W̃ is the transposed (flipped-kernel) convolution, P⁻¹ the unpooling: max-unpooling at the
argmax of the forward pooling, or nearest upsampling divided by 4 for average pooling.

Unidirectional ("vector field") layers own a second weight ``B`` (same shape as ``weight``,
no bias) used on the feedback path instead of ``weight``; with max pooling the feedback path
unpools at the argmax of ``B ⋆ s_{n-1}``.  Then the feedback drive is no longer ∂Φ/∂s_{n-1}.

Layers know nothing of neurons: the rate model applies σ to the summed drives, the spiking
model integrates them as currents.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POOLS = ("max", "avg", "none")


def _init_uniform(t: Tensor, fan_in: int, scale: float) -> None:
    # Same bound as torch's default nn.Linear / nn.Conv2d init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = scale / math.sqrt(fan_in)
    with torch.no_grad():
        t.uniform_(-bound, bound)


class Dense(nn.Module):
    """Dense layer: ``s_{n-1}`` of shape ``(N, *in_shape)`` (flattened) → ``s_n`` of shape ``(N, features)``."""

    def __init__(self, in_shape: tuple[int, ...], features: int, *, unidirectional: bool = False,
                 init_scale: float = 1.0):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.out_shape = (int(features),)
        fan_in = math.prod(self.in_shape)
        self.weight = nn.Parameter(torch.empty(features, fan_in))
        self.bias = nn.Parameter(torch.empty(features))
        _init_uniform(self.weight, fan_in, init_scale)
        _init_uniform(self.bias, fan_in, init_scale)
        self.B = None
        if unidirectional:
            self.B = nn.Parameter(torch.empty(features, fan_in))
            _init_uniform(self.B, fan_in, init_scale)

    def drive_with(self, s_prev: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """weight · s_{n-1} + bias, shape ``(N, features)``."""
        return F.linear(s_prev.flatten(1), weight, bias)

    def forward_drive(self, s_prev: Tensor) -> Tensor:
        """W s_{n-1} + b, shape ``(N, features)``."""
        return self.drive_with(s_prev, self.weight, self.bias)

    def feedback_drive(self, s: Tensor, s_prev: Tensor | None = None) -> Tensor:
        """Wᵀ s_n (Bᵀ s_n if unidirectional), shape ``(N, *in_shape)``. ``s_prev`` is unused."""
        w = self.weight if self.B is None else self.B
        return (s @ w).view(s.shape[0], *self.in_shape)

    def drives(self, s_prev: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """(forward_drive(s_prev), feedback_drive(s, s_prev))."""
        return self.forward_drive(s_prev), self.feedback_drive(s)

    def forward_and_indices(self, s_prev: Tensor) -> tuple[Tensor, None]:
        """(forward_drive(s_prev), None): a dense layer has no pooling indices."""
        return self.forward_drive(s_prev), None

    def feedback_given(self, s: Tensor, s_prev: Tensor | None, idx: None) -> Tensor:
        """feedback_drive(s)."""
        return self.feedback_drive(s)

    def phi(self, s_prev: Tensor, s: Tensor) -> Tensor:
        """Φ_n per sample, shape ``(N,)``."""
        return (s * self.forward_drive(s_prev)).sum(1)

    def weight_corr(self, pre: Tensor, post: Tensor) -> Tensor:
        """∂/∂W Σ_batch post · (W pre) = postᵀ pre, shape of W: the correlation ∂Φ_n/∂W computes."""
        return post.flatten(1).t() @ pre.flatten(1)

    def extra_repr(self) -> str:
        return f"{math.prod(self.in_shape)} → {self.out_shape[0]}" + (", unidirectional" if self.B is not None else "")


class ConvPool(nn.Module):
    """Convolution (stride 1) followed by 2×2 pooling (``pool`` in max / avg / none).

    ``s_{n-1}``: ``(N, C_in, H, W)``; ``s_n``: ``(N, C_out, H_c/2, W_c/2)`` with
    ``H_c = H + 2·padding − kernel + 1`` (``H_c`` must be even when pooling).
    """

    def __init__(self, in_shape: tuple[int, ...], channels: int, *, kernel: int = 3, padding: int = 1,
                 pool: str = "max", unidirectional: bool = False, init_scale: float = 1.0):
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"a conv layer needs a (C, H, W) input, got shape {tuple(in_shape)}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        c_in, h, w = in_shape
        hc, wc = h + 2 * padding - kernel + 1, w + 2 * padding - kernel + 1
        if hc < 1 or wc < 1:
            raise ValueError(
                f"kernel {kernel} with padding {padding} is larger than its {h}×{w} input "
                f"(valid: kernel ≤ {min(h, w) + 2 * padding})")
        if pool != "none" and (hc % 2 or wc % 2):
            raise ValueError(
                f"2×2 {pool} pooling needs an even conv output, got {hc}×{wc} "
                f"(input {h}×{w}, kernel {kernel}, padding {padding}); change padding or kernel")
        self.in_shape = (c_in, h, w)
        self.conv_hw = (hc, wc)
        self.kernel, self.padding, self.pool = int(kernel), int(padding), pool
        self.out_shape = (int(channels), hc // 2, wc // 2) if pool != "none" else (int(channels), hc, wc)
        fan_in = c_in * kernel * kernel
        self.weight = nn.Parameter(torch.empty(channels, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(channels))
        _init_uniform(self.weight, fan_in, init_scale)
        _init_uniform(self.bias, fan_in, init_scale)
        self.B = None
        if unidirectional:
            self.B = nn.Parameter(torch.empty(channels, c_in, kernel, kernel))
            _init_uniform(self.B, fan_in, init_scale)

    def _pool(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.pool == "max":
            return F.max_pool2d(z, 2, return_indices=True)
        if self.pool == "avg":
            return F.avg_pool2d(z, 2), None
        return z, None

    def _unpool(self, s: Tensor, idx: Tensor | None) -> Tensor:
        if self.pool == "max":
            return F.max_unpool2d(s, idx, 2, output_size=self.conv_hw)
        if self.pool == "avg":
            # Adjoint of 2×2 averaging: every input position receives a quarter.
            return s.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) * 0.25
        return s

    @staticmethod
    def _avg_kernel(w: Tensor) -> Tensor:
        """The (k+1)×(k+1) kernel w̄ with avg2×2(w ⋆ s) = w̄ ⋆ s at stride 2: w̄ = ¼ Σ_{a,b∈{0,1}} shift_{a,b}(w).

        One strided convolution instead of a convolution, then pooling (or unpooling, then a
        transposed convolution): 16 instead of 4·9 multiply-adds per pooled output for k = 3,
        and no pooling pass over the 4× larger conv output. Equal up to float rounding.
        """
        return 0.25 * (F.pad(w, (0, 1, 0, 1)) + F.pad(w, (1, 0, 0, 1))
                       + F.pad(w, (0, 1, 1, 0)) + F.pad(w, (1, 0, 1, 0)))

    def _strided_kernel(self, w: Tensor) -> Tensor:
        """:meth:`_avg_kernel` of ``w``, computed once per weight update when no graph is needed.

        Without autograd (EP phases, spiking steps, inference) the kernel is cached until the
        weight changes (its version counter moves with every in-place update: optimizer steps,
        ``load_state_dict``), and stored channels-last, the layout oneDNN convolutions use.
        """
        if torch.is_grad_enabled() and w.requires_grad:
            return self._avg_kernel(w)
        key = (w.data_ptr(), w._version, w.dtype, w.device, tuple(w.shape))
        cache = self.__dict__.get("_kernel_cache", {})
        if cache.get(id(w), (None,))[0] != key:
            k = self._avg_kernel(w.detach()).contiguous(memory_format=torch.channels_last)
            cache[id(w)] = (key, k)
            self.__dict__["_kernel_cache"] = cache
        return cache[id(w)][1]

    def drive_with(self, s_prev: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """P(weight ⋆ s_{n-1} + bias), shape ``(N, *out_shape)``."""
        if self.pool == "avg":
            return F.conv2d(s_prev, self._strided_kernel(weight), bias, stride=2, padding=self.padding)
        return self._pool(F.conv2d(s_prev, weight, bias, padding=self.padding))[0]

    def forward_drive(self, s_prev: Tensor) -> Tensor:
        """P(W ⋆ s_{n-1} + b), shape ``(N, *out_shape)``."""
        return self.drive_with(s_prev, self.weight, self.bias)

    def _transpose(self, u: Tensor, w: Tensor) -> Tensor:
        return F.conv_transpose2d(u, w, padding=self.padding)

    def _feedback(self, s: Tensor, w: Tensor, idx: Tensor | None) -> Tensor:
        """(P ∘ w⋆)ᵀ s_n: unpool then transpose-convolve (avg: one strided transposed convolution)."""
        if self.pool == "avg":
            return F.conv_transpose2d(s, self._strided_kernel(w), stride=2, padding=self.padding)
        return self._transpose(self._unpool(s, idx), w)

    def feedback_drive(self, s: Tensor, s_prev: Tensor | None = None) -> Tensor:
        """W̃ ⋆ P⁻¹(s_n), shape ``(N, *in_shape)``. Max pooling needs ``s_prev`` for the argmax."""
        if self.B is None:
            return self.drives(s_prev, s)[1] if self.pool == "max" else self._feedback(s, self.weight, None)
        idx = None
        if self.pool == "max":
            idx = self._pool(F.conv2d(s_prev, self.B, None, padding=self.padding))[1]
        return self._feedback(s, self.B, idx)

    @property
    def feedback_needs_indices(self) -> bool:
        """True when the feedback drive unpools at the argmax of this layer's own forward pooling."""
        return self.B is None and self.pool == "max"

    def forward_and_indices(self, s_prev: Tensor) -> tuple[Tensor, Tensor | None]:
        """(forward_drive(s_prev), the argmax indices of its max pooling or None), from one convolution."""
        if self.pool == "max":
            return self._pool(F.conv2d(s_prev, self.weight, self.bias, padding=self.padding))
        return self.forward_drive(s_prev), None

    def feedback_given(self, s: Tensor, s_prev: Tensor | None, idx: Tensor | None) -> Tensor:
        """feedback_drive(s, s_prev), reusing ``idx`` (from :meth:`forward_and_indices` at ``s_prev``) when
        the feedback unpools at this layer's own argmax, so the convolution is not computed twice."""
        if idx is not None and self.feedback_needs_indices:
            return self._feedback(s, self.weight, idx)
        return self.feedback_drive(s, s_prev)

    def drives(self, s_prev: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """(forward_drive(s_prev), feedback_drive(s, s_prev)), sharing the convolution for the argmax."""
        if self.B is not None or self.pool != "max":
            return self.forward_drive(s_prev), self.feedback_drive(s, s_prev)
        pooled, idx = self._pool(F.conv2d(s_prev, self.weight, self.bias, padding=self.padding))
        return pooled, self._feedback(s, self.weight, idx)

    def phi(self, s_prev: Tensor, s: Tensor) -> Tensor:
        """Φ_n per sample, shape ``(N,)``."""
        return (s * self.forward_drive(s_prev)).flatten(1).sum(1)

    def weight_corr(self, pre: Tensor, post: Tensor) -> Tensor:
        """∂/∂W Σ_batch post • P(W ⋆ pre) (no bias), shape of W: the correlation ∂Φ_n/∂W computes.

        Average pooling: the weight gradient of the stride-2 (k+1)×(k+1) convolution, mapped back
        through the adjoint of w ↦ w̄ (:meth:`_avg_kernel`): ∂/∂w_ij = ¼ Σ_{a,b∈{0,1}} ∂/∂w̄_{i+a,j+b}.
        A quarter of the multiply-adds of unpooling, then a full-resolution weight gradient.
        """
        if self.pool == "avg":
            k = self.kernel
            g = torch.nn.grad.conv2d_weight(pre, (post.shape[1], pre.shape[1], k + 1, k + 1), post,
                                            stride=2, padding=self.padding)
            return 0.25 * (g[..., :k, :k] + g[..., 1:, :k] + g[..., :k, 1:] + g[..., 1:, 1:])
        if self.pool == "max":
            raise ValueError("weight_corr needs the argmax of a max-pooled layer; use autograd of Φ instead")
        return torch.nn.grad.conv2d_weight(pre, self.weight.shape, post, padding=self.padding)

    def extra_repr(self) -> str:
        c, h, w = self.in_shape
        return (f"{c}×{h}×{w} → {'×'.join(map(str, self.out_shape))}, kernel {self.kernel}, "
                f"padding {self.padding}, pool {self.pool}" + (", unidirectional" if self.B is not None else ""))
