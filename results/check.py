"""Check every results table against the raw run files committed beside it.

    python results/check.py [RESULTS_DIR]     # exit status 1 if any number disagrees

For each folder under results/:
  - run tables (``spiking-ep report`` tables, lever tables …): every row whose first cell names a
    run with raw files in ``<folder>/runs/<name>/`` (or ``<folder>/*_runs/<name>/``) must show that
    run's final test error, best test error and final train error (columns named so, in %, to the
    printed precision) and, in a ``test error by epoch (%)`` column, every epoch's test error;
  - grouped tables (``results/beat_published``): a row whose first cell starts with ``<group>:``,
    where runs ``<group>_seed*`` have raw files, must show each seed's final test error (``per
    seed``) and their means (``final test error, mean …``, ``final train error (mean)``);
  - comparison reports (``report.json`` + ``report.md``): report.json's per-seed errors must equal
    the arms' raw ``metrics.csv``, and report.md's accuracy table must equal report.json;
  - folders whose tables hold training numbers but have no raw run files are listed as not
    traceable (their numbers come from runs whose folders were not kept).
"""
from __future__ import annotations

import csv
import json
import re
import statistics
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


GROUP_COLUMNS = {"final test error, mean ± std over seeds": lambda ms: [statistics.fmean([m[-1]["test_error"] for m in ms])],
                 "per seed": lambda ms: [m[-1]["test_error"] for m in ms],
                 "final train error (mean)": lambda ms: [statistics.fmean([m[-1]["train_error"] for m in ms])]}


def leading_pcts(cell: str) -> list[float]:
    """The percentages a cell lists: '2.34 % (one seed)' → [2.34]; '1.0 %, 1.2 %' → [1.0, 1.2]."""
    return [float(x) for x in re.findall(r"(-?\d+(?:\.\d+)?) %", cell.split("±")[0] if "," not in cell else cell)]


def check_group_row(md: Path, head: list[str], row: list[str], runs: dict[str, list[dict]]) -> tuple[int, list[str]]:
    """A grouped row (first cell ``<group>: …``) against the raw files of ``<group>_seed*``."""
    group = row[0].split(":")[0].replace("*", "").strip()
    seeds = [runs[n] for n in sorted(runs) if n.rsplit("_seed", 1)[0] == group]
    checked, errors = 0, []
    if not seeds:
        return checked, errors
    for i, h in enumerate(head):
        if h not in GROUP_COLUMNS or i >= len(row):
            continue
        shown, want = leading_pcts(row[i]), [100 * x for x in GROUP_COLUMNS[h](seeds)]
        checked += len(want)
        if len(shown) != len(want) or any(abs(a - b) > TOL for a, b in zip(shown, want)):
            errors.append(f"{md}: {group} {h} shows {row[i]}, raw data gives "
                          + ", ".join(f"{w:.3f} %" for w in want))
    return checked, errors


def check_by_epoch(md: Path, head: list[str], row: list[str], m: list[dict]) -> tuple[int, list[str]]:
    """A ``test error by epoch (%)`` cell (``77.1, 70.4, 65.0``) against every epoch of the run."""
    if BY_EPOCH not in head or head.index(BY_EPOCH) >= len(row):
        return 0, []
    cell = row[head.index(BY_EPOCH)]
    shown, want = [float(x) for x in cell.split(",")], [100 * r["test_error"] for r in m]
    digits = len(cell.split(",")[0].strip().partition(".")[2])
    if len(shown) != len(want) or any(abs(a - b) > 0.51 * 10 ** -digits + 1e-9 for a, b in zip(shown, want)):
        return len(want), [f"{md}: {row[0]} {BY_EPOCH} shows {cell}, raw data gives "
                           + ", ".join(f"{w:.3f}" for w in want)]
    return len(want), []


BY_EPOCH = "test error by epoch (%)"


def check_run_tables(folder: Path, runs: dict[str, list[dict]]) -> tuple[int, list[str]]:
    checked, errors = 0, []
    for md in sorted(folder.glob("*.md")):
        for table in tables(md.read_text()):
            head = [h.lower() for h in table[0]]
            cols = {i: COLUMNS[h] for i, h in enumerate(head) if h in COLUMNS}
            for row in table[1:]:
                name = row[0].replace("*", "")
                if ":" in name and name not in runs:
                    n, errs = check_group_row(md, head, row, runs)
                    checked, errors = checked + n, errors + errs
                    continue
                if name not in runs:
                    continue
                n, errs = check_by_epoch(md, head, row, runs[name])
                checked, errors = checked + n, errors + errs
                for i, fn in cols.items():
                    shown = pct(row[i]) if i < len(row) else None
                    if shown is None:
                        continue
                    want = 100 * fn(runs[name])
                    checked += 1
                    if abs(shown - want) > TOL:
                        errors.append(f"{md}: {name} {head[i]} shows {shown:.2f} %, raw data gives {want:.3f} %")
    return checked, errors


def _json_vs_raw(folder: Path, run: str, entry: dict, keys: tuple[str, str, str]) -> tuple[int, list[str]]:
    """report.json's (final or last) test error, best test error and train error of one run vs its metrics.csv."""
    raw = folder / "runs" / run
    if not (raw / "metrics.csv").is_file():
        return 0, [f"{folder}: no raw files for {run}"]
    m = read_metrics(raw)
    fns = (COLUMNS["final test error"], COLUMNS["best test error"], COLUMNS["final train error"])
    return len(keys), [f"{folder}/report.json: {run} {k} {entry[k]} ≠ metrics.csv {fn(m)}"
                       for k, fn in zip(keys, fns) if abs(entry[k] - fn(m)) > 1e-12]


def _md_vs_json(folder: Path, table: list[list[str]] | None, key_col: int, entries: dict,
                cols: tuple[tuple[int, str], ...]) -> tuple[int, list[str]]:
    """Each row of a report.md table (found by ``key_col``'s cell in ``entries``) vs report.json, in %."""
    checked, errors = 0, []
    for row in (table or [])[1:]:
        a = entries.get(row[key_col])
        if a is None:
            errors.append(f"{folder}/report.md: row {row[key_col]!r} is not in report.json")
            continue
        for col, key in cols:
            checked += 1
            if abs(pct(row[col]) - 100 * a[key]) > TOL:
                errors.append(f"{folder}/report.md: {row[key_col]} column {col} shows {row[col]}, "
                              f"report.json {100 * a[key]:.3f} %")
    return checked, errors


def check_compare(folder: Path) -> tuple[int, list[str]]:
    rep = json.loads((folder / "report.json").read_text())
    todo = rep.get("in_progress") or {}     # arms still training: their epochs so far
    md = tables((folder / "report.md").read_text())
    results = [_json_vs_raw(folder, s["run"], s, ("final_test_error", "best_test_error", "final_train_error"))
               for a in rep["accuracy"].values() for s in a["seeds"]]
    results += [_json_vs_raw(folder, name, a, ("last_test_error", "best_test_error", "last_train_error"))
                for name, a in todo.items()]
    results.append(_md_vs_json(folder, next((t for t in md if t[0][:2] == ["arm", "seeds"]), None), 0,
                               {a["description"]: a for a in rep["accuracy"].values()},
                               ((3, "mean_final_test_error"), (5, "mean_best_test_error"), (6, "mean_final_train_error"))))
    results.append(_md_vs_json(folder, next((t for t in md if t[0][:2] == ["arm", "run"]), None), 1, todo,
                               ((3, "last_test_error"), (4, "best_test_error"), (5, "last_train_error"))))
    return sum(n for n, _ in results), [e for _, errs in results for e in errs]


def main(root: str = "results") -> int:
    root = Path(root)
    total, errors, untraceable = 0, [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        raw = {d.name: read_metrics(d) for d in sorted(folder.glob("runs/*")) + sorted(folder.glob("*_runs/*"))
               if (d / "metrics.csv").is_file()}
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
