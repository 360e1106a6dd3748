"""results/export/README.md from the JSON reports ``spiking-ep export`` wrote (no number typed by hand).

    python results/export/table.py results/export/reports --out results/export/README.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from spiking_ep.runinfo import provenance_line

ROWS = [("trained", "ours, as trained"), ("ours_training_profile", "ours, spiking, training profile"),
        ("ours_nir_profile", "ours, spiking, NIR-exact profile"), ("nirtorch", "nirtorch execution of the file"),
        ("snntorch", "snnTorch import"), ("norse", "norse import")]


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def spike_cell(checks: list, dtype: str) -> str:
    for c in checks:
        if c["dtype"] == dtype:
            state = "identical" if c["identical"] else "differ"
            return (f"{state}: {c['mismatched_spikes']:,} of {c['spikes']:,} spikes differ "
                    f"({c['images']} images × {c['steps']} steps), predictions equal {100 * c['predictions_equal']:.1f} %")
    return "– (feedback none: no simulator counterpart)"


def train_cell(r: dict) -> str:
    for c in r.get("verification", {}).get("spike_check", []):
        if "training_profile" in c:
            tp = c["training_profile"]
            return (f"{tp['mismatched_spikes']:,} spikes differ ({100 * tp['entries_equal']:.2f} % of neuron-steps "
                    f"equal), mean rate difference {tp['mean_abs_rate_diff']:.4f} spikes/step")
    return "–"


def importer_cell(r: dict | None) -> str:
    if r is None:
        return "–"
    if r.get("runs"):
        return (f"runs; predictions equal to nirtorch's {100 * r['agreement_with_nirtorch']:.2f} %, summed outputs "
                f"differ by ≤ {r['output_max_abs_diff']:.3g}")
    return f"{'loads, fails to run' if r.get('loads') else 'fails to load'}: `{r.get('error')}`"


def network_section(name: str, reports: list[dict]) -> list[str]:
    reports = sorted(reports, key=lambda r: (r["format"], r["feedback"] != "full"))
    cols = [f"{r['format'].upper()}, feedback {r['feedback']}" for r in reports]
    first = reports[0]
    lines = [f"### {name}", "",
             f"Run `{first['run']}`; neuron {first['neuron']['kind'].upper()} (θ = {first['neuron']['theta']:g}); "
             f"T1 = {first['T1']} steps, readout window {first['window']}; NIR-exact profile changes: "
             f"{', '.join(first['profile_changes']) or 'none'}.", "",
             "| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    row = lambda label, cells: lines.append(f"| {label} | " + " | ".join(cells) + " |")
    row("file size", [f"{r['bytes']:,} bytes" for r in reports])
    row("test images", [str(r.get("verification", {}).get("n_test", "–")) for r in reports])
    for key, label in ROWS:
        row(f"test error: {label}", [pct(r.get("verification", {}).get("test_error", {}).get(key)) for r in reports])
    row("spike check, float64", [spike_cell(r.get("verification", {}).get("spike_check", []), "float64")
                                 if r["format"] == "nir" else "–" for r in reports])
    row("spike check, float32", [spike_cell(r.get("verification", {}).get("spike_check", []), "float32")
                                 if r["format"] == "nir" else "–" for r in reports])
    row("spikes, ours (training profile) vs the file, float64", [train_cell(r) for r in reports])
    row("nirtorch vs ours (NIR-exact), predictions equal",
        [pct(r.get("verification", {}).get("agreement", {}).get("nirtorch_vs_ours_nir_profile")) for r in reports])
    for imp in ("snntorch", "norse"):
        row(f"{imp} import", [importer_cell(r.get("verification", {}).get("importers", {}).get(imp)) for r in reports])
    row("HDF5 round trip", ["weights identical" if r.get("verification", {}).get("roundtrip", {}).get(
        "weights_identical") else "–" for r in reports])
    lines.append("")
    lines += [f"- {r['format'].upper()}, feedback {r['feedback']}: {provenance_line(r['provenance'])}; "
              f"nir {r['provenance']['packages'].get('nir')}, nirtorch {r['provenance']['packages'].get('nirtorch')}, "
              f"snntorch {r['provenance']['packages'].get('snntorch')}, norse {r['provenance']['packages'].get('norse')}"
              for r in reports]
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", help="folder of <file>.json reports")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    by_run: dict[str, list[dict]] = {}
    for path in sorted(Path(args.reports).glob("*.json")):
        r = json.loads(path.read_text())
        by_run.setdefault(Path(r["run"]).name, []).append(r)
    lines = ["# Export to NIR and HDF5 (issue 11)", "",
             "Made by `results/export/run.sh` (trainings, then `spiking-ep export` per network and format); this "
             "table by `results/export/table.py` from the JSON reports in `reports/`; the runs' config, metrics "
             "and summary in `runs/`. docs/export.md explains the graph, the `forward` schedule and the "
             "NIR-exact profile. Test errors are on the first *test images* of the MNIST test set; the spike check "
             "steps our simulator (NIR-exact profile) and the nirtorch execution of the file in lockstep.", ""]
    for name, reports in by_run.items():
        lines += network_section(name, reports)
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
