"""The :class:`Dataset` record and the per-dataset constants (classes, mean / std, folders)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10")


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
