"""Export to NIR / HDF5 (spiking_ep.export): spike-for-spike execution, round trips, the forward
schedule and NIR-exact profile, and every refused input (docs/export.md, docs/reliability.md)."""
import dataclasses
import json

import h5py
import nir
import numpy as np
import pytest
import torch

import rate_ref as R
from spiking_ep import dynamics as D
from spiking_ep.checkpoint import atomic_save
from spiking_ep.cli import main
from spiking_ep.config import SpikingConfig, config_from_dict, dump_config
from spiking_ep.export import ExportError, export_run, import_network, nir_exact
from spiking_ep.export.layout import layouts
from spiking_ep.export.nir_graph import build_graph
from spiking_ep.export.verify import spike_check

from tiny import make_spiking

LAYERS = {"dense": [{"type": "dense", "features": 20}, {"type": "dense", "features": 12}, {"type": "dense", "features": 8}],
          "conv": [{"type": "conv", "channels": 3, "pool": "avg"}, {"type": "conv", "channels": 4, "pool": "avg"},
                   {"type": "dense", "features": 6}]}


def config(arch, **model):
    tree = {"model": {"input_shape": [1, 28, 28], "layers": LAYERS[arch], "kind": "spiking", "init_scale": 2.0,
                      **model},
            "optim": {"lrs": [0.1] * 4}, "method": {"T1": 12, "T2": 6, "mode": "evenodd"},
            "data": {"allow_embedded": True, "root": "/nonexistent", "test_subset": 40},
            "train": {"threads": 1, "eval_batch_size": 20}}
    return config_from_dict(tree)


def make_run(tmp_path, arch="dense", name="run", **model):
    """A run folder (config.yaml + weights.pt) with seeded random weights: no training needed."""
    cfg = config(arch, **model)
    torch.manual_seed(0)
    net = R.build_network(cfg.model)
    run = tmp_path / name
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(cfg))
    atomic_save(net.state_dict(), run / "weights.pt")
    return run, cfg, net


# --- the forward schedule and the NIR-exact profile ------------------------------------------------
# (the rate model's forward schedule reaches the sync fixed point: tests/test_rate_ref.py)
def test_spiking_forward_mode_rates_approach_the_rate_fixed_point():
    net, x, _ = make_spiking("dense")
    with torch.no_grad():
        s_star = R.relax(net, x, steps=1000, mode="evenodd")
    rates, _, _ = D.relax_spiking(net, x, steps=300, window=150, mode="forward")
    err = sum((r - s).abs().sum().item() for r, s in zip(rates, s_star)) / sum(s.numel() for s in s_star)
    assert err < 0.02


def test_forward_mode_updates_layers_bottom_up():
    # layer n reads layer n−1's spikes of this step: from zero, a strongly driven first layer fires at
    # step 1 and the layer above sees it at step 1 too (with sync only at step 2)
    net, x, _ = make_spiking("dense", batch=2)
    with torch.no_grad():
        net.layers[0].bias.fill_(5.0)
        net.layers[1].weight.fill_(1.0)
    s_fwd = D.step(net, x, D.zero_state(net, x), mode="forward")
    s_sync = D.step(net, x, D.zero_state(net, x), mode="sync")
    assert s_fwd.spikes[0].all() and s_fwd.spikes[1].all() and not s_sync.spikes[1].any()


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_reset_setting_reaches_the_neurons(reset):
    net, x, _ = make_spiking("dense", batch=4)
    cfg = SpikingConfig(reset=reset, v_floor=None, v_ceiling=None)
    state = D.zero_state(net, x, cfg)
    for _ in range(5):
        state = D.step(net, x, state, cfg=cfg)
    v, z = state.v[0], state.spikes[0].bool()
    assert z.any()
    assert (v[z] == 0).all() == (reset == "zero")


def test_nir_profile_config():
    cfg = nir_exact(config("dense"))
    assert (cfg.spiking.reset, cfg.spiking.v_floor, cfg.spiking.v_ceiling, cfg.spiking.tau_syn,
            cfg.spiking.rate_estimate, cfg.method.mode) == ("zero", None, None, None, "count", "forward")
    cfg2 = config_from_dict({"model": {"layers": LAYERS["dense"]}, "optim": {"lrs": [0.1] * 4},
                             "spiking": {"reset": "zero"}, "method": {"mode": "forward"}})
    assert cfg2.spiking.reset == "zero" and cfg2.method.mode == "forward"


# --- spike for spike --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,loss", [("dense", "cross_entropy"), ("conv", "cross_entropy"), ("conv", "squared_error")])
def test_nir_file_runs_spike_for_spike_like_our_simulator(tmp_path, kind, loss):
    # build → nir.write → nir.read → nirtorch (our node map) in lockstep with our simulator
    # (NIR-exact profile, forward schedule): every spike of every layer at every step is equal
    net, x, _ = make_spiking(kind, loss, batch=6, dtype=torch.float32)
    graph, _ = build_graph(net, feedback="full", neuron={"kind": "if", "theta": 1.0}, metadata={"k": "v"})
    nir.write(tmp_path / "g.nir", graph)
    back = nir.read(tmp_path / "g.nir")
    cfg = nir_exact(dataclasses.replace(config("dense"), model=net.cfg))
    lin0, lays = layouts(net, "full")
    for dtype in (torch.float64, torch.float32) if kind == "dense" else (torch.float64,):
        c = spike_check(net, back, lin0, lays, x, cfg, steps=30, window=15, dtype=dtype)
        assert c["identical"] and c["spikes"] > 100 and c["predictions_equal"] == 1.0, c


def test_lif_export_runs_spike_for_spike(tmp_path):
    net, x, _ = make_spiking("conv", batch=4, dtype=torch.float32)
    graph, _ = build_graph(net, feedback="full", neuron={"kind": "lif", "theta": 0.8, "tau_mem": 6.0}, metadata={})
    nir.write(tmp_path / "g.nir", graph)
    base = config("dense")
    cfg = nir_exact(dataclasses.replace(base, model=net.cfg, spiking=dataclasses.replace(
        base.spiking, neuron="lif", tau_mem=6.0, v_threshold=0.8)))
    lin0, lays = layouts(net, "full")
    c = spike_check(net, nir.read(tmp_path / "g.nir"), lin0, lays, x, cfg, steps=25, window=10, dtype=torch.float64)
    assert c["identical"] and c["spikes"] > 100, c


def test_feedback_edges_and_layouts():
    net, _, _ = make_spiking("conv", dtype=torch.float32)
    full, _ = build_graph(net, feedback="full", neuron={"kind": "if", "theta": 1.0}, metadata={})
    none, _ = build_graph(net, feedback="none", neuron={"kind": "if", "theta": 1.0}, metadata={})
    assert {"layer01_topdown", "layer02_topdown"} <= set(full.nodes) and "layer01_topdown" not in none.nodes
    # conv layer 1 (4×4×4 native) sits on layer 2's grid: 16 channels of 2×2; no feedback: native, strided
    assert tuple(full.nodes["layer01_neuron"].v_threshold.shape) == (16, 2, 2)
    assert tuple(none.nodes["layer01_neuron"].v_threshold.shape) == (4, 4, 4)
    assert tuple(none.nodes["layer02_drive"].stride) == (2, 2)
    assert all(isinstance(n, nir.Conv2d) for k, n in full.nodes.items() if k.endswith(("drive", "topdown")))


# --- CLI end to end, round trips --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_cli_export_verifies_and_import_round_trips(tmp_path, kind, capsys):
    run, cfg, net = make_run(tmp_path, kind)
    assert main(["export", str(run), "--n-test", "20", "--n-verify", "3", "--steps", "12",
                 "--no-importers"]) == 0
    report = json.loads((run / "export-full.nir.json").read_text())
    checks = report["verification"]["spike_check"]
    assert checks[0]["dtype"] == "float64" and checks[0]["identical"]
    errs = report["verification"]["test_error"]
    assert errs["nirtorch"] == errs["ours_nir_profile"]
    assert report["bytes"] == (run / "export-full.nir").stat().st_size
    assert not list(run.glob(".*.tmp"))
    # import: identical weights, identical spiking behaviour
    assert main(["import", str(run / "export-full.nir"), "--out", str(tmp_path / "imp")]) == 0
    imp = import_network(run / "export-full.nir")
    assert imp.exact and imp.metadata["feedback"] == "full" and imp.metadata["schedule"].startswith("forward")
    for (k, a), b in zip(net.state_dict().items(), imp.net.state_dict().values()):
        assert torch.equal(a, b), k
    saved = torch.load(tmp_path / "imp" / "weights.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())
    x = torch.rand(3, 1, 28, 28)
    a = D.relax_spiking(net, x, steps=10)[0]
    b = D.relax_spiking(imp.net, x, steps=10)[0]
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_feedback_none_export_round_trips(tmp_path):
    run, cfg, net = make_run(tmp_path, "conv")
    export_run(run, feedback="none", verify=False, log=lambda *a: None)
    imp = import_network(run / "export-none.nir")
    assert imp.exact and all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), imp.net.state_dict().values()))


def test_importers_are_run_and_reported(tmp_path):
    run, _, _ = make_run(tmp_path, "dense")
    report = export_run(run, n_test=20, n_verify=3, steps=10, log=lambda *a: None)
    imps = report["verification"]["importers"]
    assert set(imps) == {"snntorch", "norse"}
    for r in imps.values():
        assert r["runs"] or r["error"], r   # either it ran (and was compared) or the failure is named
        assert r["known_cause"]
    if imps["norse"]["runs"]:   # norse reads IF, Affine and Linear as we mean them (dense exports)
        assert imps["norse"]["agreement_with_nirtorch"] == 1.0 and imps["norse"]["output_max_abs_diff"] == 0.0


def test_h5_export_layout_and_round_trip(tmp_path):
    run, cfg, net = make_run(tmp_path, "conv")
    report = export_run(run, fmt="h5", n_test=10, n_verify=2, steps=8, log=lambda *a: None)
    assert report["verification"]["roundtrip"]["weights_identical"]
    path = run / "export-full.h5"
    with h5py.File(path) as f:
        assert f.attrs["format"] == "spiking-ep/h5" and f.attrs["feedback"] == "full"
        g = f["layers/layer02"]
        assert g.attrs["type"] == "conv" and g.attrs["pool"] == "avg" and g.attrs["feedback"] == "transpose"
        assert g["effective_weight"].shape == (4, 3, 4, 4) and g["neuron/v_threshold"].shape == (4, 7, 7)
        assert f["readout/weight"].shape == (10, 6)
    imp = import_network(path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), imp.net.state_dict().values()))


# --- errors --------------------------------------------------------------------------------------
def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("spiking-ep: error:") and "Traceback" not in err
    return err


def test_missing_or_broken_run_folders_are_named(tmp_path, capsys):
    assert "does not exist" in _cli_error(capsys, ["export", str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    assert "no config.yaml" in _cli_error(capsys, ["export", str(tmp_path / "empty")])
    run, _, _ = make_run(tmp_path, "dense")
    (run / "weights.pt").unlink()
    assert "no weights.pt" in _cli_error(capsys, ["export", str(run)])
    (run / "weights.pt").write_bytes(b"not a checkpoint")
    assert "cannot be read" in _cli_error(capsys, ["export", str(run)])
    (tmp_path / "file").write_text("x")
    assert "not a run folder" in _cli_error(capsys, ["export", str(tmp_path / "file")])


def test_architectures_nir_cannot_express_are_refused(tmp_path):
    run, _, _ = make_run(tmp_path, "conv", name="maxpool")
    text = (run / "config.yaml").read_text().replace("pool: avg", "pool: max").replace("kind: spiking", "kind: rate")
    (run / "config.yaml").write_text(text)
    with pytest.raises(ExportError, match=r"layers\[0\] uses max pooling, which NIR cannot express"):
        export_run(run, verify=False, log=lambda *a: None)
    run, _, _ = make_run(tmp_path, "dense", name="vf", kind="rate", unidirectional=True)
    with pytest.raises(ExportError, match=r"layers\[1\] is unidirectional"):
        export_run(run, verify=False, log=lambda *a: None)
    run, _, _ = make_run(tmp_path, "conv", name="big")
    with pytest.raises(ExportError, match=r"layer0\d_(drive|topdown) \(layer \d\) would hold .* --feedback none"):
        export_run(run, verify=False, max_weights=500, log=lambda *a: None)
    assert not list(run.glob("export-*")) and not list(run.glob(".*.tmp"))   # nothing written


def test_a_failed_check_leaves_no_file(tmp_path, monkeypatch):
    from spiking_ep.export import nir_graph
    run, _, _ = make_run(tmp_path, "dense")

    def broken(a, b, source):
        raise ExportError(f"{source}: simulated mismatch")
    monkeypatch.setattr(nir_graph, "compare_graphs", broken)
    with pytest.raises(ExportError, match="simulated mismatch"):
        export_run(run, verify=False, log=lambda *a: None)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "weights.pt"]


def test_bad_files_on_import_are_named(tmp_path, capsys):
    run, _, _ = make_run(tmp_path, "dense")
    export_run(run, verify=False, log=lambda *a: None)
    good = run / "export-full.nir"
    assert "does not exist" in _cli_error(capsys, ["import", str(tmp_path / "missing.nir")])
    (tmp_path / "junk.nir").write_bytes(b"\x00" * 100)
    assert "cannot be read as HDF5" in _cli_error(capsys, ["import", str(tmp_path / "junk.nir")])
    data = good.read_bytes()
    (tmp_path / "cut.nir").write_bytes(data[: len(data) // 2])
    assert "cannot be read as HDF5" in _cli_error(capsys, ["import", str(tmp_path / "cut.nir")])
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    assert "neither a NIR graph" in _cli_error(capsys, ["import", str(tmp_path / "other.h5")])
    foreign = nir.NIRGraph.from_list(nir.Affine(np.ones((2, 3), np.float32), np.zeros(2, np.float32)))
    nir.write(tmp_path / "foreign.nir", foreign)
    assert "not one spiking-ep export wrote" in _cli_error(capsys, ["import", str(tmp_path / "foreign.nir")])
    assert main(["import", str(good), "--out", str(tmp_path / "imp")]) == 0
    assert "already holds weights.pt" in _cli_error(capsys, ["import", str(good), "--out", str(tmp_path / "imp")])


def test_shape_mismatch_on_import_is_named(tmp_path):
    run, cfg, _ = make_run(tmp_path, "dense")
    export_run(run, verify=False, log=lambda *a: None)
    export_run(run, fmt="h5", verify=False, log=lambda *a: None)
    wider = config_from_dict({"model": {"input_shape": [1, 28, 28], "layers": [{"type": "dense", "features": 21},
                                        {"type": "dense", "features": 12}, {"type": "dense", "features": 8}]},
                              "optim": {"lrs": [0.1] * 4}})
    with pytest.raises(ExportError, match=r"shape mismatch in 'layer01_drive': weight has shape \(20, 784\), .* "
                                          r"needs \(21, 784\)"):
        import_network(run / "export-full.nir", config=wider)
    with pytest.raises(ExportError, match=r"shape mismatch in 'layers/layer01/weight': \(20, 784\) in the file"):
        import_network(run / "export-full.h5", config=wider)
