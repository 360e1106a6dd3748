"""Check every results table against the raw run files committed beside it.

    python results/check.py [RESULTS_DIR]     # exit status 1 if any number disagrees

For each folder under results/:
  - run tables (``spiking-ep report`` tables, lever tables …): every row whose first cell names a
    run with raw files in ``<folder>/runs/<name>/`` must show that run's final test error, best
    test error and final train error (columns named so, in %, to the printed precision);
  - comparison reports (``report.json`` + ``report.md``): report.json's per-seed errors must equal
    the arms' raw ``metrics.csv``, and report.md's accuracy table must equal report.json;
  - folders whose tables hold training numbers but have no raw run files are listed as not
    traceable (their numbers come from runs whose folders were not kept).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

TOL = 0.006   # percentage points: tables print two decimals


def read_metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [{k: _float(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as lists of rows of stripped cells (header first, separator dropped)."""
    out, cur = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                cur.append(cells)
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def pct(cell: str) -> float | None:
    cell = cell.replace("**", "").strip()
    if not cell.endswith("%"):
        return None
    try:
        return float(cell[:-1])
    except ValueError:
        return None


COLUMNS = {"final test error": lambda m: m[-1]["test_error"], "test error": lambda m: m[-1]["test_error"],
           "best test error": lambda m: min(r["test_error"] for r in m),
           "final train error": lambda m: m[-1]["train_error"]}


def check_run_tables(folder: Path, runs: dict[str, list[dict]]) -> tuple[int, list[str]]:
    checked, errors = 0, []
    for md in sorted(folder.glob("*.md")):
        for table in tables(md.read_text()):
            head = [h.lower() for h in table[0]]
            cols = {i: COLUMNS[h] for i, h in enumerate(head) if h in COLUMNS}
            for row in table[1:]:
                name = row[0].replace("*", "")
                if name not in runs or not cols:
                    continue
                for i, fn in cols.items():
                    shown = pct(row[i]) if i < len(row) else None
                    if shown is None:
                        continue
                    want = 100 * fn(runs[name])
                    checked += 1
                    if abs(shown - want) > TOL:
                        errors.append(f"{md}: {name} {head[i]} shows {shown:.2f} %, raw data gives {want:.3f} %")
    return checked, errors


def check_compare(folder: Path) -> tuple[int, list[str]]:
    rep = json.loads((folder / "report.json").read_text())
    checked, errors = 0, []
    for arm, a in rep["accuracy"].items():
        for s in a["seeds"]:
            raw = folder / "runs" / s["run"]
            if not (raw / "metrics.csv").is_file():
                errors.append(f"{folder}: no raw files for {s['run']}")
                continue
            m = read_metrics(raw)
            for key, fn in (("final_test_error", COLUMNS["final test error"]),
                            ("best_test_error", COLUMNS["best test error"]),
                            ("final_train_error", COLUMNS["final train error"])):
                checked += 1
                if abs(s[key] - fn(m)) > 1e-12:
                    errors.append(f"{folder}/report.json: {s['run']} {key} {s[key]} ≠ metrics.csv {fn(m)}")
    todo = rep.get("in_progress") or {}
    for name, a in todo.items():       # arms still training: their rows so far
        raw = folder / "runs" / name
        if not (raw / "metrics.csv").is_file():
            errors.append(f"{folder}: no raw files for {name} (in progress)")
            continue
        m = read_metrics(raw)
        for key, fn in (("last_test_error", COLUMNS["final test error"]), ("best_test_error", COLUMNS["best test error"]),
                        ("last_train_error", COLUMNS["final train error"])):
            checked += 1
            if abs(a[key] - fn(m)) > 1e-12:
                errors.append(f"{folder}/report.json: {name} (in progress) {key} {a[key]} ≠ metrics.csv {fn(m)}")
    md = (folder / "report.md").read_text()
    for row in next((t for t in tables(md) if t[0][:2] == ["arm", "run"]), [[]])[1:]:
        a = todo.get(row[1])
        if a is None:
            errors.append(f"{folder}/report.md: still-training row {row[1]!r} is not in report.json")
            continue
        for col, key in ((3, "last_test_error"), (4, "best_test_error"), (5, "last_train_error")):
            checked += 1
            if abs(pct(row[col]) - 100 * a[key]) > TOL:
                errors.append(f"{folder}/report.md: {row[1]} column {col} shows {row[col]}, report.json {100 * a[key]:.3f} %")
    acc = next((t for t in tables(md) if t[0][:2] == ["arm", "seeds"]), None)
    by_desc = {a["description"]: a for a in rep["accuracy"].values()}
    for row in (acc or [])[1:]:
        a = by_desc.get(row[0])
        if a is None:
            errors.append(f"{folder}/report.md: accuracy row {row[0]!r} is not in report.json")
            continue
        for col, key in ((3, "mean_final_test_error"), (5, "mean_best_test_error"), (6, "mean_final_train_error")):
            checked += 1
            if abs(pct(row[col]) - 100 * a[key]) > TOL:
                errors.append(f"{folder}/report.md: {row[0]} column {col} shows {row[col]}, report.json {100 * a[key]:.3f} %")
    return checked, errors


def main(root: str = "results") -> int:
    root = Path(root)
    total, errors, untraceable = 0, [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        raw = {d.name: read_metrics(d) for d in sorted((folder / "runs").glob("*")) if (d / "metrics.csv").is_file()}
        n, errs = check_run_tables(folder, raw)
        if (folder / "report.json").is_file() and (folder / "report.md").is_file():
            n2, errs2 = check_compare(folder)
            n, errs = n + n2, errs + errs2
        total += n
        errors += errs
        has_training_table = any("test error" in t[0][i].lower() for md in folder.glob("*.md")
                                 for t in tables(md.read_text()) for i in range(len(t[0])))
        if not raw and has_training_table and not (folder / "report.json").is_file():
            untraceable.append(folder.name)
    print(f"checked {total} numbers against raw run files: {len(errors)} disagree")
    for e in errors:
        print("  MISMATCH", e)
    if untraceable:
        print("not traceable (no raw run files committed): " + ", ".join(untraceable))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
