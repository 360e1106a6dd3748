"""The GDU check (paper Fig. 2) on tiny float64 networks, and the ``spiking-ep gdu`` command.

Per step t of the nudged phase, ΔEP(t) ≈ −∇BPTT(t) for neurons and parameters (σ′⊙∂L/∂s for
neurons); the symmetric combination is far closer than the one-sided one at moderate β and all
of them agree to ~0 as β → 0. Sums over t reproduce rate_ref's EP estimators and truncated BPTT.
"""
import csv
import json

import pytest
import torch

import rate_ref as R
import tiny
from spiking_ep import gdu as G
from spiking_ep import train as T
from spiking_ep.cli import main
from spiking_ep.config import load_config




def make(kind, theta=2.0, loss="cross_entropy", unidirectional=False, seed=0):
    return tiny.make(kind, loss, seed, theta=theta, unidirectional=unidirectional, x_scale=2.0, n_classes=4)


def errors(trace, e):
    return {r["tensor"]: r[f"rel_rms_{e}"] for r in G.metrics(trace)}


def test_symmetric_per_step_quantities_beat_one_sided_at_moderate_beta():
    # Hard sigmoid: between kinks the dynamics are linear, so at β = 0.1 (no unit changes its
    # saturation here) the one-sided error is the O(β) softmax curvature and the symmetric one O(β²).
    # Measured: one-sided 7e-4 … 8e-3, symmetric 5e-7 … 1.2e-5.
    net, x, y = make("dense")
    tr = G.gdu_trace(net, x, y, beta=0.1, T1=300, T2=20)
    assert tr.residual < 1e-12 and tr.window_drift < 1e-12          # converged: the theorem applies
    one, sym = errors(tr, "plus"), errors(tr, "sym")
    assert set(one) == {"s1", "s2", "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"}
    for k in one:
        assert 1e-5 < one[k] < 0.05, (k, one[k])
        assert sym[k] < one[k] / 100, (k, sym[k], one[k])
    assert max(r["sign_dis_sym"] for r in G.metrics(tr)) == 0.0


@pytest.mark.parametrize("kind", ["dense", "conv_max"])
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_per_step_quantities_match_bptt_as_beta_goes_to_zero(kind, loss):
    net, x, y = make(kind, theta=1.0, loss=loss)
    tr = G.gdu_trace(net, x, y, beta=1e-4, T1=300, T2=15)
    for e, tol in (("plus", 1e-3), ("minus", 1e-3), ("sym", 1e-6)):
        for k, err in errors(tr, e).items():
            assert err < tol, (e, k, err)
    if kind == "conv_max":   # no max-pooling argmax moved: the dynamics stayed smooth
        assert tr.pool_windows == 5 * 4 * 2 * 2 and tr.pool_switches == {"plus": 0, "minus": 0}
    # not only the sums: each step separately, and in the stated sign convention (EP ≈ −BPTT)
    for r in G.metrics(tr):
        assert r["step_rms_sym"] < 1e-6, r
    for k in tr.names:
        assert (tr.ref[k] * tr.ep["sym"][k]).sum() > 0, k


@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
def test_one_sided_error_is_first_order_symmetric_second_order(loss):
    net, x, y = make("dense", theta=1.0, loss=loss)
    e = {b: G.metrics(G.gdu_trace(net, x, y, beta=b, T1=300, T2=15)) for b in (1e-2, 1e-3)}
    for r_big, r_small in zip(e[1e-2], e[1e-3]):
        assert 8 < r_big["rel_rms_plus"] / r_small["rel_rms_plus"] < 12, r_big["tensor"]      # ≈ 10
        assert 80 < r_big["rel_rms_sym"] / r_small["rel_rms_sym"] < 120, r_big["tensor"]      # ≈ 100


def test_summed_quantities_are_rate_ref_ep_and_truncated_bptt():
    net, x, y = make("conv_max")
    beta, T1, T2 = 0.3, 120, 12
    tr = G.gdu_trace(net, x, y, beta=beta, T1=T1, T2=T2)
    one = R.ep_gradients(net, x, y, estimator="one_sided", beta=beta, T1=T1, T2=T2)
    sym, st = R.ep_gradients(net, x, y, estimator="symmetric", beta=beta, T1=T1, T2=T2, return_states=True)
    for k in tr.names[len(net.layers):]:
        torch.testing.assert_close(tr.ep["plus"][k].sum(0), -one[k], rtol=1e-9, atol=1e-13)
        torch.testing.assert_close(tr.ep["sym"][k].sum(0), -sym[k], rtol=1e-9, atol=1e-13)
        # the per-step BPTT parameter gradients add up to truncated BPTT over the last K steps, for every K
        for K in (1, 5, T2):
            ref = R.bptt_gradients(net, x, y, T1=T1, K=K)
            torch.testing.assert_close(-tr.ref[k][:K].sum(0), ref[k], rtol=1e-9, atol=1e-13)
    for i in range(len(net.layers)):
        torch.testing.assert_close(tr.ep["sym"][f"s{i + 1}"].sum(0), (st["plus"][i] - st["minus"][i]) / (2 * beta))
    # t = 0 on the neurons: σ′ ⊙ ∂ℓ_i/∂s_N at the fixed point, only in the last layer
    s_star = tuple(s.clone().requires_grad_(True) for s in st["free"])
    (g,) = torch.autograd.grad(net.loss_per_sample(s_star, y).sum(), s_star[-1])
    d = ((st["free"][-1] > 0) & (st["free"][-1] < 1)).double() / net.theta
    torch.testing.assert_close(-tr.ref[f"s{len(net.layers)}"][0], d * g)
    assert all(tr.ref[f"s{i + 1}"][0].abs().max() == 0 for i in range(len(net.layers) - 1))


def test_unidirectional_network_with_tied_weights_gives_the_bidirectional_check():
    bi, x, y = make("conv_max")
    uni, _, _ = make("conv_max", unidirectional=True)
    sd = uni.state_dict()
    sd.update(bi.state_dict())
    sd.update({f"layers.{i}.B": sd[f"layers.{i}.weight"].clone() for i in (1, 2)})
    uni.load_state_dict(sd)
    a = G.gdu_trace(bi, x, y, beta=0.2, T1=100, T2=8)
    b = G.gdu_trace(uni, x, y, beta=0.2, T1=100, T2=8)
    assert a.names == b.names
    for k in a.names:
        torch.testing.assert_close(b.ref[k], a.ref[k], rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(b.ep["sym"][k], a.ep["sym"][k], rtol=1e-10, atol=1e-14)


SMALL = ["data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
         "data.train_subset=300", "data.test_subset=100", "model.layers.0.features=24",
         "method.T1=30", "method.T2=6", "train.batch_size=50", "train.epochs=1"]


@pytest.fixture
def cfg_file(tmp_path):
    from spiking_ep.config import dump_config
    path = tmp_path / "mnist_demo.yaml"
    path.write_text(dump_config(load_config(None)))           # the embedded demo config as a file
    return str(path)


def _args(*extra):
    return [a for s in SMALL + list(extra) for a in ("--set", s)]


def test_gdu_command_writes_its_outputs(tmp_path, capsys, cfg_file):
    out = tmp_path / "check"
    assert main(["gdu", cfg_file, *_args(), "--n-images", "3", "--beta", "0.5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "relative RMS error" in text and "layers.0.weight" in text and str(out) in text
    names = {p.name for p in out.iterdir()}
    assert names >= {"gdu_table.md", "gdu_table.csv", "gdu_curves.png", "gdu_layers.png", "summary.json", "config.yaml"}
    for png in ("gdu_curves.png", "gdu_layers.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "gdu_table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["tensor"] for r in rows] == ["s1", "layers.0.weight", "layers.0.bias"]   # readout excluded
    for key in ("rel_rms_plus", "rel_rms_minus", "rel_rms_sym", "sign_dis_plus", "sign_dis_sym", "final_sym", "step_rms_sym"):
        assert all(float(r[key]) >= 0 for r in rows), key
    md = (out / "gdu_table.md").read_text()
    assert md.count("\n| s1 |") == 1 and "cumulative" in md
    s = json.loads((out / "summary.json").read_text())
    assert s["n_images"] == 3 and s["beta"] == 0.5 and s["T2"] == 6 and len(s["image_indices"]) == 3
    assert s["checkpoint"] is None and "embedded MNIST sample" in s["data_source"]
    assert load_config(out / "config.yaml").method.beta == 0.5


def test_gdu_command_on_a_trained_run_and_default_folder(tmp_path, capsys):
    cfg = load_config(None, SMALL + [f"train.out_dir={tmp_path}", "train.run_name=trained"])
    T.train(cfg, log=lambda *a: None)
    run = tmp_path / "trained"
    assert main(["gdu", str(run / "config.yaml"), "--checkpoint", str(run), "--n-images", "2",
                 "--set", f"train.out_dir={tmp_path / 'checks'}"]) == 0
    (folder,) = (tmp_path / "checks").iterdir()                # a new folder under train.out_dir
    assert folder.name.startswith("gdu-config-trained-")
    assert json.loads((folder / "summary.json").read_text())["checkpoint"] == str(run)
    assert "trained" in (folder / "gdu_table.md").read_text().splitlines()[0]


def test_gdu_command_errors_exit_2(tmp_path, capsys, cfg_file):
    assert main(["gdu", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gdu", cfg_file, *_args(), "--beta", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--beta" in capsys.readouterr().err
    assert main(["gdu", cfg_file, *_args("method.T2=40"), "--out", str(tmp_path / "b")]) == 2
    assert "T2" in capsys.readouterr().err
    other = load_config(None, SMALL + ["model.layers.0.features=8", f"train.out_dir={tmp_path}", "train.run_name=o"])
    T.train(other, log=lambda *a: None)
    assert main(["gdu", cfg_file, *_args(), "--checkpoint", str(tmp_path / "o"), "--out", str(tmp_path / "c")]) == 2
    assert "another architecture" in capsys.readouterr().err


def test_window_text_explains_t1_equal_t2_and_warns_only_for_a_real_drift():
    net, x, y = make("dense")
    converged = G.gdu_trace(net, x, y, beta=0.1, T1=200, T2=5)
    assert "drift over the BPTT window" in G.window_text(converged) and "raise" not in G.window_text(converged)
    unsettled = G.gdu_trace(net, x, y, beta=0.1, T1=8, T2=5)
    assert unsettled.window_drift > 1e-3 and "raise method.T1" in G.window_text(unsettled)
    # T1 = T2: BPTT starts at s = 0, so the state moves by construction; explained, not flagged
    full = G.gdu_trace(net, x, y, beta=0.1, T1=5, T2=5)
    assert full.window_drift > 0.1
    text = G.window_text(full)
    assert "T1 = T2" in text and "drift" not in text and "raise" not in text


def test_gdu_command_with_t1_equal_t2_prints_no_drift_alarm(tmp_path, capsys, cfg_file):
    out = tmp_path / "check"
    assert main(["gdu", cfg_file, *_args("method.T1=6"), "--n-images", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "drift" not in printed and "note: BPTT unrolls the whole free phase from s = 0 (T1 = T2)" in printed
    assert "drift" not in (out / "gdu_table.md").read_text()
    assert "T1 = T2" in json.loads((out / "summary.json").read_text())["window_note"]


def test_layer_bars_are_on_a_linear_axis_with_their_values():
    from spiking_ep.gdu_plots import layers_figure
    net, x, y = make("conv_max")
    rows = G.metrics(G.gdu_trace(net, x, y, beta=0.1, T1=60, T2=5))
    fig = layers_figure(rows, "t")
    for ax in fig.axes:
        assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
        labels = [t.get_text() for t in ax.texts]
        assert len(labels) == 3 * len(ax.get_xticks()) and all(labels)
    weights = [r for r in rows if r["kind"] == "weights"]
    assert f"{weights[0]['rel_rms_sym']:.2g}" in [t.get_text() for t in fig.axes[1].texts]
