"""Tables for results/beat_published from the run folders (and the evaluate sweeps beside them).

Copies every finished run's config.yaml, metrics.csv and summary.json, and the evaluate sweeps beside it
(``<run>.steps.json``, ``<run>.steps_nir.json``), into results/beat_published/runs/, then prints the
markdown (results/beat_published/README.md) from everything in runs/: run folders do not outlive a
session on this project's machines, so the tables are made from the committed raw files, and a session
adds its own runs to them. Published numbers are quoted with their sources.
Usage: python results/beat_published/table.py [RUNS_DIR] > results/beat_published/README.md
"""
import json
import shutil
import statistics
import sys
from pathlib import Path

import yaml

from spiking_ep.report import collect_raw, describe_method, read_metrics, read_run, run_footer
from spiking_ep.runinfo import provenance_line

HERE = Path(__file__).resolve().parent
PUBLISHED = {
    "mnist_conv": ("0.97 %", "Lin, Bal & Sengupta 2024, \"Scaling SNNs Trained Using Equilibrium Propagation to "
                   "Convolutional Architectures\", ICONS 2024, arXiv:2405.02546 (abstract): spiking EP, 2 conv + 2 dense"),
    "fashion_conv": ("8.89 %", "same paper (Fashion-MNIST)"),
    "fc": ("2.4 %", "Martin et al. 2021, \"EqSpike: spike-driven equilibrium propagation for neuromorphic "
                    "implementations\", iScience 24:102222 (97.6 % accuracy): fully connected spiking EP"),
}
TARGETS = {"mnist_conv": 0.90, "fashion_conv": 8.5, "fc_stdp": 1.8}


def groups(runs):
    out = {}
    for r in runs:
        out.setdefault(r["name"].rsplit("_seed", 1)[0], []).append(r)
    return out


FC_RULES = ("fc_stdp", "fc_rates", "fc_rate_ep")
VARIANTS = {"": "no augmentation", "_aug": "random shifts of up to 2 pixels (`data.crop_padding: 2`)",
            "_aug25": "random shifts, 25 epochs instead of 15"}
BASE = {"_aug": "", "_aug25": "_aug"}     # each variant's ablation compares it with this one


def _by_prefix(table: dict, name: str):
    """The entry of a group's network, or of its base network for a variant (``fc_stdp_aug`` → ``fc_stdp``)."""
    return next((v for key, v in table.items() if name == key or name.startswith(key + "_")), None)


def target_for(name: str) -> float | None:
    """A group's target: its own, or its base network's for a variant."""
    return _by_prefix(TARGETS, name)


def _gap(a: dict, b: dict) -> tuple[float, float]:
    """Final test error of run a minus run b (points) ± √(se_a² + se_b²) (binomial, one seed each)."""
    import math

    from spiking_ep.compare.gap import binomial_se
    ea, eb = a["rows"][-1]["test_error"], b["rows"][-1]["test_error"]
    se = math.hypot(binomial_se(ea, a["summary"]["n_test"]), binomial_se(eb, b["summary"]["n_test"]))
    return 100 * (ea - eb), 100 * se


# convnet ablations: (run with the change, the same run without it, the change), compared seed by seed
CONV_CHANGES = [("mnist_conv_5ep", "mnist_conv_nodense_5ep", "a dense hidden layer of 512 between conv 2 and the readout")]


def conv_ablation(groups_: dict) -> list[str]:
    """Final test error with a change minus without it, for every seed both groups ran."""
    rows = []
    for with_, without, change in CONV_CHANGES:
        a = {r["config"]["train"]["seed"]: r for r in groups_.get(with_, [])}
        b = {r["config"]["train"]["seed"]: r for r in groups_.get(without, [])}
        for seed in sorted(a.keys() & b.keys()):
            rows.append(f"| {change} | {seed} | {100 * b[seed]['rows'][-1]['test_error']:.2f} % | "
                        f"{100 * a[seed]['rows'][-1]['test_error']:.2f} % | {'%+.2f ± %.2f' % _gap(a[seed], b[seed])} |")
    if not rows:
        return []
    return ["\n## Convnets: what each change bought\n",
            "Final test error with the change minus without it, same seed (points, ± √(se₁² + se₂²), binomial; "
            "negative: the change helped).\n",
            "| change | seed | without | with | difference (points) |", "|---|---|---|---|---|"] + rows


def fc_gaps(groups_: dict) -> list[str]:
    """The deep FC network's gaps (final test error, points), per training variant: STDP vs rates rule,
    and each rule vs rate EP on the same network; then what each variant changed per rule."""
    final = {name: rs[0] for name, rs in groups_.items() if name.startswith("fc_")}
    lines = []
    for v in VARIANTS:
        pairs = [(a + v, b + v) for a, b in (("fc_stdp", "fc_rates"), ("fc_stdp", "fc_rate_ep"), ("fc_rates", "fc_rate_ep"))
                 if a + v in final and b + v in final]
        if not pairs:
            continue
        lines += [f"\n## Deep fully connected network, {VARIANTS[v]}: the gaps between the rules and to rate EP\n",
                  "Final test error of the first run minus the second's, in points, ± √(se₁² + se₂²) with the binomial "
                  "standard error of each (one seed).\n", "| runs | gap (points) |", "|---|---|"]
        lines += [f"| {a} − {b} | {'%+.2f ± %.2f' % _gap(final[a], final[b])} |" for a, b in pairs]
    ablation = [(r, v) for r in FC_RULES for v in BASE if r + BASE[v] in final and r + v in final]
    if ablation:
        lines += ["\n## Deep fully connected network: what each change bought\n",
                  "Final test error with the change minus without it (points, ± as above; negative: the change helped).\n",
                  "| rule | change | from | without | with | difference (points) |", "|---|---|---|---|---|---|"]
        for r, v in ablation:
            a, b = final[r + v], final[r + BASE[v]]
            lines.append(f"| {r} | {VARIANTS[v]} | {r + BASE[v]} | {100 * b['rows'][-1]['test_error']:.2f} % | "
                         f"{100 * a['rows'][-1]['test_error']:.2f} % | {'%+.2f ± %.2f' % _gap(a, b)} |")
    return lines


def diagnosis(rs: list[dict]) -> str:
    """What the curves say about a group that misses its target: over-fitted (final train error well
    below the test error) or under-trained (train error about the test error, or still falling)."""
    test = statistics.fmean(100 * r["rows"][-1]["test_error"] for r in rs)
    train = statistics.fmean(100 * r["rows"][-1]["train_error"] for r in rs)
    k = min(3, len(rs[0]["rows"]) - 1)
    change = statistics.fmean(100 * (r["rows"][-1]["test_error"] - r["rows"][-1 - k]["test_error"]) for r in rs) if k else 0.0
    fit = (f"over-fitted (train error {train:.2f} % against test {test:.2f} %): regularise (augmentation, dropout, "
           f"weight decay)" if train < 0.5 * test else
           f"not over-fitted (train error {train:.2f} % against test {test:.2f} %): train longer or a larger network")
    return f"{fit}; the test error changed by {change:+.2f} points over the last {k} epochs"


def _idle(run_dir: Path) -> bool:
    """No process trains this run now: nobody holds its lock (``<run>.lock`` beside it, see common.sh)."""
    import fcntl
    lock = run_dir.parent / f"{run_dir.name}.lock"
    if not lock.exists():
        return True
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _complete_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except ValueError:
        return False
    return True


def gather(runs_dir: str | None) -> Path:
    """Copy the finished runs of ``runs_dir`` (raw files and sweeps, never weights) into runs/, and the
    unfinished ones nobody is training (stopped or failed: config.yaml, metrics.csv and the last line
    of their log) into stopped/; return runs/."""
    raw = HERE / "runs"
    if runs_dir is not None:
        dirs = [d for d in sorted(Path(runs_dir).iterdir()) if (d / "config.yaml").is_file()]
        finished = [d for d in dirs if (d / "summary.json").is_file()]
        collect_raw(finished, raw)
        for d in finished:
            shutil.rmtree(HERE / "stopped" / d.name, ignore_errors=True)   # stopped once, since finished
            for sweep in Path(runs_dir).glob(f"{d.name}.steps*.json"):
                if _complete_json(sweep):   # a sweep still running has written nothing yet
                    shutil.copyfile(sweep, raw / sweep.name)
        for d in dirs:
            if d not in finished and (d / "metrics.csv").is_file() and _idle(d):
                collect_raw([d], HERE / "stopped")
                log = d.parent / f"{d.name}.log"
                last = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
                (HERE / "stopped" / d.name / "why.txt").write_text((last[0] if last else "no log") + "\n")
    return raw


def _pcts(rows: list[dict], key: str) -> str:
    return ", ".join(f"{100 * r[key]:.2f}" for r in rows)


def stopped_section() -> list[str]:
    """Runs that did not finish (stopped by hand or failed): their test error by epoch and why."""
    dirs = sorted(d for d in (HERE / "stopped").glob("*") if (d / "metrics.csv").is_file())
    if not dirs:
        return []
    lines = ["\n## Runs that did not finish\n",
             "Stopped or failed runs (raw files in `stopped/`): the epochs they completed and the last line of "
             "their log.\n", "| run | method | epochs done of | test error % by epoch | train error % by epoch | last log line |",
             "|---|---|---|---|---|---|"]
    for d in dirs:
        rows = read_metrics(d)
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        why = (d / "why.txt").read_text().strip() if (d / "why.txt").is_file() else "–"
        lines.append(f"| {d.name} | {describe_method(cfg)} | {len(rows)} of {cfg['train']['epochs']} | "
                     f"{_pcts(rows, 'test_error')} | "
                     f"{_pcts(rows, 'train_error')} | {why} |")
    return lines


def main(runs_dir: str | None) -> None:
    root = gather(runs_dir)
    runs = [read_run(d) for d in sorted(root.iterdir()) if (d / "summary.json").is_file()]
    print("# Beating the published spiking EP results\n")
    print("Made by `results/beat_published/run.sh` (convnets, 20 epochs, 2 seeds), `run_5ep.sh` (the MNIST convnet "
          "cut to 5 epochs, with and without its dense layer), `run_short.sh` (T1 = 20, T2 = 12, 9 epochs: stopped) and `run_fc.sh` (deep fully connected); "
          "this page by `table.py` from the run folders (their raw files are in `runs/`). Test errors on the "
          "full 10,000-image test sets, final epoch, evaluated from zero.\n")
    print("| network | runs | epochs | final test error, mean ± std over seeds | per seed | final train error (mean) "
          "| target | verdict | published | source |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    missed = []
    by_group = groups(runs)
    for name, rs in by_group.items():
        errs = [100 * r["rows"][-1]["test_error"] for r in rs]
        std = f" ± {statistics.stdev(errs):.2f}" if len(errs) > 1 else " (one seed)"
        pub, src = _by_prefix(PUBLISHED, name) or ("–", "")
        target = target_for(name)
        mean = statistics.fmean(errs)
        verdict = "–" if target is None else "met" if mean <= target else f"missed by {mean - target:.2f} points"
        if verdict.startswith("missed"):
            missed.append((name, rs))
        train = statistics.fmean(100 * r["rows"][-1]["train_error"] for r in rs)
        print(f"| {name}: {describe_method(rs[0]['config'])} | {len(rs)} | {len(rs[0]['rows'])} | "
              f"{mean:.2f} %{std} | {', '.join(f'{e:.2f} %' for e in errs)} | {train:.2f} % | "
              f"{'≤ ' + str(target) + ' %' if target else '–'} | {verdict} | {pub} | {src} |")
    if missed:
        print("\nTargets missed, and what the curves say:\n")
        for name, rs in missed:
            print(f"- {name}: {diagnosis(rs)}.")
    for line in conv_ablation(by_group) + fc_gaps(by_group):
        print(line)
    for line in stopped_section():
        print(line)
    sweeps = sorted(root.glob("*.steps*.json"))
    frozen = sorted(HERE.glob("*_sweeps_*.md"))
    if sweeps or frozen:
        print("\n## Inference cost: test error and synaptic operations against the number of steps\n")
    for f in frozen:
        print(f"Earlier sweeps whose JSON files were not kept (their tables kept verbatim): [{f.name}]({f.name})\n")
    if sweeps:
        print("`spiking-ep evaluate RUN --steps …` on the full test set; NIR-exact: reset to zero, no membrane "
              "bounds, spike-count rates, the `forward` schedule (the semantics of an exported NIR graph).\n")
        print("| run | profile | steps | test error at these steps | spikes / neuron / step | synaptic ops / image |")
        print("|---|---|---|---|---|---|")
        for p in sweeps:
            d = json.loads(p.read_text())
            prof = "NIR-exact" if p.stem.endswith("_nir") else "training"
            for row in d["results"]:
                print(f"| {p.name.split('.')[0]} | {prof} | {row['T1']} | {100 * row['test_error']:.2f} % | "
                      f"{row.get('spikes_per_neuron_step', float('nan')):.3f} | {row.get('synops_per_sample', float('nan')):.3g} |")
        print("\nSweeps made by:\n")
        for p in sweeps:
            prov = json.loads(p.read_text()).get("provenance")
            print(f"- `{p.name}`: " + (provenance_line(prov) if prov else "provenance not recorded"))
    print("\n## Per epoch\n")
    for r in runs:
        print(f"**{r['name']}** (test error % by epoch): " + ", ".join(f"{100 * x['test_error']:.2f}" for x in r["rows"]) + "\n")
    print("## How these numbers were made\n")
    for r in runs:
        print(run_footer(r))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
