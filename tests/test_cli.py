"""The command line: --help / --version / python -m spiking_ep, and ``evaluate RUN_DIR``."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from spiking_ep import __version__
from spiking_ep import train as T
from spiking_ep.cli import build_parser, main
from spiking_ep.config import load_config

SMALL = [
    "data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
    "model.layers.0.features=32", "train.batch_size=50", "method.T1=6", "method.T2=6", "train.epochs=1",
    "data.train_subset=500",
]


def test_help_has_no_rst_markup_and_version_is_printed(capsys):
    text = build_parser().format_help()
    assert "``" not in text and "spiking-ep train|evaluate" in text
    for command in ("train", "evaluate", "report", "gdu", "compare", "export", "import"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "``" not in capsys.readouterr().out, command
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"spiking-ep {__version__}"


def test_python_dash_m_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "spiking_ep", "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"spiking-ep {__version__}"
    bad = subprocess.run([sys.executable, "-m", "spiking_ep", "evaluate", "/nonexistent/run"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "/nonexistent/run does not exist" in bad.stderr


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-epoch run trained on a 500-image subset and tested on the first 300 test images."""
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, SMALL + ["data.test_subset=300", f"train.out_dir={out}", "train.run_name=r"])
    return T.train(cfg, log=lambda *a: None)


def test_evaluate_a_run_folder_uses_its_config_and_data_subset(run, capsys):
    capsys.readouterr()
    assert main(["evaluate", run["run_dir"], "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    # the run's own config.yaml: its test subset, and the run's final test error
    assert res["n_test"] == 300 and res["test_subset"] == 300
    assert res["config"] == str(Path(run["run_dir"]) / "config.yaml")
    assert res["provenance"]["command"] and res["provenance"]["git_commit"]   # the sweep says how it was made
    assert res["results"][0]["test_error"] == pytest.approx(run["final_test_error"])
    # the default output is a table a person reads
    assert main(["evaluate", run["run_dir"]]) == 0
    text = capsys.readouterr().out
    assert "test images: 300 (data.test_subset = 300" in text and "test error" in text
    assert f"{100 * run['final_test_error']:.2f} %" in text
    assert not text.lstrip().startswith("{")


def test_evaluate_overrides_and_the_older_form(run, tmp_path, capsys):
    capsys.readouterr()
    # --set on top of the run's config: a different test subset, and the weights as a spiking network
    assert main(["evaluate", run["run_dir"], "--set", "data.test_subset=100", "--set", "model.kind=spiking",
                 "--steps", "5,20", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_test"] == 100 and res["model_kind"] == "spiking" and [r["T1"] for r in res["results"]] == [5, 20]
    assert "synaptic ops/sample" in (main(["evaluate", run["run_dir"], "--set", "model.kind=spiking",
                                           "--steps", "5"]) == 0 and capsys.readouterr().out)
    # --config replaces the run's config (here: the same network on 50 test images)
    other = tmp_path / "other.yaml"
    other.write_text((Path(run["run_dir"]) / "config.yaml").read_text().replace("test_subset: 300",
                                                                                "test_subset: 50"))
    assert main(["evaluate", run["run_dir"], "--config", str(other), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_test"] == 50 and res["config"] == str(other)
    # the older form: a config file with --weights
    assert main(["evaluate", str(other), "--weights", run["run_dir"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_test"] == 50


@pytest.mark.parametrize("args, match", [
    (["{empty}"], "no config.yaml there (is it a run folder?); pass --config CONFIG"),
    (["{config}"], "--weights: evaluating the config file"),
    (["{config}", "--weights", "{run}", "--config", "{config}"], "names another; give one config"),
    (["{run}", "--steps", "5,x"], "--steps '5,x': expected comma-separated whole numbers"),
    (["{run}", "--steps", "0"], "time steps must be ≥ 1"),
    (["{run}", "--weights", "{empty}"], "weights.pt"),
])
def test_evaluate_errors_are_named(run, tmp_path, capsys, args, match):
    (tmp_path / "empty").mkdir()
    where = {"empty": str(tmp_path / "empty"), "config": str(Path(run["run_dir"]) / "config.yaml"),
             "run": run["run_dir"]}
    assert main(["evaluate"] + [a.format(**where) for a in args]) == 2
    err = capsys.readouterr().err
    assert "spiking-ep: error:" in err and match in err, err
