"""report.md and the plots, generated from report.json's content only."""
from __future__ import annotations

from pathlib import Path

from ..report import ran_dirty, segments_text
from ..runinfo import provenance_line
from .arms import DESCRIPTIONS


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def _num(v, fmt="{:.3g}") -> str:
    return "–" if v is None or v != v else fmt.format(v)


def accuracy_md(rep: dict) -> list[str]:
    lines = ["## Accuracy", "",
             "| arm | seeds | epochs | final test error | ± | best test error | final train error |",
             "|---|---|---|---|---|---|---|"]
    for arm, a in rep["accuracy"].items():
        epochs = "/".join(sorted({str(s["epochs"]) for s in a["seeds"]}))
        lines.append(f"| {a['description']} | {len(a['seeds'])} | {epochs} | {_pct(a['mean_final_test_error'])} | "
                     f"{100 * a['se']:.2f} | {_pct(a['mean_best_test_error'])} | {_pct(a['mean_final_train_error'])} |")
    hows = sorted({a["se_how"] for a in rep["accuracy"].values()})
    n_test = sorted({s["n_test"] for a in rep["accuracy"].values() for s in a["seeds"]})
    lines += ["", f"Test errors on {', '.join(map(str, n_test))} test images; ± is the {'; '.join(hows)}, in points.", ""]
    if rep["gaps"]:
        lines += ["**Gaps** (final test error, percentage points; ± combines both arms' errors):", "",
                  "| arm | to rate EP | to BPTT |", "|---|---|---|"]
        by_arm: dict = {}
        for g in rep["gaps"]:
            by_arm.setdefault(g["arm"], {})[g["ref"]] = f"{g['gap_points']:+.2f} ± {g['pm_points']:.2f}"
        for arm, d in by_arm.items():
            lines.append(f"| {DESCRIPTIONS[arm]} | {d.get('rate_ep', '–')} | {d.get('bptt', '–')} |")
        lines.append("")
    return lines + in_progress_md(rep)


def in_progress_md(rep: dict) -> list[str]:
    todo = rep.get("in_progress") or {}
    if not todo:
        return []
    lines = ["**Still training** (not in the tables above, the gaps or the measurements below; dashed in the "
             "learning curves):", "",
             "| arm | run | epochs done / planned | last test error | best test error | last train error |",
             "|---|---|---|---|---|---|"]
    for name, a in todo.items():
        lines.append(f"| {a['description']} | {name} | {a['epochs_done']} / {a['epochs_planned']} | "
                     f"{_pct(a['last_test_error'])} | {_pct(a['best_test_error'])} | {_pct(a['last_train_error'])} |")
    return lines + [""]


def gradients_md(rep: dict) -> list[str]:
    g = rep.get("gradients") or {}
    rows = g.get("rows") or []
    if not rows:
        return ["## Gradient agreement", "", g.get("note", "not measured"), ""]
    epochs = sorted({r["epoch"] for r in rows})
    show = sorted({epochs[0], epochs[len(epochs) // 2], epochs[-1]})
    lines = ["## Gradient agreement on the same weights", "",
             f"Weights: the rate-EP run's snapshots ({g['weights_from']}), epochs {', '.join(map(str, epochs))} "
             f"(0 = initialisation); {g['batches']} fixed training batches of {g['batch_size']} images (no "
             f"augmentation), each arm's own steps and rule from a cold start. Cosine, relative error "
             f"‖g − g_ref‖/‖g_ref‖ and norm ratio ‖g‖/‖g_ref‖ (when measured) per layer (W and b together), "
             f"mean over the batches.", ""]
    for ref in ("bptt", "rate_ep"):
        sub = [r for r in rows if r["ref"] == ref and r["epoch"] in show]
        if not sub:
            continue
        layers = list(dict.fromkeys(r["layer"] for r in sub))
        ratio = all("norm_ratio" in r for r in sub)
        lines += [f"**Against {DESCRIPTIONS[ref]}** (cosine / relative error{' / norm ratio' if ratio else ''}):", "",
                  "| epoch | method | " + " | ".join(layers) + " |", "|---" * (len(layers) + 2) + "|"]
        for e in show:
            for method in dict.fromkeys(r["method"] for r in sub):
                cells = [next((f"{r['cosine']:.3f} / {r['rel_error']:.2f}" + (f" / {r['norm_ratio']:.2f}" if ratio else "")
                               for r in sub
                               if r["epoch"] == e and r["method"] == method and r["layer"] == la), "–") for la in layers]
                lines.append(f"| {e} | {DESCRIPTIONS[method]} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def fixed_point_md(rep: dict) -> list[str]:
    fp = rep.get("fixed_point")
    if not fp:
        return []
    lines = ["## Fixed-point gap", "",
             f"Mean |spiking rate − rate fixed point| per layer after T1 spiking steps from zero (rates over the "
             f"last half), beside the rate model's own distance after T1 steps; {fp['final']['images']} test images, "
             f"the rate-EP run's weights ({fp['weights_from']}); the fixed point is relaxed to max|Δs| < "
             f"{fp['final']['fixed_point_tol']:g}.", ""]
    for tag in ("initial", "final"):
        d = fp[tag]
        layers = list(dict.fromkeys(r["layer"] for r in d["rows"]))
        lines += [f"**{tag} weights** (epoch {d['epoch']}; fixed point reached in {d['fixed_point_steps']} steps; "
                  f"spiking / rate):", "", "| T1 | " + " | ".join(layers) + " |", "|---" * (len(layers) + 1) + "|"]
        for T in dict.fromkeys(r["T1"] for r in d["rows"]):
            cells = [next(f"{r['spiking']:.4f} / {r['rate']:.4f}" for r in d["rows"] if r["T1"] == T and r["layer"] == la)
                     for la in layers]
            lines.append(f"| {T} | " + " | ".join(cells) + " |")
        mean_state = {r["layer"]: r["mean_state"] for r in d["rows"]}
        lines += ["", "Mean fixed-point state: " + ", ".join(f"{k} {v:.3f}" for k, v in mean_state.items()), ""]
    return lines


def conversion_md(rep: dict) -> list[str]:
    cv = rep.get("conversion")
    if not cv:
        return []
    lines = ["## Conversion: each arm's weights run as a rate and as a spiking network", "",
             f"Test error on the first {cv['n_test']} test images against the inference steps (spiking: synaptic "
             f"operations per image in brackets).", ""]
    steps = list(dict.fromkeys(r["steps"] for r in cv["rows"]))
    lines += ["| weights | run as | " + " | ".join(f"T = {t}" for t in steps) + " |", "|---" * (len(steps) + 2) + "|"]
    for w in dict.fromkeys(r["weights"] for r in cv["rows"]):
        for kind in ("rate", "spiking"):
            cells = []
            for t in steps:
                r = next((r for r in cv["rows"] if r["weights"] == w and r["run_as"] == kind and r["steps"] == t), None)
                if r is None:
                    cells.append("–")
                    continue
                extra = f" ({r['synops_per_sample']:.2g})" if "synops_per_sample" in r else ""
                cells.append(f"{100 * r['test_error']:.2f} %{extra}")
            lines.append(f"| {DESCRIPTIONS[w]} | {kind} | " + " | ".join(cells) + " |")
    return lines + [""]


def cost_md(rep: dict) -> list[str]:
    rows = rep.get("cost")
    if not rows:
        return []
    lines = ["## Cost", "",
             "| arm | steps (T1 / T2 or K; eval) | mean steps used | spikes / neuron / step (train) | synaptic ops / image "
             "(inference) | rate-model MACs / image (inference) | s / epoch | threads, load | peak memory of a step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = f"{r['T1']} / {r['T2'] if r['T2'] is not None else 'K ' + str(r['K'])}; {r['eval_T1']}"
        used = ", ".join(f"{k} {v:.1f}" for k, v in r["mean_steps_used"].items()) or "all"
        spk = ", ".join(f"{k} {v:.3f}" for k, v in r["spikes_per_neuron_step_train"].items()) or "–"
        mem = "–" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.1f} MiB"
        lines.append(f"| {DESCRIPTIONS[r['arm']]} | {steps} | {used} | {spk} | {_num(r['synops_per_sample_inference'])} | "
                     f"{_num(r['rate_macs_per_sample_inference'])} | {r['seconds_per_epoch']:.0f} | "
                     f"{_num(r['torch_threads'], '{:.0f}')}, {r['load_avg_1m']:.1f} | {mem} |")
    lines += ["", "Synaptic operations count one accumulate per spike per target synapse (forward, feedback and "
              "readout; the constant input current excluded); MACs are the rate model's multiply-accumulates "
              "for the same number of steps. Load is the mean 1-minute load average over the epochs "
              f"({_num(rows[0]['torch_threads'], '{:.0f}')} torch thread(s) per run on a machine with "
              f"{rep['provenance'].get('cores')} cores). Peak memory of one training step: {next(iter(rep['memory'].values()))['how']}, "
              f"batch {next(iter(rep['memory'].values()))['batch']}.", ""]
    return lines


def measurement_lines(rep: dict) -> list[str]:
    """Which process measured what on the weights: each measurement's parts (arms, commit, date)."""
    lines = []
    for name in ("gradients", "fixed_point", "conversion", "memory"):
        for part in (rep.get(name) or {}).get("parts", []):      # gap.measured lists every part
            prov = part.get("provenance") or {}
            commit = prov.get("git_commit") or "unknown"
            lines.append(f"- measurement `{name}` ({', '.join(part.get('arms') or [])}): git {commit}, "
                         f"{prov.get('torch_threads')} torch threads, load average {prov.get('load_avg')}, {prov.get('date')}")
    return lines + [""] if lines else []


def markdown(rep: dict, title: str, plots: list[str]) -> str:
    lines = [f"# {title}", ""]
    if rep["confounds"]:
        lines += ["**Confounds** (settings that differ between arms):", ""] + [f"- {c}" for c in rep["confounds"]] + [""]
    else:
        lines += ["All arms share the network, data, augmentation, optimiser, epochs, batch size and update schedule; "
                  "they differ in how the gradient is estimated and which neurons run.", ""]
    lines += accuracy_md(rep) + gradients_md(rep) + fixed_point_md(rep) + conversion_md(rep) + cost_md(rep)
    lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots] + [""]
    lines += ["## How these numbers were made", "", "Report: " + provenance_line(rep["provenance"]), ""]
    lines += measurement_lines(rep)
    for name, r in rep["runs"].items():
        commit = r.get("git_commit") or "unknown"
        segs = r.get("segments") or []
        flag = " (**uncommitted changes**)" if ran_dirty(commit, segs) else ""
        v = r.get("versions") or {}
        lines.append(f"- **{name}**: `{r.get('command')}`; data: {r.get('data_source')}; {r.get('hardware')}; "
                     f"python {v.get('python')}, torch {v.get('torch')}; git {commit}{flag}; "
                     f"{r.get('started')} → {r.get('finished')}"
                     f"{segments_text(segs)}")
    return "\n".join(lines) + "\n"


def plots(rep: dict, out: Path) -> list[str]:
    """curves.png, gradient_cosine.png, accuracy_vs_synops.png (those with data); returns the paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    made = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    todo = {name: a["curve"] for name, a in (rep.get("in_progress") or {}).items()}
    for name, rows in {**rep["curves"], **todo}.items():
        arm = name.rsplit("-seed", 1)[0]
        ep = [r["epoch"] for r in rows]
        kw = dict(color=f"C{list(DESCRIPTIONS).index(arm)}", marker="o", ms=3, ls="--" if name in todo else "-",
                  label=f"{DESCRIPTIONS[arm]} ({name[len(arm) + 1:]}{', in progress' if name in todo else ''})")
        axes[0].plot(ep, [100 * r["test_error"] for r in rows], **kw)
        axes[1].plot(ep, [100 * r["train_error"] for r in rows], **kw)
    for ax, what in zip(axes, ("test", "train")):
        ax.set(xlabel="epoch", ylabel=f"{what} error (%)", title=f"{what} error")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)
    made.append(str(out / "curves.png"))
    rows = (rep.get("gradients") or {}).get("rows") or []
    if rows:
        layers = list(dict.fromkeys(r["layer"] for r in rows))
        fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3.4), squeeze=False)
        for ax, la in zip(axes[0], layers):
            for method in dict.fromkeys(r["method"] for r in rows if r["ref"] == "bptt"):
                sub = [r for r in rows if r["ref"] == "bptt" and r["method"] == method and r["layer"] == la]
                ax.plot([r["epoch"] for r in sub], [r["cosine"] for r in sub], marker="o", ms=3,
                        color=f"C{list(DESCRIPTIONS).index(method)}", label=DESCRIPTIONS[method])
            ax.set(title=la, xlabel="epoch of the rate-EP weights", ylim=(-0.1, 1.05))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][0].set_ylabel("cosine with BPTT's gradient")
        axes[0][-1].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / "gradient_cosine.png", dpi=120)
        plt.close(fig)
        made.append(str(out / "gradient_cosine.png"))
    cv = (rep.get("conversion") or {}).get("rows") or []
    spk = [r for r in cv if r["run_as"] == "spiking" and r.get("synops_per_sample")]
    if spk:
        fig, ax = plt.subplots(figsize=(6, 4))
        for w in dict.fromkeys(r["weights"] for r in spk):
            sub = [r for r in spk if r["weights"] == w]
            ax.plot([r["synops_per_sample"] for r in sub], [100 * r["test_error"] for r in sub], marker="o",
                    color=f"C{list(DESCRIPTIONS).index(w)}", label=f"{DESCRIPTIONS[w]} weights")
            for r in sub:
                ax.annotate(f"T={r['steps']}", (r["synops_per_sample"], 100 * r["test_error"]), fontsize=6)
        ax.set(xscale="log", xlabel="synaptic operations per image (spiking inference)", ylabel="test error (%)",
               title="accuracy vs synaptic operations")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_synops.png", dpi=120)
        plt.close(fig)
        made.append(str(out / "accuracy_vs_synops.png"))
    return made
