"""The public loader: find the files, else the embedded sample or a download, else a precise error."""

from __future__ import annotations

import importlib.resources
import io
import os
from pathlib import Path

import numpy as np
import torch

from .cifar import _CIFAR_META, _CIFAR_TEST_BATCH, _CIFAR_TRAIN_BATCHES, _cifar_candidates, _locate_and_load_cifar
from .dataset import _SPECS, Dataset, _Arrays, _canonical_name, _Spec
from .idx import _IDX_FILES, _idx_search_dirs, _load_idx, _locate_idx
from .paths import _CONFIG_KEY, DATA_ENV_VAR, DataError, resolve_data_dir

# --------------------------------------------------------------------------- #
# Embedded MNIST sample, download fallback, error message
# --------------------------------------------------------------------------- #

_SAMPLE_NAME = "mnist_sample.npz"


def _load_embedded_mnist() -> tuple[_Arrays, str]:
    try:
        ref = importlib.resources.files("spiking_ep") / "assets" / _SAMPLE_NAME
    except Exception:
        # importlib.resources rejects some namespace-package setups (a package
        # without __init__.py next to an editable-install path hook); the file
        # is then a plain file in the package folder above this one.
        ref = Path(__file__).resolve().parents[1] / "assets" / _SAMPLE_NAME
    try:
        blob = ref.read_bytes()
    except OSError as e:
        raise DataError(
            f"the embedded MNIST sample ({_SAMPLE_NAME}) is missing from the installed package ({e}); "
            "reinstall spiking-ep or rebuild it with scripts/make_mnist_sample.py"
        ) from e
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {
            "train_x": z["train_x"][:, None],  # stored N×28×28
            "train_y": z["train_y"].astype(np.int64),  # stored uint8 to save space
            "test_x": z["test_x"][:, None],
            "test_y": z["test_y"].astype(np.int64),
        }
    n_tr, n_te = len(arrays["train_y"]), len(arrays["test_y"])
    return arrays, f"embedded MNIST sample ({n_tr} train / {n_te} test digits) shipped with spiking-ep"


def _try_torchvision_download(spec: _Spec, root: Path) -> str | None:
    """Download with torchvision if it is installed. None on success, else why not."""
    try:
        import torchvision.datasets as tvd
    except Exception:  # ImportError, or a broken install
        return "torchvision is not installed, so no automatic download was attempted"
    try:
        # One call fetches both splits; MNIST-like sets land in <root>/<Class>/raw,
        # CIFAR-10 in <root>/cifar-10-batches-py, both layouts searched above.
        getattr(tvd, spec.torchvision_class)(root=str(root), train=True, download=True)
    except Exception as e:  # no network, disk full, checksum mismatch, ...
        return f"automatic download with torchvision.datasets.{spec.torchvision_class} failed: {type(e).__name__}: {e}"
    return None


def _missing_message(spec: _Spec, root: Path, notes: list[str], download_note: str) -> str:
    lines = [f"{spec.title} data not found (data directory: {root})."]
    if spec.name == "cifar10":
        pickles, trees, zips = _cifar_candidates(root)
        batch_files = ", ".join((*_CIFAR_TRAIN_BATCHES, _CIFAR_TEST_BATCH))
        lines += ["Searched, in this order:", "  official python batches (cifar-10-batches-py layout):"]
        lines += [f"    {p}" for p in pickles]
        lines += [f"    expected files: {batch_files} (+ optional {_CIFAR_META})"]
        lines += ["  image-tree folders:"] + [f"    {p}" for p in trees]
        lines += [f"    {root / 'cifar10'}/<any sub-folder>",
                  "    expected: train/<class>/<image> and test/<class>/<image>, 32×32 RGB, "
                  "10 class folders (sorted names = labels 0..9)"]
        lines += ["  zip of such an image tree (optionally inside one top-level folder):"]
        lines += [f"    {p}" for p in zips]
        lines += [f"    {root}/*cifar*.zip, {root / 'cifar10'}/*.zip (e.g. cifar10-jpeg.zip)"]
    else:
        names = ", ".join(_IDX_FILES.values())
        lines += ["Searched these directories:"]
        lines += [f"  {d}" for d in _idx_search_dirs(spec, root)]
        lines += [
            f"Expected in one of them the four IDX files {names}",
            "(each may be gzipped with a .gz suffix, e.g. train-images-idx3-ubyte.gz).",
            f"Layouts: <data>/, {', '.join(f'<data>/{s}/' for s in spec.subdirs)}, "
            f"<data>/{spec.torchvision_class}/raw/ (torchvision).",
        ]
    lines += notes
    lines.append(download_note + ".")
    lines.append(
        f"Put the files in one of these places, or point to your copy with the {DATA_ENV_VAR} "
        f"environment variable or the config key {_CONFIG_KEY}."
    )
    if spec.name == "mnist":
        lines.append(
            "For an offline demo, allow_embedded=True uses the small MNIST sample shipped with the package."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# Public loader
# --------------------------------------------------------------------------- #


def _find_and_load(spec: _Spec, root: Path) -> tuple[tuple[_Arrays, str] | None, list[str]]:
    if spec.name == "cifar10":
        return _locate_and_load_cifar(root), []
    files, notes = _locate_idx(spec, root)
    if files is None:
        return None, notes
    listing = ", ".join(p.name for p in files.values())
    return (_load_idx(spec, files), f"{spec.title} IDX files in {files['train_x'].parent}: {listing}"), notes


def _take(a: np.ndarray, n: int | None) -> np.ndarray:
    # Copy a strict prefix so the full array can be freed.
    return a if n is None or n >= len(a) else a[:n].copy()


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    allow_embedded: bool = False,
    train_subset: int | None = None,
    test_subset: int | None = None,
) -> Dataset:
    """Load a dataset's two splits as ``uint8`` pixels and ``int64`` labels.

    Args:
        name: "mnist", "fashion_mnist" or "cifar10" (case and "-"/"_" are ignored).
        data_dir: where to look; see :func:`resolve_data_dir` for the default.
        allow_embedded: for "mnist" only: when no files are found, use the
            small sample shipped in the package (6000 train / 1000 test digits)
            instead of trying a download. ``Dataset.source`` then says so.
        train_subset, test_subset: keep only the first N examples of the split
            (deterministic; N larger than the split keeps it all).

    Where files are looked for:
        (Fashion-)MNIST: the four IDX files (``train-images-idx3-ubyte`` ...,
        optionally ``.gz``) in ``data_dir``, ``data_dir/mnist`` (resp.
        ``fashion-mnist`` / ``fashion_mnist``), ``data_dir/MNIST/raw`` (resp.
        ``FashionMNIST/raw``; torchvision's layout) and, for Fashion-MNIST,
        Debian's ``/usr/share/datasets/fashion-mnist``.
        CIFAR-10, by priority: the official ``cifar-10-batches-py`` folder (in
        ``data_dir`` or ``data_dir/cifar10``); an image-tree folder with
        ``train/<class>/*`` and ``test/<class>/*`` (``data_dir``,
        ``data_dir/cifar10`` or one of its sub-folders); a zip of such a tree
        (``data_dir/*cifar*.zip``, ``data_dir/cifar10/*.zip``). Image trees are
        decoded once and cached as ``.npz`` under :func:`resolve_cache_dir`;
        their examples are ordered round-robin over the classes so that
        subsets are class-balanced (the official batches keep their order).

    If nothing is found, a download through torchvision is tried when it is
    installed; otherwise (or if that fails) :class:`DataError` lists the paths
    searched and the expected file names. Corrupt files always raise
    :class:`DataError` naming the file, also with ``allow_embedded``.
    """
    spec = _SPECS[_canonical_name(name)]
    for label, n in (("train_subset", train_subset), ("test_subset", test_subset)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
            raise ValueError(f"{label} must be a positive int or None, got {n!r}")
    root = resolve_data_dir(data_dir)

    loaded, notes = _find_and_load(spec, root)
    if loaded is None:
        if allow_embedded and spec.name == "mnist":
            # Offline-demo path: no download attempt, the sample is the point.
            arrays, source = _load_embedded_mnist()
            loaded = (arrays, source + "".join(f" (note: {n})" for n in notes))
        else:
            download_note = _try_torchvision_download(spec, root)
            if download_note is None:
                loaded, notes = _find_and_load(spec, root)
                download_note = "torchvision reported a successful download, but the files are still not found"
            if loaded is None:
                raise DataError(_missing_message(spec, root, notes, download_note))
    arrays, source = loaded

    classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else spec.classes
    tx, ty = _take(arrays["train_x"], train_subset), _take(arrays["train_y"], train_subset)
    vx, vy = _take(arrays["test_x"], test_subset), _take(arrays["test_y"], test_subset)
    if train_subset is not None or test_subset is not None:
        source += f"; using the first {len(ty)} train / {len(vy)} test examples"
    return Dataset(
        name=spec.name,
        train_x=torch.from_numpy(np.ascontiguousarray(tx)),
        train_y=torch.from_numpy(ty),
        test_x=torch.from_numpy(np.ascontiguousarray(vx)),
        test_y=torch.from_numpy(vy),
        classes=classes,
        mean=spec.mean,
        std=spec.std,
        source=source,
    )
