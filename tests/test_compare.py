"""spiking-ep compare: a tiny end-to-end comparison, resuming, and the gradient-agreement numbers."""
import json
import math

import pytest
import torch

import rate_ref as R
from spiking_ep.cli import main
from spiking_ep.compare import run_compare
from spiking_ep.compare import measure as M
from spiking_ep.compare.arms import arm_config, arm_of, confounds
from spiking_ep.config import ARMS, ConfigError, load_config
from spiking_ep.learning import spiking_ep_gradients
from spiking_ep.spiking_bptt import spiking_bptt_gradients

TINY = [
    "data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
    "data.train_subset=200", "data.test_subset=100", "train.batch_size=50", "train.epochs=2", "train.threads=1",
    "model.layers=[{type: conv, channels: 4, pool: avg}, {type: dense, features: 16}]", "optim.lrs=[0.1, 0.05, 0.05]",
    "method.T1=8", "method.T2=4", "method.mode=evenodd", "method.tol=1.0e-3", "method.warm_start=persistent",
    "spiking.rate_estimate=charge", "compare.spiking_T1=10", "compare.spiking_T2=6", "compare.grad_batches=2",
    "compare.grad_batch_size=16", "compare.fixed_point_T1=[5, 10]", "compare.fixed_point_images=32",
    "compare.conversion_steps=[5, 10]", "compare.conversion_test_subset=100",
]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    logs = []
    cfg = load_config(None, TINY)
    # first only one arm (a half-finished comparison), then the whole comparison
    run_compare(cfg, out=out, arms=("rate_ep",), report=False, log=logs.append)
    rep = run_compare(cfg, out=out, log=logs.append)
    return cfg, out, rep, logs


def test_every_arm_is_an_ordinary_run_folder_and_the_report_is_written(compared):
    cfg, out, rep, logs = compared
    for arm in ARMS:
        run = out / f"{arm}-seed0"
        for name in ("config.yaml", "metrics.csv", "summary.json", "weights.pt", "weights-epoch000.pt"):
            assert (run / name).is_file(), (arm, name)
        assert arm_of(json.loads(json.dumps(__import__("yaml").safe_load((run / "config.yaml").read_text())))) == arm
    assert "rate_ep-seed0: finished, skipped" in logs
    for name in ("report.md", "report.json", "curves.png", "gradient_cosine.png", "accuracy_vs_synops.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(rep))
    text = (out / "report.md").read_text()
    for heading in ("## Accuracy", "## Gradient agreement", "## Fixed-point gap", "## Conversion", "## Cost",
                    "## How these numbers were made"):
        assert heading in text


def test_report_values_are_sane(compared):
    _, _, rep, _ = compared
    assert set(rep["accuracy"]) == set(ARMS)
    for a in rep["accuracy"].values():
        for s in a["seeds"]:
            for k in ("final_test_error", "best_test_error", "final_train_error"):
                assert 0.0 <= s[k] <= 1.0
        assert a["se"] > 0
    rows = rep["gradients"]["rows"]
    assert {r["epoch"] for r in rows} == {0, 1, 2}
    assert {(r["method"], r["ref"]) for r in rows} >= {("spiking_stdp", "bptt"), ("spiking_rates", "rate_ep")}
    assert all(-1.0 <= r["cosine"] <= 1.0 and r["rel_error"] >= 0 for r in rows)
    for tag in ("initial", "final"):
        assert all(r["spiking"] >= 0 and r["rate"] >= 0 for r in rep["fixed_point"][tag]["rows"])
    conv = rep["conversion"]["rows"]
    assert {(r["weights"], r["run_as"]) for r in conv} == {(a, k) for a in ARMS for k in ("rate", "spiking")}
    assert all(0 <= r["test_error"] <= 1 for r in conv)
    assert all(r["synops_per_sample"] >= 0 and r["spikes_per_neuron_step"] >= 0 for r in conv if r["run_as"] == "spiking")
    for c in rep["cost"]:
        assert c["rate_macs_per_sample_inference"] > 0 and c["seconds_per_epoch"] >= 0
        assert c["peak_memory_bytes"] is not None and c["peak_memory_bytes"] >= 0
        if c["arm"] in ("spiking_rates", "spiking_stdp", "spiking_bptt"):
            assert c["synops_per_sample_inference"] > 0
    assert rep["confounds"] == []
    assert {(g["arm"], g["ref"]) for g in rep["gaps"]} >= {("spiking_rates", "rate_ep"), ("spiking_stdp", "bptt")}


def test_a_second_call_skips_finished_arms_and_reuses_measurements(compared):
    cfg, out, rep, _ = compared
    logs = []
    before = {p: p.stat().st_mtime_ns for p in out.glob("*-seed0/weights.pt")}
    again = run_compare(cfg, out=out, log=logs.append, results=out / "published")
    assert sum("finished, skipped" in line for line in logs) == len(ARMS)
    pub = out / "published"
    assert (pub / "report.md").is_file() and (pub / "measurements" / "gradients.json").is_file()
    for arm in ARMS:
        assert sorted(p.name for p in (pub / "runs" / f"{arm}-seed0").iterdir()) == [
            "config.yaml", "metrics.csv", "summary.json"]      # raw files, never weights
    assert not any(line.startswith("measuring") for line in logs)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*-seed0/weights.pt")} == before
    assert again["gradients"] == rep["gradients"] and again["accuracy"] == rep["accuracy"]
    # a cache written by an older version of a measurement (rows without a newer field) is made again
    path = out / "measurements" / "gradients.json"     # version 2: rows with norm_ratio
    old = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in old.items() if k != "version"}))
    logs.clear()
    run_compare(cfg, out=out, log=logs.append)
    assert any("gradients.json was measured" in line and "older version" in line for line in logs), logs
    assert json.loads(path.read_text())["version"] == old["version"]


def test_an_arm_trained_with_another_config_is_refused(compared):
    cfg, out, _, _ = compared
    other = load_config(None, TINY + ["method.beta=0.25"])
    with pytest.raises(ConfigError, match="another config"):
        run_compare(other, out=out)


def test_gradient_agreement_equals_direct_computation():
    cfg = load_config(None, TINY)
    cfgs = {a: arm_config(cfg, a, 0, "unused") for a in ARMS}
    torch.manual_seed(0)
    net = R.build_network(cfgs["rate_ep"].model)
    x, y = torch.rand(12, 1, 28, 28), torch.randint(0, 10, (12,))
    rows = M.agreement(M.gradient_estimates(net, x, y, cfgs), M.layer_groups(net))
    rm, sm = cfgs["rate_ep"].method, cfgs["spiking_rates"].method
    direct = {
        "rate_ep": R.ep_gradients(net, x, y, beta=rm.beta, T1=rm.T1, T2=rm.T2, mode=rm.mode, tol=rm.tol),
        "bptt": R.bptt_gradients(net, x, y, T1=rm.T1, K=rm.T2, mode=rm.mode, tol=rm.tol),
        "spiking_rates": spiking_ep_gradients(net, x, y, rule="rates", beta=sm.beta, T1=sm.T1, T2=sm.T2,
                                              cfg=cfgs["spiking_rates"].spiking, mode=sm.mode)[0],
        "spiking_stdp": spiking_ep_gradients(net, x, y, rule="stdp", beta=sm.beta, T1=sm.T1, T2=sm.T2,
                                             cfg=cfgs["spiking_stdp"].spiking, mode=sm.mode)[0],
        "spiking_bptt": spiking_bptt_gradients(net, x, y, T1=sm.T1, K=cfgs["spiking_bptt"].method.K,
                                               cfg=cfgs["spiking_bptt"].spiking, mode=sm.mode)[0],
    }
    groups = {"layer1": ["layers.0.weight", "layers.0.bias"], "layer2": ["layers.1.weight", "layers.1.bias"],
              "readout": ["readout.weight", "readout.bias"]}
    assert len(rows) == 2 * 4 * 3
    for r in rows:
        a = torch.cat([direct[r["method"]][k].flatten() for k in groups[r["layer"]]]).double()
        b = torch.cat([direct[r["ref"]][k].flatten() for k in groups[r["layer"]]]).double()
        assert r["cosine"] == pytest.approx((a @ b / (a.norm() * b.norm())).item(), abs=1e-6)
        assert r["rel_error"] == pytest.approx(((a - b).norm() / b.norm()).item(), rel=1e-5)
        assert r["norm_ratio"] == pytest.approx((a.norm() / b.norm()).item(), rel=1e-5)
        assert math.isfinite(r["cosine"])


def test_arms_share_everything_but_the_method_and_confounds_are_named():
    cfg = load_config("configs/compare/cifar10_cpu.yaml")
    cfgs = {a: arm_config(cfg, a, 0, "o") for a in ARMS}
    assert {c.model.kind for a, c in cfgs.items() if a.startswith("spiking")} == {"spiking"}
    assert {(c.model.kind, c.method.name) for a, c in cfgs.items()} == {
        ("rate", "ep"), ("rate", "bptt"), ("spiking", "ep"), ("spiking", "bptt")}
    assert len({(c.model.layers, c.data, c.optim, c.train.epochs, c.method.mode) for c in cfgs.values()}) == 1
    assert cfgs["spiking_stdp"].spiking.rule == "stdp" and cfgs["spiking_rates"].spiking.rule == "rates"
    from rate_ref.config import to_dict
    trees = {a: to_dict(c) for a, c in cfgs.items()}
    assert confounds(trees) == []
    trees["spiking_rates"]["method"]["mode"] = "sync"
    (c,) = confounds(trees)
    assert "method.mode" in c and "different fixed points" in c


def test_cli_compare_errors_name_the_problem(tmp_path, capsys):
    assert main(["compare", "--arms", "nonsense", "--out", str(tmp_path)] + ["--set=" + s for s in TINY]
                + ["configs/compare/mnist.yaml"]) == 2
    assert "--arms: nonsense unknown" in capsys.readouterr().err
    assert main(["compare", "configs/compare/mnist.yaml", "--runs", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_an_arm_locked_by_another_process_is_skipped(tmp_path):
    import fcntl
    cfg = load_config(None, TINY + ["train.epochs=1"])
    held = open(tmp_path / "bptt-seed0.lock", "w")
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)     # as if another process were training it
    logs = []
    run_compare(cfg, out=tmp_path, arms=("rate_ep", "bptt"), report=False, log=logs.append)
    assert any("bptt-seed0: being trained by another process" in line for line in logs)
    assert (tmp_path / "rate_ep-seed0" / "summary.json").is_file()
    assert not (tmp_path / "bptt-seed0").exists()
    held.close()
    run_compare(cfg, out=tmp_path, arms=("rate_ep", "bptt"), report=False, log=logs.append)
    assert (tmp_path / "bptt-seed0" / "summary.json").is_file()


def test_an_arm_written_before_new_config_keys_existed_still_matches(tmp_path):
    # a run folder's config.yaml from an older version lacks keys added since: they take their defaults
    import yaml
    cfg = load_config(None, TINY + ["train.epochs=1"])
    run_compare(cfg, out=tmp_path, arms=("rate_ep",), report=False, log=lambda *a: None)
    saved = tmp_path / "rate_ep-seed0" / "config.yaml"
    tree = yaml.safe_load(saved.read_text())
    del tree["train"]["precision"], tree["data"]["crop_pad_mode"]
    saved.write_text(yaml.safe_dump(tree))
    logs = []
    run_compare(cfg, out=tmp_path, arms=("rate_ep",), report=False, log=logs.append)
    assert "rate_ep-seed0: finished, skipped" in logs


def test_a_report_of_a_half_finished_comparison_lists_the_arms_still_training(tmp_path):
    # a comparison longer than one session: the report covers the finished arms, lists the others
    # apart, and measures again once the set of finished arms has grown
    two, one = load_config(None, TINY), load_config(None, TINY + ["train.epochs=1"])
    quiet = lambda *a: None     # noqa: E731
    run_compare(two, out=tmp_path, arms=("rate_ep",), report=False, log=quiet)
    run_compare(one, out=tmp_path, arms=("bptt",), report=False, log=quiet)      # bptt: 1 of 2 epochs
    logs = []
    rep = run_compare(two, out=tmp_path, arms=("rate_ep", "bptt"), train=False, log=logs.append,
                      results=tmp_path / "published")
    assert set(rep["accuracy"]) == {"rate_ep"} and rep["gaps"] == []
    todo = rep["in_progress"]["bptt-seed0"]
    assert (todo["epochs_done"], todo["epochs_planned"]) == (1, 2) and 0 <= todo["last_test_error"] <= 1
    assert {r["weights"] for r in rep["conversion"]["rows"]} == {"rate_ep"}
    assert "**Still training**" in (tmp_path / "report.md").read_text()
    published = {p.name for p in (tmp_path / "published" / "runs" / "bptt-seed0").iterdir()}
    assert {"config.yaml", "metrics.csv"} <= published and not any(n.endswith(".pt") for n in published)
    run_compare(two, out=tmp_path, arms=("bptt",), report=False, log=quiet)       # bptt resumes to 2 epochs
    logs.clear()
    rep = run_compare(two, out=tmp_path, arms=("rate_ep", "bptt"), train=False, log=logs.append)
    assert rep["in_progress"] == {} and set(rep["accuracy"]) == {"rate_ep", "bptt"}
    # the measurements are extended to the new arm, not redone: the cached rows are kept and the
    # result equals a measurement of both arms from scratch
    assert any("measuring ['bptt']" in line for line in logs)
    assert {r["weights"] for r in rep["conversion"]["rows"]} == {"rate_ep", "bptt"}
    for name in ("gradients", "conversion", "memory"):
        assert [p["arms"] for p in rep[name]["parts"]] == [["rate_ep"], ["bptt"]], name
    assert len(rep["fixed_point"]["parts"]) == 1            # one measurement for all arms, basis unchanged
    assert "- measurement `gradients` (bptt): git" in (tmp_path / "report.md").read_text()
    (tmp_path / "measurements").rename(tmp_path / "measurements.extended")
    again = run_compare(two, out=tmp_path, arms=("rate_ep", "bptt"), train=False, log=quiet)
    strip = lambda m: {k: v for k, v in m.items() if k not in ("provenance", "parts", "arms")}     # noqa: E731
    for name in ("gradients", "conversion", "fixed_point"):
        assert strip(again[name]) == strip(rep[name]), name
    footer = next(line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("- **bptt-seed0**"))
    assert "resumed, trained by 2 processes" in footer      # each process's command and commit
