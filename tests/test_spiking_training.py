"""End to end: a small spiking convnet trained with spiking EP (both local rules) from the shipped
config, evaluated from its run folder, and resumed. Slow (about a minute per rule on one core):
``python -m pytest -m slow tests/test_spiking_training.py``."""
import json
from pathlib import Path

import pytest

from spiking_ep import train as T
from spiking_ep.cli import main
from spiking_ep.config import load_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mnist_conv_spiking.yaml"


def small(tmp_path, rule, *extra):
    """configs/mnist_conv_spiking.yaml with 8 / 16 channels on 1,000 embedded-sample digits."""
    return load_config(CONFIG, [
        "data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
        "data.train_subset=1000", "data.test_subset=300", "model.layers.0.channels=8", "model.layers.1.channels=16",
        "train.batch_size=32", "train.epochs=2", "train.threads=1", f"train.out_dir={tmp_path}",
        f"spiking.rule={rule}", f"train.run_name={rule}", *extra])


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["rates", "stdp"])
def test_spiking_convnet_learns_with_spiking_ep(tmp_path, capsys, rule):
    cfg = small(tmp_path, rule)
    assert cfg.model.kind == "spiking" and cfg.method.mode == "evenodd" and cfg.spiking.rate_estimate == "charge"
    s = T.train(cfg, log=lambda *a: None)
    assert s["final_test_error"] < 0.5                         # chance is 0.9
    run = Path(s["run_dir"])
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "spikes_per_neuron_step" in rows[0]
    # the run folder evaluates by itself (its config, its test subset) to the same error
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_test"] == 300 and res["model_kind"] == "spiking"
    assert res["results"][0]["test_error"] == pytest.approx(s["final_test_error"])
    assert 0 < res["results"][0]["spikes_per_neuron_step"] < 1


@pytest.mark.slow
def test_spiking_convnet_resumes_to_the_same_weights(tmp_path):
    import torch
    # stop after epoch 1 of 2 (the cosine schedule fixed to 2 epochs in both), then continue
    full = T.train(small(tmp_path, "stdp", "train.run_name=full", "optim.T_max=2"), log=lambda *a: None)
    T.train(small(tmp_path, "stdp", "train.run_name=part", "optim.T_max=2", "train.epochs=1"), log=lambda *a: None)
    resumed = T.train(small(tmp_path, "stdp", "train.run_name=part", "optim.T_max=2"), resume=tmp_path / "part",
                      log=lambda *a: None)
    assert resumed["final_test_error"] == full["final_test_error"]
    a = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
