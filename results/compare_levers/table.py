"""Markdown table of the lever runs (results/compare_levers/run.sh), generated from their run folders.

Copies each run's config.yaml, metrics.csv and summary.json into results/compare_levers/runs/<name>/
and prints the table; every number comes from those files.
Usage: python results/compare_levers/table.py RUNS_DIR > results/compare_levers/README.md
"""
import sys
from pathlib import Path

from spiking_ep.report import collect_raw, read_run, run_footer

HERE = Path(__file__).resolve().parent


def main(runs_dir: str) -> None:
    runs = [read_run(d) for d in sorted(Path(runs_dir).iterdir()) if (d / "summary.json").is_file()]
    collect_raw([r["dir"] for r in runs], HERE / "runs")
    print("# Speed levers for the CIFAR-10 compare preset: time and accuracy\n")
    print("Each run: CIFAR-10, 10,000 training / 2,000 test images, 2 epochs, batch 128, conv 32-64-128 with "
          "average pooling, one torch thread (`bash results/compare_levers/run.sh`). Test error after epoch 2 on "
          "the 2,000 test images (binomial standard error ≈ 1 point); s/epoch is the training time of each "
          "epoch (evaluation excluded); steps are the mean steps a phase used (early stopping) per epoch.\n")
    print("| run | kind | mode | T1 / T2 | tol | warm start | rates | test error | s / epoch | load avg | steps free / nudged |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        c, m, rows = r["config"], r["config"]["method"], r["rows"]
        steps = " → ".join(f"{x['steps_free']:.1f} / {x['steps_plus']:.1f}" for x in rows if "steps_free" in x) or "–"
        kind = c["model"]["kind"]
        print(f"| {r['name']} | {kind} | {m['mode']} | {m['T1']} / {m['T2']} | {m.get('tol') or '–'} | "
              f"{m.get('warm_start', 'none')} | {c['spiking']['rate_estimate'] if kind == 'spiking' else '–'} | "
              f"{100 * rows[-1]['test_error']:.2f} % | {' / '.join(f'{x['seconds']:.0f}' for x in rows)} | "
              f"{' / '.join(f'{x['load_avg_1m']:.1f}' for x in rows)} | {steps} |")
    print("\n## How these numbers were made\n")
    for r in runs:
        print(run_footer(r))


if __name__ == "__main__":
    main(sys.argv[1])
