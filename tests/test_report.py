"""spiking-ep report: the tables hold exactly the runs' numbers, the footer says how they were made,
and the plot keeps its legend clear of the curves."""
import csv
import json
from pathlib import Path

import pytest

from spiking_ep import report as RP
from spiking_ep import train as T
from spiking_ep.cli import main
from spiking_ep.config import dump_config, load_config

SMALL = ["data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
         "model.layers.0.features=32", "train.batch_size=50", "method.T1=6", "method.T2=6"]


def fake_run(root, name, test_errors, *, extra=(), spiking=False, commit="0123abcd", seconds=123.0):
    """A run folder as train writes it, with known per-epoch numbers."""
    d = Path(root) / name
    d.mkdir(parents=True)
    sets = SMALL + (["model.kind=spiking", "spiking.rule=stdp"] if spiking else []) + list(extra)
    (d / "config.yaml").write_text(dump_config(load_config(None, sets)))
    cols = ["epoch", "train_error", "test_error", "train_loss", "test_loss", "lr_0", "seconds"]
    if spiking:
        cols.append("spikes_per_neuron_step")
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for e, err in enumerate(test_errors, 1):
            row = {"epoch": e, "train_error": err / 2, "test_error": err, "train_loss": 1 / e, "test_loss": 2 / e,
                   "lr_0": 0.1, "seconds": 10.0}
            if spiking:
                row["spikes_per_neuron_step"] = 0.0123 * e
            w.writerow(row)
    (d / "summary.json").write_text(json.dumps({
        "command": f"spiking-ep train --set train.run_name={name}", "git_commit": commit,
        "data_source": "embedded MNIST sample", "n_train": 500, "n_test": 300, "hardware": "a CPU, 2 cores",
        "device": "cpu", "versions": {"python": "3.11", "torch": "2.x", "spiking-ep": "0.1.0"},
        "seconds_total": seconds, "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:02:03+00:00",
        "machine_at_start": {"torch_threads": 1, "load_avg": 1.5, "cores": 2}, "machine_at_end": {"load_avg": 1.7},
    }))
    return d


def table_row(text, name):
    """Cells of the main table's row for run ``name``."""
    line = next(l for l in text.splitlines() if l.startswith(f"| {name} |") and "%" in l)
    return [c.strip() for c in line.strip("|").split("|")]


def test_table_numbers_are_the_runs_metrics(tmp_path):
    a = fake_run(tmp_path, "a", [0.5, 0.2, 0.25], seconds=180.0)
    b = fake_run(tmp_path, "b", [0.4, 0.35], spiking=True)
    text = RP.report([str(a), str(b)], title="T", out=None, plot_path=None)
    for d in (a, b):
        rows = list(csv.DictReader(open(d / "metrics.csv")))
        errs = [float(r["test_error"]) for r in rows]
        cells = table_row(text, d.name)
        assert cells[3] == str(len(rows))                                         # epochs
        assert cells[4] == f"{100 * errs[-1]:.2f} %"                              # final test error
        assert cells[5] == f"{100 * min(errs):.2f} %"                             # best test error
        assert cells[6] == f"{100 * float(rows[-1]['train_error']):.2f} %"        # final train error
        s = json.loads((d / "summary.json").read_text())
        assert cells[7] == f"{s['seconds_total'] / 60:.1f} min"
        per_epoch = next(l for l in text.splitlines() if l.startswith(f"**{d.name}**"))
        assert per_epoch.endswith(", ".join(f"{100 * e:.2f}" for e in errs))
    assert table_row(text, "a")[4:6] == ["25.00 %", "20.00 %"]                    # final ≠ best is kept apart
    assert "spiking EP symmetric" in table_row(text, "b")[1] and "rule stdp" in table_row(text, "b")[1]
    # last-epoch extras: b's spike rate, a has none
    extras = text.split("Last-epoch extras:")[1]
    assert "| b | 0.0246 |" in extras and "| a | – |" in extras


def test_footer_has_command_commit_data_and_hardware(tmp_path):
    a = fake_run(tmp_path, "a", [0.5], commit="0123abcd")
    b = fake_run(tmp_path, "b", [0.5], commit="4567ef01+dirty")
    text = RP.report([str(a), str(b)], title="T", out=None, plot_path=None)
    footer = text.split("## How these numbers were made")[1]
    line_a = next(l for l in footer.splitlines() if l.startswith("- **a**"))
    assert "`spiking-ep train --set train.run_name=a`" in line_a and "git 0123abcd;" in line_a
    assert "embedded MNIST sample (500 train / 300 test)" in line_a and "a CPU, 2 cores (cpu)" in line_a
    assert "load average 1.5 at start, 1.7 at end" in line_a and "torch 2.x" in line_a
    line_b = next(l for l in footer.splitlines() if l.startswith("- **b**"))
    assert "4567ef01+dirty (**run from a tree with uncommitted changes**)" in line_b


def test_plot_is_written_with_its_legend_outside_the_axes_and_whole_epochs(tmp_path):
    long = ["method.warm_start=persistent", "method.eval_T1=40", "train.run_name=" + "x" * 40]
    runs = [RP.read_run(fake_run(tmp_path, f"run-with-a-long-name-{i}", [0.5, 0.4, 0.3, 0.25, 0.2][:3 + i],
                                 spiking=bool(i % 2), extra=long)) for i in range(3)]
    fig = RP.curves_figure(runs, "title")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert len(legend.get_texts()) == 3
    # inside the figure (nothing cut off) and clear of every panel, tick labels included
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height
    for ax in fig.axes:
        assert not box.overlaps(ax.get_tightbbox(renderer)), ax.get_title()
    # epochs are whole numbers on the axes
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    png = tmp_path / "curves.png"
    RP.plot(runs, png, "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_on_a_trained_run(tmp_path, capsys):
    s = T.train(load_config(None, SMALL + ["train.epochs=2", "data.train_subset=300", "data.test_subset=200",
                                           f"train.out_dir={tmp_path}", "train.run_name=real"]), log=lambda *a: None)
    md, png = tmp_path / "table.md", tmp_path / "curves.png"
    assert main(["report", s["run_dir"], "--out", str(md), "--plot", str(png), "--title", "Real",
                 "--raw", str(tmp_path / "raw")]) == 0
    assert sorted(p.name for p in (tmp_path / "raw" / "real").iterdir()) == ["config.yaml", "metrics.csv", "summary.json"]
    printed = capsys.readouterr().out
    text = md.read_text()
    assert printed.strip() == text.strip() and text.startswith("# Real")
    cells = table_row(text, "real")
    assert cells[3] == "2" and cells[4] == f"{100 * s['final_test_error']:.2f} %"
    assert cells[5] == f"{100 * s['best_test_error']:.2f} %"
    assert "![curves](curves.png)" in text and png.stat().st_size > 0
    footer = text.split("## How these numbers were made")[1]
    assert json.loads((Path(s["run_dir"]) / "summary.json").read_text())["git_commit"] in footer


def test_report_of_a_folder_that_is_not_a_run_is_named(tmp_path, capsys):
    (tmp_path / "nope").mkdir()
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "nope/metrics.csv is missing (is" in capsys.readouterr().err


@pytest.mark.parametrize("sets, expected", [
    ([], "EP symmetric (β=0.5, T1=6, T2=6)"),
    (["method.name=bptt", "method.K=3"], "BPTT (T1=6, K=3)"),
    (["model.kind=spiking", "method.warm_start=persistent"], "spiking EP symmetric (β=0.5, T1=6, T2=6), rule rates, "
                                                             "sync, count rates, warm start persistent"),
])
def test_describe_method(sets, expected):
    import yaml
    assert RP.describe_method(yaml.safe_load(dump_config(load_config(None, SMALL + sets)))) == expected


def test_dirty_flag_ignores_results_outputs_but_not_code(tmp_path):
    import subprocess

    from spiking_ep.runinfo import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)
    (tmp_path / "results" / "x" / "runs" / "a").mkdir(parents=True)
    files = {"code.py": "x = 1\n", "results/x/README.md": "| a |\n", "results/x/run.sh": "echo\n",
             "results/x/runs/a/metrics.csv": "epoch\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert clean and not clean.endswith("+dirty")
    # a results script's own outputs (tables, raw run files) do not make its later runs dirty
    (tmp_path / "results/x/README.md").write_text("| b |\n")
    (tmp_path / "results/x/runs/a/metrics.csv").write_text("epoch\n1\n")
    assert git_commit(tmp_path) == clean
    # a changed script or code does
    (tmp_path / "results/x/run.sh").write_text("echo changed\n")
    assert git_commit(tmp_path) == clean + "+dirty"
    git("checkout", "-q", "results/x/run.sh")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"
