"""CUDA against the CPU float64 reference: the same gradients (rate EP, BPTT, spiking EP) and a
short training run. Marked ``gpu``: left out of the default run, skipped without CUDA
(``python -m pytest -m gpu`` on a machine with a GPU)."""
import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import rate_ref as R
import tiny
from spiking_ep import train as T
from spiking_ep.cli import main
from spiking_ep.config import SpikingConfig, load_config
from spiking_ep.learning import spiking_ep_gradients

pytestmark = pytest.mark.gpu
DEVICE = "cuda"
SMALL = ["data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
         "data.train_subset=1000", "data.test_subset=500", "model.layers.0.features=64", "train.batch_size=50",
         "method.T1=10", "method.T2=5", "train.epochs=1"]


@pytest.fixture(autouse=True)
def full_float32():
    # TF32 (on by default for cuDNN convolutions) rounds float32 products to 10 mantissa bits; the
    # float32 comparisons below check the code, not that rounding
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def on(net, x, y, dtype):
    return copy.deepcopy(net).to(device=DEVICE, dtype=dtype), x.to(DEVICE, dtype), y.to(DEVICE)


def rel(a, b):
    return ((a.cpu().double() - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("kind", ["dense", "conv_max", "conv_avg"])
@pytest.mark.parametrize("mode", ["sync", "evenodd"])
def test_rate_ep_gradients_on_cuda_match_the_cpu_float64_ones(kind, mode):
    net, x, y = tiny.make(kind, theta=1.0, x_scale=2.0)
    ref = R.ep_gradients(net, x, y, beta=0.5, T1=60, T2=20, mode=mode)
    g64 = R.ep_gradients(*on(net, x, y, torch.float64), beta=0.5, T1=60, T2=20, mode=mode)
    g32 = R.ep_gradients(*on(net, x, y, torch.float32), beta=0.5, T1=60, T2=20, mode=mode)
    assert set(g64) == set(ref)
    for k in ref:
        assert g64[k].device.type == DEVICE and g32[k].dtype == torch.float32
        torch.testing.assert_close(g64[k].cpu(), ref[k], rtol=1e-7, atol=1e-10, msg=k)
        assert rel(g32[k], ref[k]) < 1e-3, k


@pytest.mark.parametrize("kind", ["dense", "conv_avg"])
def test_bptt_gradients_on_cuda_match_the_cpu_float64_ones(kind):
    net, x, y = tiny.make(kind, theta=1.0, x_scale=2.0)
    ref = R.bptt_gradients(net, x, y, T1=30, K=10)
    g64 = R.bptt_gradients(*on(net, x, y, torch.float64), T1=30, K=10)
    for k in ref:
        torch.testing.assert_close(g64[k].cpu(), ref[k], rtol=1e-7, atol=1e-10, msg=k)


@pytest.mark.parametrize("rule", ["rates", "stdp"])
def test_spiking_ep_gradients_on_cuda_match_the_cpu_float64_ones(rule):
    # float64 on both: the same spikes unless a membrane lands within rounding of θ (not with
    # these random weights), so the updates agree to rounding; float32 flips some spikes
    net, x, y = tiny.make_spiking("conv", batch=8)
    cfg = SpikingConfig(rule=rule, rate_estimate="charge")
    ref, st = spiking_ep_gradients(net, x, y, beta=0.5, T1=40, T2=20, cfg=cfg, mode="evenodd")
    g64, st64 = spiking_ep_gradients(*on(net, x, y, torch.float64), beta=0.5, T1=40, T2=20, cfg=cfg, mode="evenodd")
    for k in ref:
        cos = F.cosine_similarity(g64[k].cpu().flatten(), ref[k].flatten(), dim=0).item()
        assert cos > 0.9999, (k, cos)
    assert st64["spikes_per_neuron_step"]["free"] == pytest.approx(st["spikes_per_neuron_step"]["free"], rel=1e-3)


@pytest.mark.parametrize("extra", [[], ["model.kind=spiking", "model.layers=[{type: conv, channels: 8, pool: avg}]",
                                        "optim.lrs=[0.1, 0.05]", "model.input_shape=[1, 28, 28]",
                                        "method.mode=evenodd", "spiking.rate_estimate=charge", "method.T1=20"]],
                         ids=["rate", "spiking_conv"])
def test_training_on_cuda_learns_and_its_weights_evaluate_on_the_cpu(tmp_path, capsys, extra):
    cfg = load_config(None, SMALL + extra + [f"train.device={DEVICE}", f"train.out_dir={tmp_path}", "train.run_name=g"])
    s = T.train(cfg, log=lambda *a: None)
    assert s["device"].startswith(DEVICE) and s["final_test_error"] < 0.5      # chance is 0.9
    capsys.readouterr()
    assert main(["evaluate", s["run_dir"], "--set", "train.device=cpu", "--set", "train.threads=1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["device"] == "cpu" and Path(res["weights"]) == Path(s["run_dir"])
    assert abs(res["results"][0]["test_error"] - s["final_test_error"]) <= 0.01
