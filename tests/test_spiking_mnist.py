"""A rate-trained MNIST network keeps its accuracy when run as a spiking network."""
import pytest
import torch

import rate_ref as R
from spiking_ep import data as D
from spiking_ep.config import SpikingConfig
from spiking_ep.dynamics import relax_spiking


@pytest.fixture(scope="module")
def trained(shared_data_root):
    # the offline copy ($SPIKING_EP_DATA or ../shared/data) if present, else the MNIST sample shipped
    # with the package
    root = shared_data_root or "/nonexistent-so-the-embedded-sample-is-used"
    ds = D.load_dataset("mnist", root, allow_embedded=True, train_subset=3000, test_subset=1000)
    x, y = D.normalize(ds.train_x, ds.mean, ds.std), ds.train_y
    xt, yt = D.normalize(ds.test_x, ds.mean, ds.std), ds.test_y
    torch.manual_seed(0)
    net = R.build_network({"input_shape": [1, 28, 28], "layers": [{"type": "dense", "features": 64},
                                                                 {"type": "dense", "features": 32}]})
    # three epochs of rate EP + plain SGD on 3000 digits (≈ 2 s)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    params = dict(net.named_parameters())
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 20):
            idx = perm[i:i + 20]
            for k, v in R.ep_gradients(net, x[idx], y[idx], beta=0.5, T1=20, T2=8, mode="evenodd").items():
                params[k].grad = v
            opt.step()
    return net, xt, yt


def test_rate_trained_network_keeps_accuracy_as_spiking_network(trained):
    net, xt, yt = trained
    with torch.no_grad():
        s_star = R.relax(net, xt, steps=200, mode="evenodd")
    acc_rate = (R.predict(net, s_star).argmax(1) == yt).double().mean().item()
    assert acc_rate > 0.8                        # the training did work
    for T1 in (50, 100):
        rates, _, stats = relax_spiking(net, xt, steps=T1, window=T1 // 2)
        acc_spk = (R.predict(net, rates).argmax(1) == yt).double().mean().item()
        assert abs(acc_spk - acc_rate) <= 0.01, (T1, acc_rate, acc_spk)
        assert sum((r - s).abs().mean().item() for r, s in zip(rates, s_star)) / len(rates) < 0.005
        assert 0.01 < stats["spikes_per_neuron_step"] < 0.5
    # the charge estimate (count + residual membrane charge) gets there in fewer steps
    rates, _, _ = relax_spiking(net, xt, steps=20, window=10, cfg=SpikingConfig(rate_estimate="charge"))
    assert abs((R.predict(net, rates).argmax(1) == yt).double().mean().item() - acc_rate) <= 0.01
