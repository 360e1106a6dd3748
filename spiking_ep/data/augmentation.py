"""Random crop with padding and random horizontal flip on batched tensors, seeded."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# How the border uncovered by a shifted crop is filled: "zeros" (black before normalisation,
# torchvision's padding_mode="constant") or "edge" (the image's edge pixels repeated,
# padding_mode="edge", as in Laborieux et al.'s CIFAR-10 code).
PAD_MODES = ("zeros", "edge")


def _draw_augment_params(
    n: int, generator: torch.Generator, crop_padding: int, hflip: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    # Fixed draw order (crop offsets, then flips) so that a run is reproducible
    # and a resumed epoch can consume exactly the draws of skipped batches.
    dev = generator.device
    offsets = (
        torch.randint(0, 2 * crop_padding + 1, (2, n), generator=generator, device=dev)
        if crop_padding > 0 else None
    )
    flips = torch.rand(n, generator=generator, device=dev) < 0.5 if hflip else None
    return offsets, flips


def _apply_augment(
    x: torch.Tensor, offsets: torch.Tensor | None, flips: torch.Tensor | None, crop_padding: int,
    pad_mode: str = "zeros",
) -> torch.Tensor:
    if offsets is None and flips is None:
        return x
    n, c, h, w = x.shape
    dev = x.device
    rows = torch.arange(h, device=dev).expand(n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    if flips is not None:
        # Flipping the crop window = reading its columns right to left.
        cols = torch.where(flips.to(dev)[:, None], (w - 1) - cols, cols)
    if offsets is not None:
        off = offsets.to(dev)
        rows = rows + off[0][:, None]
        cols = cols + off[1][:, None]
        if pad_mode == "edge":
            # row r of the replicate-padded image is row clamp(r − p, 0, H−1) of the image: read
            # it there instead of padding (no copy; F.pad's replicate mode has no uint8 kernel)
            rows = (rows - crop_padding).clamp(0, h - 1)
            cols = (cols - crop_padding).clamp(0, w - 1)
        else:
            x = F.pad(x, (crop_padding,) * 4)  # zeros
    # One gather for all images: out[i, c, r, q] = x[i, c, rows[i, r], cols[i, q]].
    return x[
        torch.arange(n, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    crop_padding: int = 0,
    hflip: bool = False,
    crop_pad_mode: str = "zeros",
) -> torch.Tensor:
    """Random crop with padding and random horizontal flip, per image.

    Each image is padded by ``crop_padding`` pixels on every side and an
    ``H×W`` window at a random offset (uniform in ``0..2*crop_padding`` along
    each axis) is kept, i.e. the image is shifted by up to ``crop_padding``
    pixels; the uncovered border is filled with zeros (``crop_pad_mode="zeros"``)
    or with the nearest edge pixel (``"edge"``: out[r, q] = x[clamp(r + o_r − p),
    clamp(q + o_c − p)]). With ``hflip`` each image is then mirrored left-right
    with probability 1/2. Vectorised: no loop over images.

    Args:
        x: ``N×C×H×W`` batch of any dtype (float, or uint8 before
            normalisation, where the padding then is black as in torchvision's
            ``RandomCrop`` + ``Normalize``), on any device.
        generator: source of randomness; numbers are drawn on its device
            (normally CPU) and moved to ``x.device``. Draw order: crop offsets
            ``(2, N)`` first, then flip bits ``(N,)``; nothing is drawn when
            both augmentations are off.
        crop_padding: padding / maximal shift in pixels (0 = no crop).
        hflip: whether to flip randomly.
        crop_pad_mode: "zeros" or "edge" (see :data:`PAD_MODES`); the random
            draws do not depend on it.

    Returns:
        Tensor with the shape, dtype and device of ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"augment expects N×C×H×W, got shape {tuple(x.shape)}")
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
    check_pad_mode(crop_pad_mode)
    params = _draw_augment_params(x.shape[0], generator, crop_padding, hflip)
    return _apply_augment(x, *params, crop_padding, crop_pad_mode)


def check_pad_mode(mode: str) -> None:
    """ValueError unless ``mode`` is one of :data:`PAD_MODES`."""
    if mode not in PAD_MODES:
        raise ValueError(f"crop_pad_mode must be one of {', '.join(PAD_MODES)}, got {mode!r}")
