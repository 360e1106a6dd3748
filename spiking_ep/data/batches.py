"""Normalisation and one epoch of (optionally augmented) mini-batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from .augmentation import _apply_augment, _draw_augment_params, check_pad_mode

def normalize(
    x_uint8: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel.

    Args:
        x_uint8: ``uint8`` tensor ``N×C×H×W`` (or ``C×H×W``), any device.
        mean, std: ``C`` per-channel values on the [0, 1] pixel scale. The
            paper's CIFAR-10 setup divides by 3× the usual std: pass
            ``std=[3 * s for s in ds.std]``.
        dtype: floating dtype of the result.

    Returns:
        Tensor of ``dtype``, same shape and device as ``x_uint8``.
    """
    if x_uint8.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 pixels, got {x_uint8.dtype}")
    c = x_uint8.shape[-3]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"{c} channels but {len(mean)} means and {len(std)} stds")
    m = torch.tensor(mean, dtype=torch.float64)
    s = torch.tensor(std, dtype=torch.float64)
    # One fused multiply-add: x * 1/(255 s) - m/s, constants computed in float64.
    scale = (1.0 / (255.0 * s)).to(dtype=dtype, device=x_uint8.device).view(c, 1, 1)
    shift = (m / s).to(dtype=dtype, device=x_uint8.device).view(c, 1, 1)
    return x_uint8.to(dtype) * scale - shift



def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Number of batches :func:`iterate_batches` yields for ``n`` examples."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(
    x_uint8: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    shuffle: bool,
    generator: torch.Generator | None,
    crop_padding: int = 0,
    hflip: bool = False,
    crop_pad_mode: str = "zeros",
    drop_last: bool = False,
    start_batch: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of normalised (and optionally augmented) mini-batches.

    Args:
        x_uint8: ``uint8`` pixels ``N×C×H×W`` (CPU or already on ``device``).
        y: labels, shape ``N``.
        batch_size: examples per batch; the last batch may be smaller unless
            ``drop_last``.
        mean, std: per-channel constants for :func:`normalize` (for the
            paper's CIFAR-10 setup pass ``std`` scaled by 3).
        shuffle: visit the examples in a random permutation.
        generator: required when shuffling or augmenting. The permutation is
            drawn from it immediately, once per call (not lazily at the first
            ``next``); augmentation parameters are drawn batch by batch.
        crop_padding, hflip, crop_pad_mode: see :func:`augment`; applied to
            the ``uint8`` batch, so zero padding is black (pixel 0) before
            normalisation.
        drop_last: drop a final incomplete batch.
        start_batch: skip the first ``start_batch`` batches of the epoch, to
            resume mid-epoch. Restore the generator to its state from before
            the epoch's call first: the permutation is then the same, and the
            augmentation draws of skipped batches are consumed (not applied),
            so the remaining batches are identical to an uninterrupted epoch.
        dtype: float dtype of the yielded images.
        device: where the batches go; default ``x_uint8.device``.

    Yields:
        ``(x, y)`` with ``x`` of ``dtype``, shape ``B×C×H×W``, and ``y``
        ``int64`` of shape ``B``, both on ``device``.
    """
    if x_uint8.dtype != torch.uint8 or x_uint8.ndim != 4:
        raise TypeError(f"x_uint8 must be a uint8 N×C×H×W tensor, got {x_uint8.dtype} {tuple(x_uint8.shape)}")
    n = x_uint8.shape[0]
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {tuple(y.shape)}")
    total = num_batches(n, batch_size, drop_last)
    if not 0 <= start_batch <= total:
        raise ValueError(f"start_batch must be in 0..{total}, got {start_batch}")
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
    check_pad_mode(crop_pad_mode)
    augmenting = crop_padding > 0 or hflip
    if (shuffle or augmenting) and generator is None:
        raise ValueError("shuffling or augmenting needs a torch.Generator (pass generator=...)")
    device = torch.device(device) if device is not None else x_uint8.device
    # Drawn here, eagerly, so "the generator state before this call" is well defined.
    order = torch.randperm(n, generator=generator, device=generator.device) if shuffle else None

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b in range(total):
            lo, hi = b * batch_size, min((b + 1) * batch_size, n)
            params = _draw_augment_params(hi - lo, generator, crop_padding, hflip) if augmenting else None
            if b < start_batch:
                continue
            if order is None:
                xb, yb = x_uint8[lo:hi], y[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = x_uint8[idx.to(x_uint8.device)], y[idx.to(y.device)]
            # Move uint8 (4× fewer bytes than float), then augment and convert there.
            xb = xb.to(device)
            if params is not None:
                xb = _apply_augment(xb, *params, crop_padding, crop_pad_mode)
            yield normalize(xb, mean, std, dtype=dtype), yb.to(device=device, dtype=torch.int64)

    return batches()
