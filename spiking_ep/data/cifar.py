"""CIFAR-10: the official pickle batches, or an image tree (folder or zip) decoded once and cached."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import _SPECS, _Arrays
from .paths import DataError, resolve_cache_dir

# --------------------------------------------------------------------------- #
# Official pickle batches
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
