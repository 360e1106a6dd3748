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
