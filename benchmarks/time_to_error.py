"""Time to a fixed test error on the small CIFAR-10 preset: the paper's schedule vs our fastest settings.

    python benchmarks/time_to_error.py [--target 0.70] [--epochs 8] [--threads 1] [--out runs/time_to_error]
                                       [--schedules paper,fastest,short]

Each trains configs/cifar10_small.yaml (conv 32-64-128, max pooling, 4,000 / 1,000 CIFAR-10 images,
symmetric EP, the same optimiser and seed):
  paper    synchronous updates, cold free phases, T1 = 250, T2 = 25 (the paper's cross-entropy setting)
  fastest  even/odd updates, warm-started free phases, early stopping at max|Δs| < 1e-3 (at most
           T1 = 50, T2 = 15 steps)
  short    the preset's own short schedule: synchronous, cold, T1 = 30, T2 = 10
("fastest" needs the fewest steps to a given fixed-point residual; whether that makes it the
quickest to an error is what this measures.)
Each run ends at the first epoch whose test error is ≤ --target (``train.stop_at_test_error``), or
after --epochs. Reported: the training time (seconds, evaluation excluded) until the test error first
reaches --target, and each epoch's error and machine load. To time the two side by side, run one
process per schedule at once (e.g. ``--schedules paper`` and ``--schedules fastest``, one per core);
the one that finishes last, or any later call, writes the table once every run exists. Resumable: run the
same command again. Run folders under --out, raw files copied to results/benchmarks/time_to_error_runs/.
Output: results/benchmarks/time_to_error.{json,md}.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save_result  # noqa: E402

from spiking_ep.config import load_config  # noqa: E402
from spiking_ep.report import collect_raw, read_run  # noqa: E402
from spiking_ep.train import train  # noqa: E402

SETTINGS = {
    "paper": ["method.mode=sync", "method.T1=250", "method.T2=25", "method.warm_start=none", "method.tol=null",
              "method.eval_T1=250"],
    "fastest": ["method.mode=evenodd", "method.T1=50", "method.T2=15", "method.warm_start=persistent",
                "method.tol=1.0e-3", "method.eval_T1=50"],
    "short": ["method.mode=sync", "method.T1=30", "method.T2=10", "method.warm_start=none", "method.tol=null",
              "method.eval_T1=30"],
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", type=float, default=0.70)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/time_to_error")
    ap.add_argument("--schedules", default=",".join(SETTINGS), help="which of them to train in this process")
    args = ap.parse_args(argv)
    wanted = args.schedules.split(",")
    if not set(wanted) <= set(SETTINGS):
        ap.error(f"--schedules: choose from {', '.join(SETTINGS)}, got {args.schedules!r}")
    for name in wanted:
        run = Path(args.out) / name
        if not (run / "summary.json").is_file():
            cfg = load_config("configs/cifar10_small.yaml", SETTINGS[name] + [
                f"train.epochs={args.epochs}", f"train.threads={args.threads}", f"train.out_dir={args.out}",
                f"train.run_name={name}", f"train.stop_at_test_error={args.target}"])
            train(cfg, resume=run if (run / "checkpoint.pt").is_file() else None)
    missing = [n for n in SETTINGS if not (Path(args.out) / n / "summary.json").is_file()]
    if missing:
        print(f"not tabulated yet: {', '.join(missing)} still to finish (run it with --schedules)")
        return
    report(args)


def report(args) -> None:
    rows = {}
    for name, sets in SETTINGS.items():
        r = read_run(Path(args.out) / name)
        t, reached = 0.0, None
        for row in r["rows"]:
            t += row["seconds"]
            if reached is None and row["test_error"] <= args.target:
                reached = (int(row["epoch"]), t)
        rows[name] = {"settings": sets, "errors": [x["test_error"] for x in r["rows"]],
                      "seconds": [x["seconds"] for x in r["rows"]], "loads": [x["load_avg_1m"] for x in r["rows"]],
                      "reached": reached, "git_commit": r["summary"].get("git_commit"),
                      "steps_per_batch": [x["steps_free"] + x["steps_plus"] + x["steps_minus"] for x in r["rows"]]}
    collect_raw([Path(args.out) / n for n in SETTINGS], "results/benchmarks/time_to_error_runs")
    table = [f"configs/cifar10_small.yaml, each run ending at the target or after {args.epochs} epochs, {args.threads} thread(s); target: "
             f"{100 * args.target:.0f} % test error on the 1,000 test images.", "",
             "| schedule | settings | epochs to target | seconds to target | test error by epoch (%) | s / epoch | "
             "relaxation steps / batch (free + nudged, by epoch) | load (1 min) by epoch |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        ep, sec = r["reached"] or ("not reached", None)
        table.append(f"| {name} | {', '.join(r['settings'])} | {ep} | {'–' if sec is None else f'{sec:.0f}'} | "
                     f"{', '.join(f'{100 * e:.1f}' for e in r['errors'])} | "
                     f"{', '.join(f'{s:.0f}' for s in r['seconds'])} | {', '.join(f'{v:.0f}' for v in r['steps_per_batch'])} | "
                     f"{', '.join(f'{v:.1f}' for v in r['loads'])} |")
    a = rows["paper"]["reached"]
    if a:
        table.append("")
        table += [f"The {name} schedule reaches {100 * args.target:.0f} % test error {a[1] / r['reached'][1]:.1f}× "
                  f"sooner than the paper's." for name, r in rows.items() if name != "paper" and r["reached"]]
    save_result("time_to_error", {"target": args.target, "rows": rows}, table,
                "Time to a fixed test error: the paper's schedule vs our fastest settings")


if __name__ == "__main__":
    main()
