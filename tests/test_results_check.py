"""results/check.py: every committed table agrees with the raw run files beside it."""
import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("results_check", ROOT / "results" / "check.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def test_committed_tables_agree_with_their_raw_run_files(capsys):
    assert check.main(str(ROOT / "results")) == 0, capsys.readouterr().out


def test_a_wrong_number_in_a_table_is_caught(tmp_path):
    run = tmp_path / "demo" / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,train_error,test_error\n1,0.5,0.4\n2,0.3,0.25\n")
    table = "| run | final test error | best test error | final train error |\n|---|---|---|---|\n"
    (tmp_path / "demo" / "README.md").write_text(table + "| r1 | 25.00 % | 25.00 % | 30.00 % |\n")
    assert check.main(str(tmp_path)) == 0
    (tmp_path / "demo" / "README.md").write_text(table + "| r1 | 24.00 % | 25.00 % | 30.00 % |\n")
    assert check.main(str(tmp_path)) == 1
    shutil.rmtree(run)
    (tmp_path / "demo" / "README.md").write_text(table + "| r1 | 25.00 % | 25.00 % | 30.00 % |\n")
    assert check.main(str(tmp_path)) == 0      # no raw files: listed as not traceable, nothing to compare


def test_per_epoch_errors_in_a_benchmark_folder_s_raw_runs_are_checked(tmp_path):
    run = tmp_path / "bench" / "speed_runs" / "paper"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,train_error,test_error\n1,0.5,0.771\n2,0.3,0.704\n")
    head = "| schedule | seconds | test error by epoch (%) |\n|---|---|---|\n"
    md = tmp_path / "bench" / "speed.md"
    md.write_text(head + "| paper | 12 | 77.1, 70.4 |\n")
    assert check.main(str(tmp_path)) == 0
    for wrong in ("77.1, 70.6", "77.1"):        # a wrong epoch, a missing epoch
        md.write_text(head + f"| paper | 12 | {wrong} |\n")
        assert check.main(str(tmp_path)) == 1


def test_a_comparison_report_s_arms_still_training_are_checked_too(tmp_path):
    import json
    run = tmp_path / "cmp" / "runs" / "bptt-seed0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,train_error,test_error\n1,0.5,0.4\n2,0.3,0.35\n")
    rep = {"accuracy": {}, "in_progress": {"bptt-seed0": {
        "last_test_error": 0.35, "best_test_error": 0.35, "last_train_error": 0.3}}}
    (tmp_path / "cmp" / "report.json").write_text(json.dumps(rep))
    head = ("| arm | run | epochs done / planned | last test error | best test error | last train error |\n"
            "|---|---|---|---|---|---|\n")
    md = tmp_path / "cmp" / "report.md"
    md.write_text(head + "| rate BPTT | bptt-seed0 | 2 / 6 | 35.00 % | 35.00 % | 30.00 % |\n")
    assert check.main(str(tmp_path)) == 0
    md.write_text(head + "| rate BPTT | bptt-seed0 | 2 / 6 | 34.00 % | 35.00 % | 30.00 % |\n")
    assert check.main(str(tmp_path)) == 1
    md.write_text(head + "| rate BPTT | bptt-seed0 | 2 / 6 | 35.00 % | 35.00 % | 30.00 % |\n")
    rep["in_progress"]["bptt-seed0"]["last_test_error"] = 0.4
    (tmp_path / "cmp" / "report.json").write_text(json.dumps(rep))
    assert check.main(str(tmp_path)) == 1


def test_the_cifar10_targets_say_met_or_missed_by_how_much():
    spec_t = importlib.util.spec_from_file_location("cifar_targets", ROOT / "results" / "compare_cifar10" / "targets.py")
    targets = importlib.util.module_from_spec(spec_t)
    spec_t.loader.exec_module(targets)
    acc = {"rate_ep": {"mean_final_test_error": 0.4475, "se": 0.005}}
    gaps = [{"arm": "spiking_rates", "ref": "rate_ep", "gap_points": 1.99, "pm_points": 0.7},
            {"arm": "spiking_stdp", "ref": "rate_ep", "gap_points": 3.5, "pm_points": 0.7}]
    todo = {"spiking_bptt-seed0": {"epochs_done": 2, "epochs_planned": 6, "last_test_error": 0.5}}
    rows = {r[0]: r[1:] for r in targets.target_rows({"accuracy": acc, "gaps": gaps, "in_progress": todo})}
    assert rows["rate EP ≤ 30 % test error"] == ("44.75 % ± 0.50", "missed by 14.75 points")
    assert rows["spiking EP (rates) within 2 points of rate EP"][1] == "met"
    assert rows["spiking EP (stdp) within 3 points of rate EP"][1] == "missed by 0.50 points"
    assert rows["spiking BPTT reported beside them"] == ("training: 2 of 6 epochs, 50.00 % so far", "not yet")
    assert rows["rate BPTT reported beside them"] == ("no epoch finished yet", "not yet")
    grads = {"rows": [{"epoch": e, "method": m, "ref": ref, "layer": la, "cosine": c}
                      for e, c0 in ((0, 0.5), (6, 0.9)) for m, ref, c in (("spiking_rates", "bptt", c0),
                                                                          ("spiking_rates", "rate_ep", -1.0))
                      for la in ("layer1", "readout")]}
    table = targets.gradient_rows({"accuracy": {}, "gradients": grads})
    assert table[0] == "| arm | layer1, epoch 0 | readout, epoch 0 | layer1, epoch 6 | readout, epoch 6 |"
    assert table[2] == "| spiking_rates | 0.500 | 0.500 | 0.900 | 0.900 |"     # only the BPTT reference


def test_a_grouped_table_s_seeds_and_means_are_checked(tmp_path):
    for seed, (test, train) in enumerate(((0.010, 0.002), (0.012, 0.004))):
        run = tmp_path / "beat" / "runs" / f"mnist_conv_seed{seed}"
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text(f"epoch,train_error,test_error\n1,0.5,0.4\n2,{train},{test}\n")
    head = ("| network | runs | final test error, mean ± std over seeds | per seed | final train error (mean) |\n"
            "|---|---|---|---|---|\n")
    md = tmp_path / "beat" / "README.md"
    md.write_text(head + "| mnist_conv: spiking EP | 2 | 1.10 % ± 0.14 | 1.00 %, 1.20 % | 0.30 % |\n")
    assert check.main(str(tmp_path)) == 0
    for wrong in ("| mnist_conv: spiking EP | 2 | 1.05 % ± 0.14 | 1.00 %, 1.20 % | 0.30 % |\n",
                  "| mnist_conv: spiking EP | 2 | 1.10 % ± 0.14 | 1.20 %, 1.00 % | 0.30 % |\n",
                  "| mnist_conv: spiking EP | 2 | 1.10 % ± 0.14 | 1.00 % | 0.30 % |\n",
                  "| mnist_conv: spiking EP | 2 | 1.10 % ± 0.14 | 1.00 %, 1.20 % | 0.40 % |\n"):
        md.write_text(head + wrong)
        assert check.main(str(tmp_path)) == 1, wrong
