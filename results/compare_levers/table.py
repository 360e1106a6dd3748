"""Markdown table of the lever runs (results/compare_levers/run.sh), generated from their run folders.

Copies each run's config.yaml, metrics.csv and summary.json into results/compare_levers/runs/<name>/
and prints the table; every number comes from those files.
Usage: python results/compare_levers/table.py RUNS_DIR > results/compare_levers/README.md
"""
import sys
from pathlib import Path

from spiking_ep.report import collect_raw, read_run, run_footer

HERE = Path(__file__).resolve().parent
ORDER = ["rate_sync", "rate_evenodd", "rate_evenodd_tol", "rate_evenodd_tol_warm", "spk_evenodd_charge",
         "spk_evenodd_count", "spk_sync_charge", "spk_evenodd_charge_warm_T1_20", "spk_evenodd_charge_T1_20"]


def main(runs_dir: str) -> None:
    runs = [read_run(d) for d in sorted(Path(runs_dir).iterdir()) if (d / "summary.json").is_file()]
    collect_raw([r["dir"] for r in runs], HERE / "runs")
    print("# Speed levers for the CIFAR-10 compare preset: time and accuracy\n")
    batch = "/".join(sorted({str(r["config"]["train"]["batch_size"]) for r in runs}))
    print(f"Each run: CIFAR-10, 10,000 training / 2,000 test images, 2 epochs, batch {batch}, conv 32-64-128 with "
          "average pooling, one torch thread (`bash results/compare_levers/run.sh`). Test error after epoch 2 on "
          "the 2,000 test images (binomial standard error ≈ 1 point); s/epoch is the training time of each "
          "epoch (evaluation excluded); steps are the mean steps a phase used (early stopping) per epoch.\n")
    print("| run | kind | mode | T1 / T2 | tol | warm start | rates | test error | s / epoch | load avg | steps free / nudged |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        c, m, rows = r["config"], r["config"]["method"], r["rows"]
        steps = " → ".join(f"{x['steps_free']:.1f} / {x['steps_plus']:.1f}" for x in rows if "steps_free" in x) or "–"
        kind = c["model"]["kind"]
        secs = " / ".join(f"{x['seconds']:.0f}" for x in rows)
        loads = " / ".join(f"{x['load_avg_1m']:.1f}" for x in rows)
        rates = c["spiking"]["rate_estimate"] if kind == "spiking" else "–"
        print(f"| {r['name']} | {kind} | {m['mode']} | {m['T1']} / {m['T2']} | {m.get('tol') or '–'} | "
              f"{m.get('warm_start', 'none')} | {rates} | {100 * rows[-1]['test_error']:.2f} % | {secs} | {loads} | {steps} |")
    missing = [n for n in ORDER if n not in {r["name"] for r in runs}]
    if missing:
        print(f"\nNot run yet (run.sh continues them): {', '.join(missing)}.")
    print("\nTimings: each run had one torch thread, but the machine's 2 cores were shared with other jobs "
          "(the load column: 1-minute load average at each epoch's end), so seconds compare only between runs of "
          "similar load; the steps a phase used do not depend on the load.")
    print("\n## How these numbers were made\n")
    for r in runs:
        print(run_footer(r))


if __name__ == "__main__":
    main(sys.argv[1])
