"""Training end to end on the embedded MNIST sample: learning, run folders, determinism,
resume after SIGKILL/SIGTERM, divergence and bad-input handling."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rate_ref as R
from spiking_ep import train as T
from spiking_ep.checkpoint import CheckpointError, load_weights
from spiking_ep.cli import main
from spiking_ep.config import ConfigError, load_config

SMALL = [
    "data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
    "model.layers.0.features=64", "train.batch_size=50", "method.T1=6", "method.T2=6",
]


def cfg_for(tmp_path, *extra, train_subset=1500, epochs=2):
    return load_config(None, SMALL + [f"data.train_subset={train_subset}", "data.test_subset=500",
                                      f"train.epochs={epochs}", f"train.out_dir={tmp_path}"] + list(extra))


def metrics(run_dir):
    with open(Path(run_dir) / "metrics.csv") as f:
        # timings and machine load differ between runs; everything else must not
        return [{k: v for k, v in r.items() if k not in ("seconds", "load_avg_1m")} for r in csv.DictReader(f)]


def weights(run_dir):
    return torch.load(Path(run_dir) / "weights.pt", weights_only=True)


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_short_training_learns_and_run_folder_describes_itself(tmp_path):
    cfg = cfg_for(tmp_path, "train.run_name=learn", train_subset=6000, epochs=2)
    summary = T.train(cfg, log=lambda *a: None)
    run = tmp_path / "learn"
    assert summary["final_test_error"] <= 0.12  # chance is 0.90
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.csv", "summary.json", "weights.pt", "checkpoint.pt"}
    rows = metrics(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_error"]) < float(rows[0]["train_error"])
    s = json.loads((run / "summary.json").read_text())
    for key in ("seed", "versions", "device", "git_commit", "data_source", "seconds_total", "hardware"):
        assert key in s
    assert "embedded MNIST sample" in s["data_source"]
    assert load_config(run / "config.yaml") == cfg
    # weights-only checkpoint reloads into a fresh network and gives the same test error
    net = R.build_network(cfg.model)
    load_weights(net, run)


@pytest.mark.parametrize("method", ["ep_one_sided", "ep_random_sign", "bptt", "evenodd", "squared_error", "dropout"])
def test_other_methods_train(tmp_path, method):
    extra = {"ep_one_sided": ["method.estimator=one_sided"], "ep_random_sign": ["method.estimator=random_sign"],
             "bptt": ["method.name=bptt", "method.K=4"], "evenodd": ["method.mode=evenodd"],
             "squared_error": ["model.loss=squared_error", "model.layers=[{type: dense, features: 64}, {type: dense, features: 10}]",
                               "optim.lrs=[0.05, 0.02]"],
             "dropout": ["model.layers.0.dropout=0.2"]}[method]
    summary = T.train(cfg_for(tmp_path, *extra, epochs=1), log=lambda *a: None)
    assert summary["final_test_error"] < 0.5


def test_training_stops_at_the_first_epoch_that_reaches_the_test_error_target(tmp_path):
    free = T.train(cfg_for(tmp_path, "train.run_name=free", epochs=3), log=lambda *a: None)
    errors = [float(r["test_error"]) for r in metrics(free["run_dir"])]
    goal = errors[1]           # reached at epoch 2 at the latest: the run must stop there, not run to 3
    first = next(i for i, e in enumerate(errors) if e <= goal) + 1
    s = T.train(cfg_for(tmp_path, "train.run_name=goal", f"train.stop_at_test_error={goal}", epochs=3),
                log=lambda *a: None)
    assert s["epochs"] == first < 3
    assert s["stopped_at_test_error"] == {"target": goal, "epoch": first}
    assert metrics(s["run_dir"]) == metrics(free["run_dir"])[:first]   # the same epochs, then the end
    with pytest.raises(ConfigError, match="stop_at_test_error"):
        cfg_for(tmp_path, "train.stop_at_test_error=1.5")


def test_same_seed_gives_identical_metrics_and_weights(tmp_path):
    a = T.train(cfg_for(tmp_path, "train.run_name=a", "method.estimator=random_sign", "data.crop_padding=2",
                        "model.layers.0.dropout=0.1"), log=lambda *a: None)
    b = T.train(cfg_for(tmp_path, "train.run_name=b", "method.estimator=random_sign", "data.crop_padding=2",
                        "model.layers.0.dropout=0.1"), log=lambda *a: None)
    assert metrics(a["run_dir"]) == metrics(b["run_dir"])
    assert_same_weights(a["run_dir"], b["run_dir"])


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "metrics.csv").write_text("precious\n")
    code = main(["train", "--set", f"train.out_dir={tmp_path}", "--set", "train.run_name=taken"] + sum((["--set", s] for s in SMALL), []))
    assert code == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and "taken" in err
    # nothing was written into (or next to) the existing folder
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["metrics.csv"]
    assert (tmp_path / "taken" / "metrics.csv").read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def _cli(tmp_path, *args, threads=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)   # caps the default (train.threads null) thread count
    return subprocess.Popen([sys.executable, "-m", "spiking_ep.cli", "train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


RESUME_ARGS = SMALL + ["data.train_subset=3000", "data.test_subset=300", "train.epochs=2",
                       "train.checkpoint_every_batches=4", "method.estimator=random_sign", "data.crop_padding=2",
                       "model.layers.0.dropout=0.1", "method.T1=12", "method.T2=12"]


def _wait_for_checkpoint(run_dir, proc, timeout=120):
    t0 = time.time()
    while not (run_dir / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def _sets(args):
    return sum((["--set", a] for a in args), [])


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    # One thread for the first two processes; the resumed one is left free to take both cores (as on a quiet
    # machine) and must keep the run's one thread: the thread count changes the float sums and so the run.
    ref = _cli(tmp_path, *_sets(RESUME_ARGS + ["train.out_dir=.", "train.run_name=ref"]), threads=1)
    assert ref.wait(300) == 0, ref.communicate()
    victim = _cli(tmp_path, *_sets(RESUME_ARGS + ["train.out_dir=.", "train.run_name=killed"]), threads=1)
    _wait_for_checkpoint(tmp_path / "killed", victim)
    time.sleep(0.3)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    ck = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert (ck["epoch"], ck["batch"]) != (2, 0), "the run finished before it could be killed"
    resumed = _cli(tmp_path, "--resume", "killed")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming" in out
    assert ck["torch_threads"] == 1 and "1 torch thread(s), as when the run started" in out
    assert metrics(tmp_path / "killed") == metrics(tmp_path / "ref")
    assert_same_weights(tmp_path / "killed", tmp_path / "ref")
    # the summary names both processes that trained the run, and where the second took over
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    first, second = summary["segments"]
    assert first["from"] == {"epoch": 1, "batch": 0} and "--resume" not in first["command"]
    assert second["from"] == {"epoch": ck["epoch"] + 1, "batch": ck["batch"]} and "--resume" in second["command"]
    assert "segments" not in json.loads((tmp_path / "ref" / "summary.json").read_text())
    from spiking_ep.report import read_run, run_footer
    assert "resumed, trained by 2 processes: from epoch 1, batch 0" in run_footer(read_run(tmp_path / "killed"))


def test_sigterm_checkpoints_and_exits_cleanly(tmp_path):
    args = RESUME_ARGS + ["train.out_dir=.", "train.run_name=term", "train.checkpoint_every_batches=0",
                          "train.epochs=20"]
    proc = _cli(tmp_path, *_sets(args))
    t0 = time.time()
    while not (tmp_path / "term" / "config.yaml").exists():  # written once training starts
        assert proc.poll() is None and time.time() - t0 < 120
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err and "Traceback" not in err
    assert (tmp_path / "term" / "checkpoint.pt").exists()
    ck = torch.load(tmp_path / "term" / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] < 20
    del ck["segments"]      # as an older version wrote it: the unknown part is said to be unknown
    torch.save(ck, tmp_path / "term" / "checkpoint.pt")
    resumed = _cli(tmp_path, "--resume", "term", *_sets(["train.epochs=1"]))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    old, new = json.loads((tmp_path / "term" / "summary.json").read_text())["segments"]
    assert "not recorded" in old["note"] and old["until"] == new["from"] == {"epoch": ck["epoch"] + 1,
                                                                             "batch": ck["batch"]}


def test_divergence_stops_with_named_layer_and_keeps_checkpoint(tmp_path, capsys):
    code = main(["train"] + _sets(SMALL + ["data.train_subset=500", "data.test_subset=100", "train.epochs=3",
                                           f"train.out_dir={tmp_path}", "train.run_name=div", "train.dtype=float64",
                                           "optim.lrs=[1.0e+300, 1.0e+300]", "optim.momentum=0.0"]))
    err = capsys.readouterr().err
    assert code == 3, err
    assert "non-finite" in err and "the last good checkpoint is kept" in err
    assert any(w in err for w in ("layer", "parameter"))


def test_nonfinite_batch_can_be_skipped(tmp_path, monkeypatch):
    real = T.compute_gradients
    calls = {"n": 0}

    def flaky(net, x, y, cfg, gen, masks, start=None):
        grads, state, extra = real(net, x, y, cfg, gen, masks, start)
        calls["n"] += 1
        if calls["n"] == 3:
            grads = {k: torch.full_like(g, float("nan")) for k, g in grads.items()}
        return grads, state, extra

    monkeypatch.setattr(T, "compute_gradients", flaky)
    s = T.train(cfg_for(tmp_path, "train.on_nonfinite=skip", "train.run_name=skip", epochs=1), log=lambda *a: None)
    assert int(metrics(s["run_dir"])[0]["skipped_batches"]) == 1
    monkeypatch.setattr(T, "compute_gradients", flaky)
    calls["n"] = 0
    with pytest.raises(T.Divergence, match="non-finite gradient for parameter 'layers.0.weight'.*epoch 1, batch 3"):
        T.train(cfg_for(tmp_path, "train.run_name=stop", epochs=1), log=lambda *a: None)


def test_divergence_message_names_phase_layer_and_step():
    cfg = load_config(None, SMALL)
    net = R.build_network(cfg.model)
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        net.readout.weight[0, 0] = float("nan")
    grads, state, extra = T.compute_gradients(net, x, y, cfg, torch.Generator(), None)
    with pytest.raises(T.Divergence, match=r"layer 1 at step 1 of the nudged \(beta=\+0.5\) phase"):
        T.check_states(net, x, y, cfg, extra["states"], None, "test")


def test_checkpoint_from_another_architecture_is_refused(tmp_path, capsys):
    s = T.train(cfg_for(tmp_path, "train.run_name=w", epochs=1), log=lambda *a: None)
    cfg = load_config(None, SMALL + ["model.layers.0.features=32"])
    with pytest.raises(CheckpointError, match=r"another architecture.*layers.0.weight' has shape \(64, 784\), the model needs \(32, 784\)"):
        load_weights(R.build_network(cfg.model), s["run_dir"])
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt cannot be read"):
        load_weights(R.build_network(cfg.model), bad)


def test_evaluate_command(tmp_path, capsys):
    s = T.train(cfg_for(tmp_path, "train.run_name=ev", epochs=1), log=lambda *a: None)
    cfgfile = Path(s["run_dir"]) / "config.yaml"
    capsys.readouterr()
    assert main(["evaluate", str(cfgfile), "--weights", s["run_dir"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"][0]["test_error"] == pytest.approx(s["final_test_error"])
    # the same weights as a spiking network, swept over time steps, with a table and a plot
    md, png = tmp_path / "sweep.md", tmp_path / "sweep.png"
    assert main(["evaluate", str(cfgfile), "--weights", s["run_dir"], "--set", "model.kind=spiking",
                 "--steps", "5,40", "--out", str(md), "--plot", str(png), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [r["T1"] for r in rows] == [5, 40]
    assert all(r["spikes_per_neuron_step"] > 0 and r["synops_per_sample"] > 0 for r in rows)
    assert rows[1]["test_error"] <= rows[0]["test_error"] + 0.02
    assert "synaptic ops / sample" in md.read_text() and png.stat().st_size > 0
    assert main(["evaluate", str(cfgfile), "--weights", s["run_dir"], "--steps", "5,x"]) == 2


def test_input_shape_mismatch_is_named_before_training(tmp_path, capsys):
    code = main(["train"] + _sets(SMALL + [f"train.out_dir={tmp_path}", "model.input_shape=[3,32,32]"]))
    err = capsys.readouterr().err
    assert code == 2 and "model.input_shape: [3, 32, 32] does not match the mnist images [1, 28, 28]" in err


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no config.yaml there" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text((Path(__file__).parents[1] / "configs/mnist_fc.yaml").read_text())
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "checkpoint.pt does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_reduced_precision_training_runs_and_keeps_float32_states(tmp_path, precision):
    # on the CPU tf32 changes nothing; bf16 autocasts the drives, the states stay float32
    cfg = load_config(None, SMALL + ["data.train_subset=100", "data.test_subset=50", "train.epochs=1",
                                     f"train.precision={precision}", f"train.out_dir={tmp_path}"])
    s = T.train(cfg, log=lambda *a: None)
    assert 0.0 <= s["final_test_error"] <= 1.0
    import rate_ref as R
    from spiking_ep import accel
    net = R.build_network(cfg.model)
    x = torch.rand(4, 1, 28, 28)
    with accel.precision(precision, torch.device("cpu")):
        state = R.relax(net, x, steps=3)
    assert all(t.dtype == torch.float32 for t in state)


def test_training_hands_the_crop_padding_mode_to_the_augmentation(tmp_path, monkeypatch):
    from spiking_ep import data as D
    seen = []
    real = D.augment

    def spy(*a, **k):
        seen.append(k.get("crop_pad_mode"))
        return real(*a, **k)
    monkeypatch.setattr(D, "augment", spy)
    cfg = load_config(None, SMALL + ["data.train_subset=100", "data.test_subset=50", "train.epochs=1",
                                     "data.crop_padding=2", "data.crop_pad_mode=edge", f"train.out_dir={tmp_path}"])
    T.train(cfg, log=lambda *a: None)
    assert seen and set(seen) == {"edge"}
