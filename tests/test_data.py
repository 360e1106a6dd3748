"""Tests for spiking_ep.data: loaders on tiny generated files, errors, batching."""

from __future__ import annotations

import gzip
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spiking_ep import data
from spiking_ep.data import DataError, load_dataset

_ORIGINAL_CACHE_ENV = os.environ.get(data.CACHE_ENV_VAR)
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No real torchvision, no system dirs, no user env, a private cache."""
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    monkeypatch.setattr(data.idx, "_SYSTEM_IDX_DIRS", {})
    monkeypatch.delenv(data.DATA_ENV_VAR, raising=False)
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "cache"))


# --------------------------------------------------------------------------- #
# File generators
# --------------------------------------------------------------------------- #


def idx_bytes(a: np.ndarray) -> bytes:
    a = np.asarray(a, dtype=np.uint8)
    header = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return header + a.tobytes()


def write_mnist(directory: Path, *, gz: bool, n_train=7, n_test=4, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train).astype(np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, key in zip(IDX_NAMES, ("train_x", "train_y", "test_x", "test_y")):
        blob = idx_bytes(arrays[key])
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (directory / name).write_bytes(blob)
    return arrays


def write_cifar_pickles(directory: Path, *, per_batch=20, n_test=10, meta=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        xs.append(x)
        ys.extend(y)
        with open(directory / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"batch_label": b"training batch", b"data": x, b"labels": y}, f, protocol=2)
    tx = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    ty = rng.integers(0, 10, n_test).tolist()
    with open(directory / "test_batch", "wb") as f:
        pickle.dump({b"data": tx, b"labels": ty}, f)
    if meta:
        names = [f"class{i}".encode() for i in range(10)]
        with open(directory / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    return {"train_x": np.concatenate(xs).reshape(-1, 3, 32, 32), "train_y": np.array(ys),
            "test_x": tx.reshape(-1, 3, 32, 32), "test_y": np.array(ty)}


def tree_images(n_train=2, n_test=1, seed=0) -> dict:
    """{relative path: H×W×3 uint8} for a 10-class tree with exact (PNG) pixels."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for cls in CIFAR_CLASSES:
            for k in range(n):
                files[f"{split}/{cls}/{k:04d}.png"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return files


def png_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def write_tree(root: Path, files: dict) -> None:
    for rel, a in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(png_bytes(a))


def write_tree_zip(path: Path, files: dict, top: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for rel, a in files.items():
            z.writestr(top + rel, png_bytes(a))
        z.writestr(top + "README.txt", "not an image")  # must be ignored


def expected_tree(files: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Round-robin over classes: class 0 file 0, class 1 file 0, ..., class 0 file 1, ..."""
    per_class = [sorted(k for k in files if k.startswith(f"{split}/{c}/")) for c in CIFAR_CLASSES]
    xs, ys = [], []
    for i in range(max(map(len, per_class))):
        for label, keys in enumerate(per_class):
            if i < len(keys):
                xs.append(files[keys[i]].transpose(2, 0, 1))
                ys.append(label)
    return np.stack(xs), np.array(ys)


def check_tree_dataset(ds: data.Dataset, files: dict) -> None:
    assert ds.classes == CIFAR_CLASSES
    for split in ("train", "test"):
        x, y = expected_tree(files, split)
        got_x, got_y = getattr(ds, f"{split}_x"), getattr(ds, f"{split}_y")
        assert got_x.dtype == torch.uint8 and got_y.dtype == torch.int64
        assert np.array_equal(got_x.numpy(), x)
        assert np.array_equal(got_y.numpy(), y)


# --------------------------------------------------------------------------- #
# Directories
# --------------------------------------------------------------------------- #


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.resolve_data_dir() == tmp_path / "xdg" / "spiking-ep" / "data"
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    assert data.resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data.resolve_data_dir(str(tmp_path / "s")) == tmp_path / "s"
    monkeypatch.delenv(data.DATA_ENV_VAR)
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.resolve_data_dir() == tmp_path / "home" / ".cache" / "spiking-ep" / "data"


def test_resolve_cache_dir(monkeypatch, tmp_path):
    assert data.resolve_cache_dir() == tmp_path / "cache"  # from the autouse fixture
    monkeypatch.delenv(data.CACHE_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.resolve_cache_dir() == tmp_path / "xdg" / "spiking-ep" / "cache"


# --------------------------------------------------------------------------- #
# MNIST / Fashion-MNIST
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "name, sub, gz",
    [
        ("mnist", "", True),
        ("mnist", "mnist", False),
        ("mnist", "MNIST/raw", True),
        ("fashion_mnist", "fashion-mnist", True),
        ("fashion_mnist", "fashion_mnist", False),
        ("fashion_mnist", "FashionMNIST/raw", False),
    ],
)
def test_idx_layouts_round_trip(tmp_path, name, sub, gz):
    root = tmp_path / "data"
    arrays = write_mnist(root / sub if sub else root, gz=gz)
    ds = load_dataset(name, root)
    assert ds.name == name
    assert ds.train_x.shape == (7, 1, 28, 28) and ds.test_x.shape == (4, 1, 28, 28)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert np.array_equal(ds.train_x[:, 0].numpy(), arrays["train_x"])
    assert np.array_equal(ds.test_x[:, 0].numpy(), arrays["test_x"])
    assert np.array_equal(ds.train_y.numpy(), arrays["train_y"])
    assert np.array_equal(ds.test_y.numpy(), arrays["test_y"])
    assert len(ds.classes) == 10 and ds.num_classes == 10 and ds.image_shape == (1, 28, 28)
    expected_stats = ((0.1307,), (0.3081,)) if name == "mnist" else ((0.2860,), (0.3530,))
    assert (ds.mean, ds.std) == expected_stats
    assert ("train-images-idx3-ubyte.gz" if gz else "train-images-idx3-ubyte") in ds.source


def test_env_var_and_subsets(tmp_path, monkeypatch):
    arrays = write_mnist(tmp_path / "d" / "mnist", gz=True)
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "d"))
    ds = load_dataset("MNIST", train_subset=3, test_subset=100)
    assert ds.train_x.shape[0] == 3 and ds.test_x.shape[0] == 4
    assert np.array_equal(ds.train_x[:, 0].numpy(), arrays["train_x"][:3])
    assert "first 3 train / 4 test" in ds.source
    with pytest.raises(ValueError):
        load_dataset("mnist", train_subset=0)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")


def _idx_file(tmp_path, gz=True) -> tuple[Path, Path]:
    root = tmp_path / "data"
    write_mnist(root, gz=gz)
    return root, root / ("train-images-idx3-ubyte" + (".gz" if gz else ""))


def test_truncated_idx(tmp_path):
    root, p = _idx_file(tmp_path, gz=False)
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated") as e:
        load_dataset("mnist", root)
    assert "train-images-idx3-ubyte" in str(e.value)


def test_trailing_bytes_idx(tmp_path):
    root, p = _idx_file(tmp_path, gz=True)
    p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()) + b"xx"))
    with pytest.raises(DataError, match="trailing") as e:
        load_dataset("mnist", root)
    assert "train-images-idx3-ubyte.gz" in str(e.value)


def test_bad_magic(tmp_path):
    root = tmp_path / "data"
    write_mnist(root, gz=False)
    p = root / "t10k-labels-idx1-ubyte"
    p.write_bytes(b"\x00\x00\x08\x03" + p.read_bytes()[4:])  # says 3-D, labels are 1-D
    with pytest.raises(DataError, match="magic") as e:
        load_dataset("mnist", root)
    assert "t10k-labels-idx1-ubyte" in str(e.value)


def test_bad_gzip(tmp_path):
    root, p = _idx_file(tmp_path)
    p.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="not gzip") as e:
        load_dataset("mnist", root)
    assert "train-images-idx3-ubyte.gz" in str(e.value)


def test_truncated_gzip(tmp_path):
    root, p = _idx_file(tmp_path)
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(DataError, match="gzip") as e:
        load_dataset("mnist", root)
    assert "train-images-idx3-ubyte.gz" in str(e.value)


def test_image_label_count_mismatch(tmp_path):
    root = tmp_path / "data"
    write_mnist(root, gz=False)
    (root / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DataError, match="7 images but .*5 labels") as e:
        load_dataset("mnist", root)
    assert "train-labels-idx1-ubyte" in str(e.value)


def test_missing_idx_message(tmp_path):
    root = tmp_path / "nothing"
    with pytest.raises(DataError) as e:
        load_dataset("mnist", root)
    msg = str(e.value)
    for name in IDX_NAMES:
        assert name in msg
    for d in (root, root / "mnist", root / "MNIST" / "raw"):
        assert str(d) in msg
    assert "SPIKING_EP_DATA" in msg and "data.root" in msg and "torchvision is not installed" in msg


def test_incomplete_idx_dir_is_reported(tmp_path):
    root = tmp_path / "data"
    write_mnist(root / "fashion-mnist", gz=True)
    (root / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="incomplete: missing t10k-labels-idx1-ubyte"):
        load_dataset("fashion_mnist", root)


def _fake_torchvision(monkeypatch, cls_name, action):
    calls = []

    def factory(root, train, download):
        calls.append(root)
        action(Path(root))

    tv = types.ModuleType("torchvision")
    tvd = types.ModuleType("torchvision.datasets")
    setattr(tvd, cls_name, factory)
    tv.datasets = tvd
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", tvd)
    return calls


def test_torchvision_download_used_when_missing(tmp_path, monkeypatch):
    calls = _fake_torchvision(monkeypatch, "MNIST", lambda r: write_mnist(r / "MNIST" / "raw", gz=False))
    ds = load_dataset("mnist", tmp_path / "d")
    assert calls == [str(tmp_path / "d")]
    assert ds.train_x.shape == (7, 1, 28, 28) and "MNIST/raw" in ds.source


def test_torchvision_download_failure_reported(tmp_path, monkeypatch):
    def fail(root):
        raise RuntimeError("no network")

    _fake_torchvision(monkeypatch, "CIFAR10", fail)
    with pytest.raises(DataError, match="CIFAR10 failed: RuntimeError: no network") as e:
        load_dataset("cifar10", tmp_path / "d")
    msg = str(e.value)
    assert "data_batch_1" in msg and "test_batch" in msg and "cifar10-jpeg.zip" in msg
    assert "SPIKING_EP_DATA" in msg and "data.root" in msg


# --------------------------------------------------------------------------- #
# Embedded sample
# --------------------------------------------------------------------------- #


def test_embedded_sample(tmp_path, monkeypatch):
    calls = _fake_torchvision(monkeypatch, "MNIST", lambda r: pytest.fail("must not download"))
    ds = load_dataset("mnist", tmp_path / "empty", allow_embedded=True)
    assert calls == []
    assert ds.source == "embedded MNIST sample (6000 train / 1000 test digits) shipped with spiking-ep"
    assert ds.train_x.shape == (6000, 1, 28, 28) and ds.test_x.shape == (1000, 1, 28, 28)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert set(ds.train_y.tolist()) == set(range(10)) == set(ds.test_y.tolist())
    assert abs(ds.train_x.float().mean().item() / 255 - 0.1307) < 0.01
    small = load_dataset("mnist", tmp_path / "empty", allow_embedded=True, train_subset=100)
    assert torch.equal(small.train_x, ds.train_x[:100])


def test_embedded_source_mentions_incomplete_dir(tmp_path):
    write_mnist(tmp_path / "d" / "mnist", gz=True)
    (tmp_path / "d" / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    ds = load_dataset("mnist", tmp_path / "d", allow_embedded=True)
    assert ds.source.startswith("embedded MNIST sample")
    assert "incomplete: missing train-images-idx3-ubyte" in ds.source


def test_embedded_not_used_when_files_exist_or_for_other_sets(tmp_path):
    write_mnist(tmp_path / "d", gz=True)
    assert load_dataset("mnist", tmp_path / "d", allow_embedded=True).train_x.shape[0] == 7
    with pytest.raises(DataError):
        load_dataset("fashion_mnist", tmp_path / "empty", allow_embedded=True)


def test_corrupt_files_not_masked_by_embedded(tmp_path):
    root, p = _idx_file(tmp_path)
    p.write_bytes(b"junk")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", root, allow_embedded=True)


# --------------------------------------------------------------------------- #
# CIFAR-10: pickle batches
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("sub", ["cifar-10-batches-py", "cifar10/cifar-10-batches-py"])
def test_cifar_pickles(tmp_path, sub):
    expected = write_cifar_pickles(tmp_path / "d" / sub)
    ds = load_dataset("cifar10", tmp_path / "d", train_subset=90)
    full = load_dataset("cifar10", tmp_path / "d")
    assert full.train_x.shape == (100, 3, 32, 32) and full.test_x.shape == (10, 3, 32, 32)
    assert np.array_equal(full.train_x.numpy(), expected["train_x"])
    assert np.array_equal(full.train_y.numpy(), expected["train_y"])
    assert np.array_equal(full.test_x.numpy(), expected["test_x"])
    assert np.array_equal(full.test_y.numpy(), expected["test_y"])
    # Row layout: first 1024 bytes = red plane.
    assert full.train_x[0, 0, 0, 1] == expected["train_x"].reshape(-1, 3072)[0, 1]
    assert full.classes == tuple(f"class{i}" for i in range(10))  # from batches.meta
    assert full.mean == (0.4914, 0.4822, 0.4465) and full.std == (0.2470, 0.2435, 0.2616)
    assert ds.train_x.shape[0] == 90 and "python batches" in ds.source


def test_cifar_pickles_without_meta_use_default_names(tmp_path):
    write_cifar_pickles(tmp_path / "cifar-10-batches-py", per_batch=2, n_test=2, meta=False)
    assert load_dataset("cifar10", tmp_path).classes == CIFAR_CLASSES


def test_truncated_pickle(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(folder, per_batch=4, n_test=4)
    p = folder / "data_batch_3"
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(DataError, match="corrupt or truncated pickle") as e:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_3" in str(e.value)


def test_missing_pickle_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(folder, per_batch=4, n_test=4)
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match="missing test_batch"):
        load_dataset("cifar10", tmp_path)


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_pickles(folder, per_batch=4, n_test=4)
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(DataError, match="refusing to load global") as e:
        load_dataset("cifar10", tmp_path)
    assert "data_batch_1" in str(e.value)


# --------------------------------------------------------------------------- #
# CIFAR-10: image trees and the decode cache
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("sub", ["", "cifar10", "cifar10/images"])
def test_tree_folder(tmp_path, sub):
    files = tree_images()
    root = tmp_path / "d"
    write_tree(root / sub if sub else root, files)
    (root / sub if sub else root).joinpath("train", "cat", ".DS_Store").write_bytes(b"junk")  # ignored
    ds = load_dataset("cifar10", root)
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (10, 3, 32, 32)
    check_tree_dataset(ds, files)
    assert ds.train_y[:10].tolist() == list(range(10))  # round-robin order
    sub_ds = load_dataset("cifar10", root, train_subset=10)
    assert sorted(sub_ds.train_y.tolist()) == list(range(10))  # class-balanced prefix


def test_tree_cache_is_hit_second_time(tmp_path, monkeypatch):
    files = tree_images()
    write_tree(tmp_path / "d" / "cifar10", files)
    first = load_dataset("cifar10", tmp_path / "d")
    cached = list((tmp_path / "cache").glob("cifar10-folder-*.npz"))
    assert len(cached) == 1 and "cached in" in first.source
    assert not list((tmp_path / "cache").glob("*.tmp"))

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(data.cifar, "_decode_image", no_decode)
    second = load_dataset("cifar10", tmp_path / "d")
    assert "read from cache" in second.source
    check_tree_dataset(second, files)

    # Changing a file changes the key: decoded again (and here: fails loudly).
    p = tmp_path / "d" / "cifar10" / "train" / "dog" / "0001.png"
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded although"):
        load_dataset("cifar10", tmp_path / "d")


def test_corrupt_cache_is_ignored(tmp_path):
    files = tree_images(n_train=1)
    zpath = tmp_path / "d" / "cifar10" / "cifar10-png.zip"
    write_tree_zip(zpath, files)
    load_dataset("cifar10", tmp_path / "d")
    (cache_file,) = (tmp_path / "cache").glob("cifar10-zip-*.npz")
    cache_file.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ignoring unreadable cache"):
        ds = load_dataset("cifar10", tmp_path / "d")
    check_tree_dataset(ds, files)
    assert np.load(cache_file)["train_x"].shape == (10, 3, 32, 32)  # rewritten


@pytest.mark.parametrize("top, where", [("", "cifar10/any-name.zip"), ("cifar10-jpeg/", "my-cifar10.zip")])
def test_tree_zip(tmp_path, monkeypatch, top, where):
    files = tree_images()
    write_tree_zip(tmp_path / "d" / where, files, top=top)
    ds = load_dataset("cifar10", tmp_path / "d")
    check_tree_dataset(ds, files)
    assert "in zip" in ds.source and Path(where).name in ds.source
    monkeypatch.setattr(data.cifar, "_decode_image", lambda *a: pytest.fail("cache not used"))
    check_tree_dataset(load_dataset("cifar10", tmp_path / "d"), files)


def test_unrelated_zip_in_data_dir_is_ignored(tmp_path):
    write_tree_zip(tmp_path / "photos.zip", tree_images(n_train=1))  # no "cifar" in the name
    with pytest.raises(DataError, match="not found"):
        load_dataset("cifar10", tmp_path)


def test_tree_wrong_image_size(tmp_path):
    files = tree_images(n_train=1)
    files["train/frog/0000.png"] = np.zeros((28, 32, 3), np.uint8)
    write_tree(tmp_path / "cifar10", files)
    with pytest.raises(DataError, match="32×28, CIFAR-10 images must be 32×32") as e:
        load_dataset("cifar10", tmp_path)
    assert str(tmp_path / "cifar10" / "train" / "frog" / "0000.png") in str(e.value)


def test_tree_zip_wrong_mode_and_corrupt_image(tmp_path):
    files = tree_images(n_train=1)
    files["test/ship/0000.png"] = np.zeros((32, 32), np.uint8)  # grayscale
    write_tree_zip(tmp_path / "cifar10.zip", files)
    with pytest.raises(DataError, match="mode is L") as e:
        load_dataset("cifar10", tmp_path)
    assert "cifar10.zip:test/ship/0000.png" in str(e.value)

    write_tree(tmp_path / "cifar10" / "tree", tree_images(n_train=1))
    (tmp_path / "cifar10" / "tree" / "train" / "bird" / "0000.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="cannot decode image") as e:
        load_dataset("cifar10", tmp_path)
    assert "bird/0000.png" in str(e.value)


def test_tree_class_mismatch(tmp_path):
    files = {k: v for k, v in tree_images(n_train=1).items() if not k.startswith("test/truck/")}
    write_tree(tmp_path / "cifar10", files)
    with pytest.raises(DataError, match="different class folders"):
        load_dataset("cifar10", tmp_path)


def test_not_a_zip(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar10-jpeg.zip").write_bytes(b"truncated download")
    with pytest.raises(DataError, match="not a readable zip") as e:
        load_dataset("cifar10", tmp_path)
    assert "cifar10-jpeg.zip" in str(e.value)


# --------------------------------------------------------------------------- #
# Normalisation, augmentation, batching
# --------------------------------------------------------------------------- #


def test_normalize():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 3, 1, 3).contiguous()
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 1.0)
    out = data.normalize(x, mean, std)
    assert out.dtype == torch.float32 and out.shape == x.shape
    ref = (x.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)) / torch.tensor(
        std, dtype=torch.float64).view(3, 1, 1)
    torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-6)
    assert data.normalize(x, mean, std, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(TypeError):
        data.normalize(x.float(), mean, std)
    with pytest.raises(ValueError):
        data.normalize(x, (0.1,), (0.2,))


def _naive_augment(x, offsets, flips, p):
    """Loop reference: pad, crop at the offsets, then flip."""
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for i in range(x.shape[0]):
        dy, dx = (int(offsets[0, i]), int(offsets[1, i])) if offsets is not None else (0, 0)
        img = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = img.flip(-1) if flips is not None and flips[i] else img
    return out


@pytest.mark.parametrize("p, hflip", [(0, True), (2, False), (4, True)])
def test_augment_matches_reference(p, hflip):
    x = torch.randn(16, 3, 8, 10, generator=torch.Generator().manual_seed(1))
    # Same seed twice: the reference sees the offsets/flips augment() draws.
    offsets, flips = data._draw_augment_params(16, torch.Generator().manual_seed(123), p, hflip)
    out = data.augment(x, torch.Generator().manual_seed(123), crop_padding=p, hflip=hflip)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, _naive_augment(x, offsets if p else None, flips, p), rtol=0, atol=0)


def test_augment_flip_and_crop_semantics():
    x = torch.arange(1, 1 + 64 * 1 * 5 * 5, dtype=torch.float32).view(64, 1, 5, 5)
    flipped = data.augment(x, torch.Generator().manual_seed(0), hflip=True)
    is_same = (flipped == x).flatten(1).all(1)
    is_flip = (flipped == x.flip(-1)).flatten(1).all(1)
    assert bool((is_same ^ is_flip).all()) and 10 < int(is_flip.sum()) < 54

    p = 2
    cropped = data.augment(x, torch.Generator().manual_seed(0), crop_padding=p)
    shifts_seen = set()
    for i in range(64):
        # Each output is the input shifted by (sy, sx) in -p..p with zero fill.
        matches = []
        for sy in range(-p, p + 1):
            for sx in range(-p, p + 1):
                ref = torch.zeros(5, 5)
                ys, xs = slice(max(0, sy), 5 + min(0, sy)), slice(max(0, sx), 5 + min(0, sx))
                yd, xd = slice(max(0, -sy), 5 + min(0, -sy)), slice(max(0, -sx), 5 + min(0, -sx))
                ref[yd, xd] = x[i, 0][ys, xs]
                if torch.equal(cropped[i, 0], ref):
                    matches.append((sy, sx))
        assert len(matches) == 1
        shifts_seen.add(matches[0])
    assert len(shifts_seen) > 10  # offsets vary per image


def test_augment_determinism_and_dtypes():
    x = torch.randint(0, 256, (32, 3, 6, 6), dtype=torch.uint8)
    a = data.augment(x, torch.Generator().manual_seed(7), crop_padding=2, hflip=True)
    b = data.augment(x, torch.Generator().manual_seed(7), crop_padding=2, hflip=True)
    c = data.augment(x, torch.Generator().manual_seed(8), crop_padding=2, hflip=True)
    assert torch.equal(a, b) and not torch.equal(a, c) and a.dtype == torch.uint8
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert data.augment(x, g) is x and torch.equal(g.get_state(), state)  # no-op draws nothing
    with pytest.raises(ValueError):
        data.augment(x[0], g, hflip=True)


def test_num_batches():
    assert data.num_batches(10, 3, False) == 4
    assert data.num_batches(10, 3, True) == 3
    assert data.num_batches(9, 3, False) == 3 == data.num_batches(9, 3, True)
    assert data.num_batches(0, 3, False) == 0
    with pytest.raises(ValueError):
        data.num_batches(10, 0, False)


def _toy(n=23):
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 2, 4, 4).contiguous()
    return x, torch.arange(n)


def test_iterate_batches_no_shuffle():
    x, y = _toy()
    batches = list(data.iterate_batches(x, y, batch_size=5, mean=(0, 0), std=(1, 1), shuffle=False, generator=None))
    assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    xb, yb = batches[1]
    assert xb.dtype == torch.float32 and xb.shape == (5, 2, 4, 4) and yb.dtype == torch.int64
    torch.testing.assert_close(xb[:, 0, 0, 0], torch.arange(5, 10, dtype=torch.float32) / 255)
    dropped = list(data.iterate_batches(x, y, batch_size=5, mean=(0, 0), std=(1, 1), shuffle=False,
                                        generator=None, drop_last=True, dtype=torch.float64))
    assert len(dropped) == 4 and dropped[0][0].dtype == torch.float64


def test_iterate_batches_shuffle_is_seeded_and_eager():
    x, y = _toy()
    kw = dict(batch_size=4, mean=(0.5, 0.5), std=(0.25, 0.25), shuffle=True)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    before = g1.get_state()
    it = data.iterate_batches(x, y, generator=g1, **kw)
    assert not torch.equal(g1.get_state(), before)  # permutation drawn at call time
    run1 = list(it)
    run2 = list(data.iterate_batches(x, y, generator=g2, **kw))
    ys = torch.cat([b[1] for b in run1])
    assert sorted(ys.tolist()) == y.tolist() and not torch.equal(ys, y)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(run1, run2))
    # Labels stay attached to their images.
    for xb, yb in run1:
        torch.testing.assert_close(xb[:, 0, 0, 0], (yb.float() / 255 - 0.5) / 0.25)
    with pytest.raises(ValueError, match="Generator"):
        data.iterate_batches(x, y, generator=None, **kw)


def test_iterate_batches_resume_mid_epoch_is_exact():
    x = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(50)
    kw = dict(batch_size=8, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4), shuffle=True, crop_padding=2, hflip=True)
    g = torch.Generator().manual_seed(11)
    epoch_start = g.get_state()
    full = list(data.iterate_batches(x, y, generator=g, **kw))
    after_full = g.get_state()
    g.set_state(epoch_start)
    resumed = list(data.iterate_batches(x, y, generator=g, start_batch=3, **kw))
    assert len(full) == 7 and len(resumed) == 4
    for a, b in zip(full[3:], resumed):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.equal(g.get_state(), after_full)  # next epoch unaffected by the interruption
    assert list(data.iterate_batches(x, y, generator=g, start_batch=7, **kw)) == []
    with pytest.raises(ValueError, match="start_batch"):
        data.iterate_batches(x, y, generator=g, start_batch=8, **kw)


def test_iterate_batches_augmentation_pads_black():
    x = torch.full((6, 1, 4, 4), 200, dtype=torch.uint8)
    y = torch.zeros(6, dtype=torch.int64)
    (xb, _), = data.iterate_batches(x, y, batch_size=6, mean=(0.5,), std=(0.5,), shuffle=False,
                                     generator=torch.Generator().manual_seed(0), crop_padding=3)
    bright = data.normalize(torch.full((1, 1, 1, 1), 200, dtype=torch.uint8), (0.5,), (0.5,)).item()
    assert bool(((xb == -1.0) | (xb == bright)).all())  # only image pixels or black padding
    assert (xb == -1.0).any()  # padding is pixel 0 (black) before normalisation



@pytest.mark.parametrize("p, hflip", [(2, False), (4, True)])
def test_augment_edge_padding_matches_numpy_edge_pad(p, hflip):
    # crop_pad_mode="edge" = numpy's / torchvision's "edge" padding, then the same crop and flip;
    # the random draws are those of zero padding (the mode changes only the fill)
    x = torch.randint(0, 256, (16, 3, 8, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    offsets, flips = data._draw_augment_params(16, torch.Generator().manual_seed(123), p, hflip)
    out = data.augment(x, torch.Generator().manual_seed(123), crop_padding=p, hflip=hflip, crop_pad_mode="edge")
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (p, p), (p, p)), mode="edge"))
    ref = torch.empty_like(x)
    for i in range(16):
        dy, dx = int(offsets[0, i]), int(offsets[1, i])
        img = padded[i, :, dy:dy + 8, dx:dx + 10]
        ref[i] = img.flip(-1) if hflip and flips[i] else img
    assert out.dtype == torch.uint8 and torch.equal(out, ref)
    zeros = data.augment(x, torch.Generator().manual_seed(123), crop_padding=p, hflip=hflip)
    assert not torch.equal(out, zeros)


def test_iterate_batches_edge_padding_has_no_black_border():
    x = torch.full((6, 1, 4, 4), 200, dtype=torch.uint8)
    y = torch.zeros(6, dtype=torch.int64)
    (xb, _), = data.iterate_batches(x, y, batch_size=6, mean=(0.5,), std=(0.5,), shuffle=False,
                                     generator=torch.Generator().manual_seed(0), crop_padding=3,
                                     crop_pad_mode="edge")
    bright = data.normalize(torch.full((1, 1, 1, 1), 200, dtype=torch.uint8), (0.5,), (0.5,)).item()
    assert bool((xb == bright).all())   # a uniform image stays uniform: the border repeats its edge
    with pytest.raises(ValueError, match="crop_pad_mode"):
        data.augment(x, torch.Generator(), crop_padding=2, crop_pad_mode="reflect")


# --------------------------------------------------------------------------- #
# Real data (offline copies), when present
# --------------------------------------------------------------------------- #


def test_real_mnist(shared_data_dir):
    if not (shared_data_dir / "mnist").is_dir():
        pytest.skip("no MNIST in the shared data folder")
    ds = load_dataset("mnist", shared_data_dir)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert abs(ds.train_x.float().mean().item() / 255 - 0.1307) < 5e-4
    assert ds.train_y[:5].tolist() == [5, 0, 4, 1, 9] and ds.test_y[:3].tolist() == [7, 2, 1]
    # Same file names as Fashion-MNIST: asking for that must not silently return digits.
    with pytest.raises(DataError, match="MNIST digits file"):
        load_dataset("fashion_mnist", shared_data_dir / "mnist")


@pytest.mark.slow
def test_real_cifar_zip(shared_data_dir, monkeypatch):
    """Decodes 60k JPEGs the first time (fills the user's cache), then loads from it."""
    zpath = shared_data_dir / "cifar10" / "cifar10-jpeg.zip"
    if not zpath.is_file():
        pytest.skip("no CIFAR-10 zip in the shared data folder")
    if _ORIGINAL_CACHE_ENV is None:
        monkeypatch.delenv(data.CACHE_ENV_VAR)
    else:
        monkeypatch.setenv(data.CACHE_ENV_VAR, _ORIGINAL_CACHE_ENV)
    ds = load_dataset("cifar10", shared_data_dir)
    assert ds.train_x.shape == (50000, 3, 32, 32) and ds.test_x.shape == (10000, 3, 32, 32)
    assert ds.classes == CIFAR_CLASSES
    assert ds.train_y.bincount().tolist() == [5000] * 10 and ds.test_y.bincount().tolist() == [1000] * 10
    means = ds.train_x.float().mean(dim=(0, 2, 3)) / 255
    torch.testing.assert_close(means, torch.tensor([0.4913, 0.4821, 0.4465]), atol=1e-3, rtol=0)
