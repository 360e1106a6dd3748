"""Datasets (MNIST, Fashion-MNIST, CIFAR-10), batching and augmentation.

Everything here is plain functions over tensors; the only state is the
``torch.Generator`` the caller passes in, so an experiment is reproducible from
its seed and resumable from a saved generator state.

Loading
    :func:`load_dataset` returns a :class:`Dataset` holding the raw ``uint8``
    pixels (``N×C×H×W``) and ``int64`` labels of both splits. Files are looked
    for in a data directory (:func:`resolve_data_dir`: explicit argument, then
    ``$SPIKING_EP_DATA``, then a per-user cache dir). Missing or damaged files
    raise :class:`DataError` with a message that says which file and what to do.

Batching
    :func:`iterate_batches` shuffles with the caller's generator, applies the
    optional random crop / horizontal flip (:func:`augment`) to the ``uint8``
    batch and converts it with :func:`normalize`, on the requested device.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import io
import math
import os
import pickle
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DATA_ENV_VAR",
    "CACHE_ENV_VAR",
    "DATASET_NAMES",
    "DataError",
    "Dataset",
    "resolve_data_dir",
    "resolve_cache_dir",
    "load_dataset",
    "normalize",
    "augment",
    "iterate_batches",
    "num_batches",
]

DATA_ENV_VAR = "SPIKING_EP_DATA"
CACHE_ENV_VAR = "SPIKING_EP_CACHE"
# How the config file spells the data directory; only used in error messages.
_CONFIG_KEY = "data.root"

DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10")


class DataError(ValueError):
    """A dataset is missing, incomplete or corrupt. The message names the file(s)."""


# --------------------------------------------------------------------------- #
# Directories
# --------------------------------------------------------------------------- #


def _user_cache_root() -> Path:
    # XDG says a relative $XDG_CACHE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "spiking-ep"


def _resolve_dir(explicit, env_var: str, sub: str) -> Path:
    if explicit is not None and os.fspath(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(env_var, "")
    if env:
        return Path(env).expanduser()
    return _user_cache_root() / sub


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Directory that holds (or will hold) the datasets.

    Precedence: ``explicit`` (e.g. the config's ``data.root``) if given and
    non-empty, else ``$SPIKING_EP_DATA``, else ``$XDG_CACHE_HOME/spiking-ep/data``
    (``~/.cache/spiking-ep/data`` when ``XDG_CACHE_HOME`` is unset). The
    directory is not created and need not exist.
    """
    return _resolve_dir(explicit, DATA_ENV_VAR, "data")


def resolve_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Directory for derived files (decoded CIFAR-10 image trees).

    Precedence: ``explicit``, else ``$SPIKING_EP_CACHE``, else
    ``$XDG_CACHE_HOME/spiking-ep/cache`` (``~/.cache/spiking-ep/cache``).
    """
    return _resolve_dir(explicit, CACHE_ENV_VAR, "cache")


# --------------------------------------------------------------------------- #
# Dataset record and per-dataset constants
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)  # eq=False: element-wise tensor "==" is not a bool
class Dataset:
    """Both splits of a dataset as raw pixels.

    Attributes:
        name: canonical name ("mnist", "fashion_mnist" or "cifar10").
        train_x, test_x: ``torch.uint8`` tensors of shape ``N×C×H×W``
            (``N×1×28×28`` for (Fashion-)MNIST, ``N×3×32×32`` for CIFAR-10).
        train_y, test_y: ``torch.int64`` tensors of shape ``N`` with labels
            ``0 .. len(classes)-1``.
        classes: class names, index = label.
        mean, std: per-channel statistics of the training pixels scaled to
            [0, 1] (the usual published constants), for :func:`normalize`.
        source: human-readable description of where the data came from.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise ValueError(f"{split}_x must be uint8 N×C×H×W, got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"{split}_y must be int64 of shape ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")
            if x.shape[1] != len(self.mean) or x.shape[1] != len(self.std):
                raise ValueError(f"{split}_x has {x.shape[1]} channels but mean/std have {len(self.mean)}/{len(self.std)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one example."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


@dataclass(frozen=True)
class _Spec:
    name: str
    title: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    subdirs: tuple[str, ...]  # conventional sub-folders of the data dir
    torchvision_class: str  # torchvision.datasets.<this>; also its folder name


_SPECS = {
    "mnist": _Spec(
        "mnist", "MNIST", tuple(str(i) for i in range(10)), (0.1307,), (0.3081,),
        ("mnist",), "MNIST",
    ),
    "fashion_mnist": _Spec(
        "fashion_mnist", "Fashion-MNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (0.2860,), (0.3530,),
        ("fashion-mnist", "fashion_mnist"), "FashionMNIST",
    ),
    "cifar10": _Spec(
        "cifar10", "CIFAR-10",
        ("airplane", "automobile", "bird", "cat", "deer",
         "dog", "frog", "horse", "ship", "truck"),
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
        ("cifar10",), "CIFAR10",
    ),
}

_ALIASES = {"fashionmnist": "fashion_mnist", "cifar_10": "cifar10"}


def _canonical_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _SPECS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    return key


# Arrays of one loaded dataset: train_x, train_y, test_x, test_y (numpy, uint8
# N×C×H×W and int64 N), plus the class names when the files carry them.
_Arrays = dict[str, np.ndarray]


# --------------------------------------------------------------------------- #
# MNIST / Fashion-MNIST: IDX files
# --------------------------------------------------------------------------- #

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


# --------------------------------------------------------------------------- #
# CIFAR-10: official pickle batches
# --------------------------------------------------------------------------- #

_CIFAR_BATCH_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_BATCH = "test_batch"
_CIFAR_META = "batches.meta"
_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can only build numpy arrays (plus builtins).

    The CIFAR batches are pickles; a pickle from an untrusted data dir could run
    arbitrary code, so only the globals that array pickles need are resolved.
    """

    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
        ("_codecs", "encode"),  # bytes inside protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} (only numpy arrays are allowed)")
        if module.startswith(("numpy.core.", "numpy._core.")):
            # numpy 2 moved numpy.core to numpy._core; old pickles name the former.
            module = f"{_NUMPY_CORE}.{module.split('.', 2)[2]}"
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the official batches were pickled by Python 2.
            obj = _ArrayOnlyUnpickler(f, encoding="bytes").load()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    except Exception as e:  # corrupt pickles raise almost anything
        raise DataError(f"{path}: corrupt or truncated pickle ({type(e).__name__}: {e}); download it again") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    # Keys are bytes in the official files, str if re-pickled by Python 3.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if "data" not in d or "labels" not in d:
        raise DataError(f"{path}: not a CIFAR-10 batch (keys {sorted(map(str, d))}, need 'data' and 'labels')")
    x = np.asarray(d["data"])
    y = np.asarray(d["labels"], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be uint8 N×3072, got {x.dtype} {x.shape}")
    if y.shape != (x.shape[0],):
        raise DataError(f"{path}: {x.shape[0]} images but {y.size} labels")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{path}: labels outside 0..9")
    # Rows are the R, G and B 32×32 planes one after another = C×H×W order.
    return x.reshape(-1, 3, 32, 32), y


def _load_cifar_pickles(folder: Path) -> _Arrays:
    missing = [n for n in (*_CIFAR_TRAIN_BATCHES, _CIFAR_TEST_BATCH) if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} is incomplete: missing {', '.join(missing)}")
    train = [_read_cifar_batch(folder / n) for n in _CIFAR_TRAIN_BATCHES]
    test_x, test_y = _read_cifar_batch(folder / _CIFAR_TEST_BATCH)
    out: _Arrays = {
        "train_x": np.concatenate([x for x, _ in train]),
        "train_y": np.concatenate([y for _, y in train]),
        "test_x": test_x,
        "test_y": test_y,
    }
    meta = folder / _CIFAR_META
    if meta.is_file():
        names = _unpickle(meta).get("label_names")
        if names is not None:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
            if len(names) != 10:
                raise DataError(f"{meta}: expected 10 label_names, got {len(names)}")
            out["classes"] = np.array(names)
    return out


# --------------------------------------------------------------------------- #
# CIFAR-10: image tree (folder or zip), decoded once and cached
# --------------------------------------------------------------------------- #

_CACHE_FORMAT = 1  # bump when the decoded layout/order changes: old caches are ignored
_SPLITS = ("train", "test")


def _image_extensions() -> frozenset[str]:
    from PIL import Image

    Image.init()  # registers every plugin, so this is "anything PIL can read"
    return frozenset(Image.registered_extensions())


def _skip_member(part: str) -> bool:
    # Hidden files (.DS_Store), macOS resource forks in zips.
    return part.startswith(".") or part == "__MACOSX"


@dataclass(frozen=True)
class _ImageTree:
    """An image tree, independent of whether it is a folder or a zip.

    ``members[split]`` lists ``(label, member)`` in load order; ``read(member)``
    returns the file's bytes; ``describe(member)`` names it for messages.
    """

    origin: Path
    kind: str  # "folder" or "zip"
    classes: tuple[str, ...]
    members: dict[str, list[tuple[int, str]]]
    fingerprint: str  # cache key material: changes whenever the source changes
    read: Callable[[str], bytes]
    describe: Callable[[str], str]


def _interleave(per_class: list[list[str]]) -> list[tuple[int, str]]:
    # Round-robin over classes (class 0 file 0, class 1 file 0, ...): the tree is
    # grouped by class, and this makes "first N" subsets class-balanced.
    out = []
    for i in range(max((len(m) for m in per_class), default=0)):
        out.extend((label, m[i]) for label, m in enumerate(per_class) if i < len(m))
    return out


def _build_members(origin: Path, files: dict[str, dict[str, list[str]]]) -> tuple[tuple[str, ...], dict]:
    """Check a {split: {class: [member]}} listing; return classes and ordered members."""
    classes = tuple(sorted(files["train"]))
    if tuple(sorted(files["test"])) != classes:
        raise DataError(
            f"{origin}: train/ and test/ have different class folders: "
            f"{sorted(files['train'])} vs {sorted(files['test'])}"
        )
    if len(classes) != 10:
        raise DataError(f"{origin}: expected 10 class folders under train/, found {len(classes)}: {list(classes)}")
    for split in _SPLITS:
        empty = [c for c in classes if not files[split][c]]
        if empty:
            raise DataError(f"{origin}: no images in {split}/{', '.join(empty)}")
    members = {s: _interleave([sorted(files[s][c]) for c in classes]) for s in _SPLITS}
    return classes, members


def _is_tree_folder(d: Path) -> bool:
    return (d / "train").is_dir() and (d / "test").is_dir()


def _open_tree_folder(root: Path) -> _ImageTree:
    exts = _image_extensions()
    files: dict[str, dict[str, list[str]]] = {}
    h = hashlib.sha256()
    for split in _SPLITS:
        files[split] = {}
        for cls in sorted(os.scandir(root / split), key=lambda e: e.name):
            if not cls.is_dir() or _skip_member(cls.name):
                continue
            entries = sorted(
                (f for f in os.scandir(cls.path)
                 if f.is_file() and not _skip_member(f.name) and os.path.splitext(f.name)[1].lower() in exts),
                key=lambda f: f.name,
            )
            names = [f"{split}/{cls.name}/{f.name}" for f in entries]
            for m, f in zip(names, entries):  # any added, removed or touched file changes the key
                st = f.stat()
                h.update(f"{m}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            files[split][cls.name] = names
    classes, members = _build_members(root, files)
    return _ImageTree(
        origin=root, kind="folder", classes=classes, members=members,
        fingerprint=f"folder\0{root.resolve()}\0{h.hexdigest()}",
        read=lambda m: (root / m).read_bytes(),
        describe=lambda m: str(root / m),
    )


def _zip_prefix(names: list[str]) -> str | None:
    """'' or 'top/' such that the zip has <prefix>train/ and <prefix>test/ entries."""
    tops: dict[str, set[str]] = {}
    for n in names:
        parts = n.split("/")
        if len(parts) >= 3 and parts[0] in _SPLITS:
            tops.setdefault("", set()).add(parts[0])
        if len(parts) >= 4 and parts[1] in _SPLITS:
            tops.setdefault(parts[0] + "/", set()).add(parts[1])
    complete = [p for p, s in tops.items() if s == set(_SPLITS)]
    return min(complete, key=len) if complete else None


def _zip_fingerprint(path: Path) -> str:
    st = path.stat()
    return f"zip\0{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"


def _open_tree_zip(path: Path, zf: zipfile.ZipFile) -> _ImageTree | None:
    """The image tree inside the open zip ``zf`` (read from ``path``), or None if it holds none."""
    names = [i.filename for i in zf.infolist() if not i.is_dir()]
    prefix = _zip_prefix(names)
    if prefix is None:
        return None
    exts = _image_extensions()
    files: dict[str, dict[str, list[str]]] = {s: {} for s in _SPLITS}
    for n in names:
        if not n.startswith(prefix):
            continue
        parts = n[len(prefix):].split("/")
        if len(parts) != 3 or parts[0] not in _SPLITS or any(_skip_member(p) for p in parts):
            continue
        split, cls, fname = parts
        if os.path.splitext(fname)[1].lower() in exts:
            files[split].setdefault(cls, []).append(n)
    for split in _SPLITS:  # a class folder seen in one split only must show up as empty
        for cls in set(files["train"]) | set(files["test"]):
            files[split].setdefault(cls, [])
    classes, members = _build_members(path, files)

    def read(m: str) -> bytes:
        try:
            return zf.read(m)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
            raise DataError(f"{path}:{m}: cannot read from zip ({e})") from e

    return _ImageTree(
        origin=path, kind="zip", classes=classes, members=members,
        fingerprint=_zip_fingerprint(path),
        read=read, describe=lambda m: f"{path}:{m}",
    )


def _decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode one 32×32 RGB image to a ``uint8`` H×W×C array."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.size != (32, 32):
                raise DataError(f"{name}: image is {img.size[0]}×{img.size[1]}, CIFAR-10 images must be 32×32")
            if img.mode != "RGB":
                raise DataError(f"{name}: image mode is {img.mode}, CIFAR-10 images must be RGB")
            return np.asarray(img)  # forces the actual decode
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as e:  # PIL's ways of saying "corrupt"
        raise DataError(f"{name}: cannot decode image ({type(e).__name__}: {e})") from e


def _decode_tree(tree: _ImageTree) -> _Arrays:
    from tqdm.auto import tqdm

    total = sum(len(m) for m in tree.members.values())
    out: _Arrays = {}
    with tqdm(total=total, desc=f"decoding CIFAR-10 {tree.kind} (once, then cached)", unit="img") as bar:
        for split in _SPLITS:
            members = tree.members[split]
            x = np.empty((len(members), 32, 32, 3), dtype=np.uint8)
            for i, (_, m) in enumerate(members):
                x[i] = _decode_image(tree.read(m), tree.describe(m))
                bar.update(1)
            out[f"{split}_x"] = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # N×H×W×C -> N×C×H×W
            out[f"{split}_y"] = np.array([label for label, _ in members], dtype=np.int64)
    out["classes"] = np.array(tree.classes)
    return out


def _cache_path(kind: str, fingerprint: str) -> Path:
    key = hashlib.sha256(f"cifar10\0v{_CACHE_FORMAT}\0{fingerprint}".encode()).hexdigest()[:24]
    return resolve_cache_dir() / f"cifar10-{kind}-{key}.npz"


def _read_cache(path: Path) -> _Arrays | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("train_x", "train_y", "test_x", "test_y", "classes")}
        for s in _SPLITS:
            x, y = arrays[f"{s}_x"], arrays[f"{s}_y"]
            if x.dtype != np.uint8 or x.shape[1:] != (3, 32, 32) or y.shape != (x.shape[0],):
                raise ValueError("unexpected array shapes")
    except Exception as e:  # a damaged cache is just a cache miss
        warnings.warn(f"ignoring unreadable cache file {path} ({e}); decoding again", stacklevel=3)
        return None
    arrays["train_y"] = arrays["train_y"].astype(np.int64)
    arrays["test_y"] = arrays["test_y"].astype(np.int64)
    return arrays


def _write_cache(path: Path, arrays: _Arrays) -> bool:
    """Write atomically (temp file + rename) so readers never see half a file."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # uncompressed: JPEG-ish pixels barely compress, loading stays fast
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; public pixels, a shared cache dir should work
        os.replace(tmp, path)
        return True
    except OSError as e:
        warnings.warn(f"could not write cache file {path} ({e}); images will be decoded again next time", stacklevel=3)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def _tree_source(kind: str, origin: Path, what: str) -> str:
    return f"CIFAR-10 image tree {'folder' if kind == 'folder' else 'in zip'} {origin} ({what})"


def _decode_and_cache(tree: _ImageTree, cache: Path) -> tuple[_Arrays, str]:
    arrays = _decode_tree(tree)
    what = f"decoded, pixels cached in {cache}" if _write_cache(cache, arrays) else "decoded, not cached"
    return arrays, _tree_source(tree.kind, tree.origin, what)


def _load_tree_folder(root: Path) -> tuple[_Arrays, str]:
    tree = _open_tree_folder(root)  # listing + stat of every file: the key needs it
    cache = _cache_path("folder", tree.fingerprint)
    arrays = _read_cache(cache)
    if arrays is not None:
        return arrays, _tree_source("folder", root, f"decoded pixels read from cache {cache}")
    return _decode_and_cache(tree, cache)


def _load_tree_zip(path: Path) -> tuple[_Arrays, str] | None:
    # The zip's own size + mtime is the key, so a cache hit needs no listing.
    cache = _cache_path("zip", _zip_fingerprint(path))
    arrays = _read_cache(cache)
    if arrays is not None:
        return arrays, _tree_source("zip", path, f"decoded pixels read from cache {cache}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip file ({e})") from e
    with zf:
        tree = _open_tree_zip(path, zf)
        return None if tree is None else _decode_and_cache(tree, cache)


def _cifar_candidates(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Candidate (pickle folders, tree folders, zips), in priority order."""
    sub = root / _SPECS["cifar10"].subdirs[0]
    pickles = [root / _CIFAR_BATCH_DIR, sub / _CIFAR_BATCH_DIR, root, sub]
    trees = [root, sub]
    if sub.is_dir():
        trees += sorted(p for p in sub.iterdir() if p.is_dir() and p.name != _CIFAR_BATCH_DIR)
    zips = []
    if root.is_dir():  # in the data dir itself, only zips that say they are CIFAR
        zips += sorted(p for p in root.glob("*.zip") if "cifar" in p.name.lower())
    if sub.is_dir():
        zips += sorted(sub.glob("*.zip"))
    return pickles, trees, zips


def _locate_and_load_cifar(root: Path) -> tuple[_Arrays, str] | None:
    pickles, trees, zips = _cifar_candidates(root)
    for d in pickles:
        # The bare data dir counts only if it plainly is a batches folder.
        if d.is_dir() and (d.name == _CIFAR_BATCH_DIR or (d / _CIFAR_TRAIN_BATCHES[0]).is_file()):
            return _load_cifar_pickles(d), f"CIFAR-10 python batches in {d}"
    for d in trees:
        if _is_tree_folder(d):
            return _load_tree_folder(d)
    for z in zips:
        loaded = _load_tree_zip(z)
        if loaded is not None:
            return loaded
    return None


# --------------------------------------------------------------------------- #
# Embedded MNIST sample, download fallback, error message
# --------------------------------------------------------------------------- #

_SAMPLE_NAME = "mnist_sample.npz"


def _load_embedded_mnist() -> tuple[_Arrays, str]:
    try:
        ref = importlib.resources.files(__package__ or "spiking_ep") / "assets" / _SAMPLE_NAME
    except Exception:
        # importlib.resources rejects some namespace-package setups (a package
        # without __init__.py next to an editable-install path hook); the file
        # is then a plain file next to this module.
        ref = Path(__file__).with_name("assets") / _SAMPLE_NAME
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


# --------------------------------------------------------------------------- #
# Normalisation, augmentation, batching
# --------------------------------------------------------------------------- #


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
    x: torch.Tensor, offsets: torch.Tensor | None, flips: torch.Tensor | None, crop_padding: int
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
        x = F.pad(x, (crop_padding,) * 4)  # zeros
        off = offsets.to(dev)
        rows = rows + off[0][:, None]
        cols = cols + off[1][:, None]
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
) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, per image.

    Each image is zero-padded by ``crop_padding`` pixels on every side and an
    ``H×W`` window at a random offset (uniform in ``0..2*crop_padding`` along
    each axis) is kept, i.e. the image is shifted by up to ``crop_padding``
    pixels with zeros filling in; with ``hflip`` each image is then mirrored
    left-right with probability 1/2. Vectorised: no loop over images.

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

    Returns:
        Tensor with the shape, dtype and device of ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"augment expects N×C×H×W, got shape {tuple(x.shape)}")
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
    params = _draw_augment_params(x.shape[0], generator, crop_padding, hflip)
    return _apply_augment(x, *params, crop_padding)


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
        crop_padding, hflip: see :func:`augment`; applied to the ``uint8``
            batch, so the padding is black (pixel 0) before normalisation.
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
                xb = _apply_augment(xb, *params, crop_padding)
            yield normalize(xb, mean, std, dtype=dtype), yb.to(device=device, dtype=torch.int64)

    return batches()
