"""benchmarks/targets.py: each target row follows the numbers in the benchmark JSON files."""
import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _targets():
    spec = importlib.util.spec_from_file_location("targets", ROOT / "benchmarks" / "targets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(d: Path, name: str, payload: dict) -> None:
    prov = {"command": f"python benchmarks/{name}.py", "torch_threads": 1, "load_avg": [0.1, 0.2, 0.3],
            "git_commit": "abc", "date": "2026-01-01"}
    (d / f"{name}.json").write_text(json.dumps({**payload, "provenance": prov}))


def _row(text: str, start: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(f"| {start}"))
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]


def test_targets_read_the_json_files(tmp_path):
    _write(tmp_path, "explicit_vs_autograd", {"rows": [
        {"pool": "max", "speedup": 1.2, "explicit_ms": 100, "autograd_ms": 120},
        {"pool": "avg", "speedup": 1.6, "explicit_ms": 50, "autograd_ms": 80, "ceiling": 2.0}]})
    _write(tmp_path, "relaxation_avg", {"pool": "avg", "weights": None, "end_state_difference": 1e-5,
                                        "paper_fixed": {"T1": 250}, "rows": [
        {"residual": 1e-4, "mode": "sync", "steps": 40, "reached": True},
        {"residual": 1e-4, "mode": "evenodd", "steps": 18, "reached": True}]})
    _write(tmp_path, "relaxation_avg_trained", {"pool": "avg", "weights": "w.pt", "end_state_difference": 1.0,
                                                "paper_fixed": {"T1": 250}, "rows": [
        {"residual": 1e-4, "mode": "sync", "steps": 1000, "reached": False},
        {"residual": 1e-4, "mode": "evenodd", "steps": 200, "reached": True}]})
    _write(tmp_path, "memory", {"rows": [
        {"method": "rate_ep", "T1": 10, "K": None, "peak_bytes": 2 ** 20},
        {"method": "rate_ep", "T1": 100, "K": None, "peak_bytes": 2 ** 20},
        {"method": "bptt", "T1": 100, "K": 25, "peak_bytes": 10 * 2 ** 20}]})
    _targets().main(["--dir", str(tmp_path)])
    text = (tmp_path / "README.md").read_text()
    assert _row(text, "explicit drives ≥ 1.5× the autograd-of-Φ step, max")[1:3] == ["1.200× (100 vs 120 ms)", "no"]
    assert _row(text, "explicit drives ≥ 1.5× the autograd-of-Φ step, avg")[1:3] == [
        "1.600× (50 vs 80 ms); ceiling 2.00× if only convolutions cost", "yes"]
    init = _row(text, "even/odd ≤ ½ the synchronous steps to max\\|Δs\\| < 0.0001, avg pooling, initial")
    assert init[1].startswith("18 vs 40 steps (0.45×), same fixed point") and init[2] == "yes"
    trained = _row(text, "even/odd ≤ ½ the synchronous steps to max\\|Δs\\| < 0.0001, avg pooling, trained")
    assert trained[1] == "even/odd 200 steps; sync does not get there in 1000" and trained[2] == "yes"
    assert _row(text, "early stopping ≤ ½ the paper's fixed T1 = 250, avg pooling, trained")[2] == "no"
    assert _row(text, "rate EP ≤ ⅕ of BPTT's peak memory at K = 25")[1:3] == ["0.10×", "yes"]
    # no iteration.json: reported as not measured, never guessed
    assert _row(text, "within 2× of the measured convolution throughput")[1:3] == ["not measured", "–"]
    assert _row(text, "our fastest schedule vs the paper's")[1] == "not measured on the CPU"
    assert "| relaxation_avg_trained.json | `python benchmarks/relaxation_avg_trained.py` | 1 | 0.10, 0.20, 0.30 |" in text


def test_time_to_error_row_is_the_ratio_of_the_seconds_to_target(tmp_path):
    _write(tmp_path, "time_to_error", {"target": 0.7, "rows": {"paper": {"reached": [3, 3000.0]},
                                                               "fastest": {"reached": [4, 600.0]},
                                                               "short": {"reached": [3, 1000.0]}}})
    _targets().main(["--dir", str(tmp_path)])
    assert _row((tmp_path / "README.md").read_text(), "our fastest schedule vs the paper's")[1:3] == [
        "5.0× (`fastest`: 600 vs 3000 s)", "no"]
    _write(tmp_path, "time_to_error", {"target": 0.7, "rows": {"paper": {"reached": None},
                                                               "fastest": {"reached": [4, 600.0]}}})
    _targets().main(["--dir", str(tmp_path)])
    assert _row((tmp_path / "README.md").read_text(), "our fastest schedule vs the paper's")[1:3] == [
        "target not reached by paper", "no"]
