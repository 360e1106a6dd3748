"""MNIST / Fashion-MNIST: IDX files (plain or gzipped), located and checked."""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from pathlib import Path

import numpy as np

from .dataset import _Arrays, _Spec
from .paths import DataError

# Same four names for both datasets; each may also carry a ".gz" suffix.
_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08
# md5 of the uncompressed canonical MNIST training images: Fashion-MNIST ships
# under identical file names, so this catches "data dir points at MNIST" when
# Fashion-MNIST was asked for (it would otherwise load silently).
_MNIST_TRAIN_IMAGES_MD5 = "6bbc9ace898e44ae57da46a324031adb"
# Debian's dataset-fashion-mnist package installs here; searched last.
_SYSTEM_IDX_DIRS = {"fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),)}


def _read_maybe_gzip(path: Path) -> bytes:
    """File contents, gunzipped when the file is gzip data (named .gz or not)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    looks_gzip = raw[:2] == b"\x1f\x8b"
    if path.suffix == ".gz" and not looks_gzip:
        raise DataError(
            f"{path} is named .gz but is not gzip data (starts with bytes {raw[:4].hex()}); "
            "the file is corrupt or mislabeled: download it again"
        )
    if not looks_gzip:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:  # truncated stream / bad CRC / bad deflate data
        raise DataError(f"{path}: corrupt or truncated gzip data ({e}); download it again") from e


def _parse_idx(data: bytes, path: Path, ndim: int) -> np.ndarray:
    """Decode an IDX unsigned-byte array with ``ndim`` dimensions.

    Layout: magic ``00 00 08 <ndim>``, then ``ndim`` big-endian uint32 sizes,
    then the row-major bytes. Returns a writable ``uint8`` array.
    """
    magic = 0x00000800 | ndim
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, shorter than the 4-byte magic number)")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise DataError(
            f"{path}: bad magic number 0x{got:08x}, expected 0x{magic:08x} "
            f"(IDX unsigned-byte array with {ndim} dimension(s)); is this the right file?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    have = len(data) - header
    if have != expected:
        what = "truncated" if have < expected else "has unexpected trailing bytes"
        raise DataError(
            f"{path}: {what}: the header declares shape {dims} = {expected} bytes of data "
            f"but the (decompressed) file holds {have}; download it again"
        )
    # copy(): frombuffer views immutable bytes, torch wants writable memory.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _idx_search_dirs(spec: _Spec, root: Path) -> list[Path]:
    return (
        [root]
        + [root / sub for sub in spec.subdirs]
        + [root / spec.torchvision_class / "raw"]  # torchvision's layout
        + list(_SYSTEM_IDX_DIRS.get(spec.name, ()))
    )


def _find_idx_files(directory: Path) -> dict[str, Path | None]:
    found: dict[str, Path | None] = {}
    for key, stem in _IDX_FILES.items():
        # Prefer the uncompressed file when both exist: no gunzip needed.
        found[key] = next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()), None)
    return found


def _locate_idx(spec: _Spec, root: Path) -> tuple[dict[str, Path] | None, list[str]]:
    """First directory holding all four files, plus notes on incomplete ones."""
    notes = []
    for d in _idx_search_dirs(spec, root):
        if not d.is_dir():
            continue
        found = _find_idx_files(d)
        present = [k for k, p in found.items() if p is not None]
        if len(present) == len(found):
            return {k: p for k, p in found.items() if p is not None}, notes
        if present:
            missing = [_IDX_FILES[k] for k, p in found.items() if p is None]
            notes.append(f"{d} is incomplete: missing {', '.join(missing)} (or .gz)")
    return None, notes


def _load_idx(spec: _Spec, files: dict[str, Path]) -> _Arrays:
    raw_train_x = _read_maybe_gzip(files["train_x"])
    if spec.name == "fashion_mnist" and hashlib.md5(raw_train_x).hexdigest() == _MNIST_TRAIN_IMAGES_MD5:
        raise DataError(
            f"{files['train_x']} is the MNIST digits file, but Fashion-MNIST was requested "
            "(both use the same file names); point the data directory at the Fashion-MNIST copy"
        )
    out: _Arrays = {}
    for split in ("train", "test"):
        xp, yp = files[f"{split}_x"], files[f"{split}_y"]
        x = _parse_idx(raw_train_x if split == "train" else _read_maybe_gzip(xp), xp, 3)
        y = _parse_idx(_read_maybe_gzip(yp), yp, 1)
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{xp} holds {x.shape[0]} images but {yp} holds {y.shape[0]} labels")
        if x.shape[0] == 0:
            raise DataError(f"{xp} holds no images")
        if y.size and int(y.max()) >= len(spec.classes):
            raise DataError(f"{yp}: label {int(y.max())} out of range 0..{len(spec.classes) - 1}")
        out[f"{split}_x"] = x[:, None]  # N×H×W -> N×1×H×W
        out[f"{split}_y"] = y.astype(np.int64)
    return out
