"""Config tree: YAML → frozen dataclasses, every bad key or value named before any computation."""
from pathlib import Path

import pytest
import torch

import rate_ref as R
from rate_ref.config import ConfigError
from spiking_ep.config import dump_config, load_config

CONFIGS = sorted(Path(__file__).resolve().parents[1].joinpath("configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_loads_and_builds(path):
    cfg = load_config(path)
    net = R.build_network(cfg.model)
    assert len(cfg.optim.lrs) == len(net.layers) + (net.readout is not None)
    assert load_config(path) == cfg  # frozen, comparable values


def test_embedded_default_and_roundtrip(tmp_path):
    cfg = load_config(None)
    assert cfg.data.allow_embedded
    p = tmp_path / "c.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg


def write(tmp_path, text):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


BASE = """
model:
  layers: [{type: dense, features: 16}]
optim:
  lrs: [0.1, 0.05]
"""


@pytest.mark.parametrize("text,overrides,match", [
    (BASE + "trian: {epochs: 1}\n", [], r"unknown key 'trian'.*valid keys.*train"),
    (BASE, ["train.epocs=3"], r"unknown key 'train.epocs'"),
    (BASE, ["model.layers.0.featurs=3"], r"unknown key 'model.layers\[0\].featurs'"),
    (BASE, ["train.epochs=three"], r"train.epochs: expected an integer, got 'three'"),
    (BASE, ["method.estimator=two_sided"], r"method.estimator: 'two_sided' is not valid; choose one of 'symmetric'"),
    (BASE, ["method.beta=0"], r"method.beta: must be > 0"),
    (BASE, ["method.beta=-0.5"], r"method.beta: must be > 0"),
    (BASE, ["optim.lrs=[0.1]"], r"optim.lrs: 1 learning rates given, 2 needed"),
    (BASE, ["model.kind=spiking", "model.input_shape=[1,8,8]",
            "model.layers=[{type: conv, channels: 4, pool: max}]"], r"layers\[0\].pool: max pooling is not supported.*pool: avg"),
    (BASE, ["model.input_shape=[1,4,4]", "model.layers=[{type: conv, channels: 4, kernel: 7, padding: 0}]"],
     r"layers\[0\].*kernel 7.*larger than its 4×4 input"),
    (BASE, ["model.input_shape=[1,7,7]", "model.layers=[{type: conv, channels: 4, kernel: 3, padding: 1}]"],
     r"layers\[0\].*even conv output, got 7×7"),
    (BASE, ["model.loss=squared_error"], r"last layer is the output and must be dense with features = n_classes"),
    (BASE, ["data.name=imagenet"], r"data.name: 'imagenet' is not valid"),
    (BASE, ["data.crop_pad_mode=reflect"], r"data.crop_pad_mode: 'reflect' is not valid; choose one of 'zeros' \| 'edge'"),
    (BASE, ["data.std=[0.2, 0.3]"], r"data.std: 2 values given, the input has 1 channels \(model.input_shape\)"),
    (BASE, ["data.std=[0]"], r"data.std: one value > 0 per image channel"),
    ("model: [1, 2\n", [], r"not valid YAML"),
])
def test_bad_config_is_named(tmp_path, text, overrides, match):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as e:
        cfg = load_config(p, overrides)
        R.build_network(cfg.model)
    if "YAML" not in match and not overrides:
        assert str(p) in str(e.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_override_parses_yaml_values(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["train.epochs=7", "method.beta=0.25", "model.layers.0.features=8",
                                              "data.root=/x/y"])
    assert (cfg.train.epochs, cfg.method.beta, cfg.model.layers[0].features, cfg.data.root) == (7, 0.25, 8, "/x/y")
    with pytest.raises(ConfigError, match="not an index"):
        load_config(write(tmp_path, BASE), ["model.layers.3.features=8"])


@pytest.mark.parametrize("override, match", [
    ("optim.lrs=[0.05, -0.02]", r"optim.lrs\[1\] = -0.02: learning rates must be ≥ 0"),
    ("optim.lrs=[-0.05, 0.02]", r"optim.lrs\[0\] = -0.05"),
    ("optim.momentum=-0.1", "optim.momentum: must be ≥ 0"),
    ("optim.momentum=1.0", "optim.momentum: must be < 1"),
    ("optim.weight_decay=-1", "optim.weight_decay: must be ≥ 0"),
    ("data.train_subset=-5", "data.train_subset: must be ≥ 1"),
    ("data.test_subset=0", "data.test_subset: must be ≥ 1"),
    ("data.crop_padding=-1", "data.crop_padding"),
    ("train.threads=0", "train.threads: must be ≥ 1"),
    ("method.eval_T1=0", "method.eval_T1: must be ≥ 1"),
    ("method.tol=-1", "method.tol: must be > 0"),
])
def test_out_of_range_values_are_refused_with_the_config(override, match):
    # refused when the config loads, before any data is read
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_exponent_floats_without_a_dot_are_numbers():
    # PyYAML reads 1e-3 as a string (YAML 1.1); the config accepts it as the number it means
    cfg = load_config(None, ["method.tol=1e-3", "optim.weight_decay=5e-4"])
    assert cfg.method.tol == 1e-3 and cfg.optim.weight_decay == 5e-4
    with pytest.raises(ConfigError, match="method.beta: 'abc' is not valid|expected a number"):
        load_config(None, ["method.beta=abc"])


PAPER = sorted(Path(__file__).resolve().parents[1].joinpath("configs", "paper").glob("cifar10_*.yaml"))


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_configs_use_the_papers_cifar10_preprocessing(path):
    # Laborieux et al.'s code: Normalize(std=3 × (0.2023, 0.1994, 0.2010)) and
    # RandomCrop(32, padding=4, padding_mode="edge") + RandomHorizontalFlip, not our defaults
    from spiking_ep import data as D
    from spiking_ep.train import normalisation
    cfg = load_config(path)
    d = cfg.data
    assert (d.name, d.crop_padding, d.crop_pad_mode, d.hflip) == ("cifar10", 4, "edge", True)
    ds = D.Dataset(name="cifar10", train_x=torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
                   train_y=torch.zeros(1, dtype=torch.int64), test_x=torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
                   test_y=torch.zeros(1, dtype=torch.int64), classes=tuple("abcdefghij"),
                   mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), source="test")
    mean, std = normalisation(cfg, ds)
    assert mean == pytest.approx((0.4914, 0.4822, 0.4465))
    assert std == pytest.approx((3 * 0.2023, 3 * 0.1994, 3 * 0.2010))


def test_data_std_defaults_to_the_datasets_and_overrides_it():
    from spiking_ep import data as D
    from spiking_ep.train import normalisation
    ds = D.load_dataset("mnist", "/nonexistent-so-the-embedded-sample-is-used", allow_embedded=True, test_subset=1)
    cfg = load_config(None, ["data.std_scale=2"])
    assert cfg.data.std is None and cfg.data.crop_pad_mode == "zeros"
    assert normalisation(cfg, ds) == (ds.mean, pytest.approx((2 * 0.3081,)))
    assert normalisation(load_config(None, ["data.std=[0.5]", "data.std_scale=2"]), ds)[1] == pytest.approx((1.0,))
