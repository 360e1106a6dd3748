"""The speed and memory targets of issue 12, checked against the committed benchmark results.

    python benchmarks/targets.py [--dir results/benchmarks]

Reads the JSON files the benchmarks wrote (explicit_vs_autograd, relaxation_avg / _max, iteration,
memory) and writes ``<dir>/README.md``: one row per target with the measured figure, whether it
is met, and the file it comes from; then every result file's conditions (threads, load average,
commit, date). A missing file is listed as "not measured", never guessed. GPU targets need
benchmarks/gpu_check.sh on a CUDA machine; its JSON (``gpu_check.json`` in ``--dir``) is read if
present.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(d: Path, name: str) -> dict | None:
    p = d / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _explicit(d: Path) -> list[tuple]:
    r = _load(d, "explicit_vs_autograd")
    if r is None:
        return [("explicit drives ≥ 1.5× the autograd-of-Φ step (equal T)", "not measured", "–", "–")]
    return [(f"explicit drives ≥ 1.5× the autograd-of-Φ step, {row['pool']} pooling",
             f"{row['speedup']:.3f}× ({row['explicit_ms']:.0f} vs {row['autograd_ms']:.0f} ms)"
             + (f"; ceiling {row['ceiling']:.2f}× if only convolutions cost" if "ceiling" in row else ""),
             "yes" if row["speedup"] >= 1.5 else "no", "explicit_vs_autograd.md") for row in r["rows"]]


def _relaxation(d: Path) -> list[tuple]:
    out = []
    for p in sorted(d.glob("relaxation_*.json")):
        r = json.loads(p.read_text())
        what = f"{r['pool']} pooling, " + ("trained weights" if r.get("weights") else "initial weights")
        tight = min(row["residual"] for row in r["rows"])
        at = {row["mode"]: row for row in r["rows"] if row["residual"] == tight}
        sync, eo = at["sync"], at["evenodd"]
        cap = max(row["steps"] for row in r["rows"])
        same = "same fixed point" if r["end_state_difference"] < 1e-2 else \
            f"a different fixed point (max state difference {r['end_state_difference']:.2f})"
        if sync["reached"] and eo["reached"]:
            ratio = eo["steps"] / sync["steps"]
            measured, ok = f"{eo['steps']} vs {sync['steps']} steps ({ratio:.2f}×), {same}", ratio <= 0.5
        elif eo["reached"]:
            measured, ok = f"even/odd {eo['steps']} steps; sync does not get there in {cap}", True
        else:
            measured, ok = f"even/odd does not get there in {cap} steps", False
        out.append((f"even/odd ≤ ½ the synchronous steps to max\\|Δs\\| < {tight:g}, {what}", measured,
                    "yes" if ok else "no", p.with_suffix(".md").name))
        fixed = r["paper_fixed"]["T1"]
        best = min((row["steps"] for row in at.values() if row["reached"]), default=None)
        out.append((f"early stopping ≤ ½ the paper's fixed T1 = {fixed}, {what}",
                    f"{best} of {fixed} steps to max\\|Δs\\| < {tight:g}" if best else f"not reached in {cap} steps",
                    "yes" if best and best <= fixed / 2 else "no", p.with_suffix(".md").name))
    return out


def _throughput(d: Path) -> list[tuple]:
    r = _load(d, "iteration")
    if r is None:
        return [("within 2× of the measured convolution throughput", "not measured", "–", "–")]
    out = []
    for net, v in r["nets"].items():
        best = max(v["rows"], key=lambda row: row["gflops"])
        frac = best["gflops"] / r["conv_peak_gflops"]
        out.append((f"within 2× of the measured convolution throughput ({r['conv_peak_gflops']:.0f} GFLOP/s), {net}",
                    f"best method {best['method']}: {best['gflops']:.0f} GFLOP/s ({100 * frac:.0f} %)",
                    "yes" if frac >= 0.5 else "no", "iteration.md"))
    return out


def _memory(d: Path) -> list[tuple]:
    r = _load(d, "memory")
    if r is None:
        return [("EP peak memory independent of T; ≤ ⅕ of BPTT at T2 = K = 25", "not measured", "–", "–")]
    ep = [row["peak_bytes"] for row in r["rows"] if row["method"] == "rate_ep"]
    t1 = sorted(row["T1"] for row in r["rows"] if row["method"] == "rate_ep")
    bptt = [row["peak_bytes"] for row in r["rows"] if row["method"] == "bptt" and row["K"] == 25]
    mib = 2 ** 20
    out = [(f"rate EP peak memory independent of T1 ({t1[0]}–{t1[-1]})",
            f"{min(ep) / mib:.1f}–{max(ep) / mib:.1f} MiB", "yes" if max(ep) <= 1.05 * min(ep) else "no", "memory.md")]
    if bptt:
        ratio = max(ep) / bptt[0]
        out.append(("rate EP ≤ ⅕ of BPTT's peak memory at K = 25", f"{ratio:.2f}×", "yes" if ratio <= 0.2 else "no",
                    "memory.md"))
    return out


def _time_to_error(d: Path) -> list[tuple]:
    r = _load(d, "time_to_error")
    what = "our fastest schedule vs the paper's, time to the same test error (≥ 10× is the GPU target)"
    if r is None:
        return [(what, "not measured on the CPU", "–", "–")]
    a = r["rows"]["paper"]["reached"]
    ours = {n: v["reached"] for n, v in r["rows"].items() if n != "paper" and v["reached"]}
    if not (a and ours):
        return [(what + f", {100 * r['target']:.0f} %", "target not reached by "
                 + " and ".join(n for n, v in r["rows"].items() if not v["reached"]), "no", "time_to_error.md")]
    best = min(ours, key=lambda n: ours[n][1])
    ratio = a[1] / ours[best][1]
    return [(what + f", {100 * r['target']:.0f} % on the small CIFAR-10 preset, CPU",
             f"{ratio:.1f}× (`{best}`: {ours[best][1]:.0f} vs {a[1]:.0f} s)", "yes" if ratio >= 10 else "no",
             "time_to_error.md")]


def _gpu(d: Path) -> list[tuple]:
    r = _load(d, "gpu_check")
    if r is None:
        return [("GPU: paper-architecture rate-EP epoch (T1 = 250, T2 = 25) ≤ 60 s on one H200", "not measured "
                 "(no session has had a GPU; run benchmarks/gpu_check.sh)", "–", "–"),
                ("GPU: fastest settings ≥ 10× faster to the same accuracy than the paper's", "not measured", "–", "–")]
    return [("GPU checks", "see gpu_check.json", "–", "gpu_check.json")]


def conditions(d: Path) -> list[str]:
    rows = ["| file | command | threads | load average (1, 5, 15 min) | commit | date |", "|---|---|---|---|---|---|"]
    for p in sorted(d.glob("*.json")):
        prov = json.loads(p.read_text()).get("provenance", {})
        load = ", ".join(f"{x:.2f}" for x in prov.get("load_avg", [])) or "–"
        rows.append(f"| {p.name} | `{prov.get('command', '–')}` | {prov.get('torch_threads', '–')} | {load} | "
                    f"{str(prov.get('git_commit', '–'))[:10]} | {prov.get('date', '–')} |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="results/benchmarks")
    d = Path(ap.parse_args(argv).dir)
    rows = _explicit(d) + _relaxation(d) + _throughput(d) + _memory(d) + _time_to_error(d) + _gpu(d)
    text = ["# Benchmarks: issue 12's targets against the measurements", "",
            "Generated by `python benchmarks/targets.py` from the JSON files in this folder (each written by its "
            "benchmark script; the `.md` beside it is that script's table). Run every CPU benchmark with "
            "`benchmarks/run_all.sh` on a quiet machine.", "",
            "| target | measured | met | from |", "|---|---|---|---|",
            *[f"| {t} | {m} | {ok} | {src} |" for t, m, ok, src in rows], "",
            "## Conditions of each result", "",
            "A load average above the thread count means other jobs shared the cores while it ran: compare its "
            "seconds only within the file (the benchmarks alternate their variants in one process).", "",
            *conditions(d), ""]
    (d / "README.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
