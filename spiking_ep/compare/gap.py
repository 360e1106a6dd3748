"""The gap report's numbers, from the arms' run folders and their weight snapshots (report.json).

Sections: ``accuracy`` (per arm and seed, with error bars), ``gaps`` (points to rate EP and to
BPTT), ``gradients`` (agreement over training), ``fixed_point``, ``conversion``, ``cost``,
``confounds`` and ``provenance``. Measurements on weights are cached as JSON files in
``OUT/measurements/`` (the raw data of those tables); delete one to measure it again.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

import rate_ref as R

from .. import data as D
from ..checkpoint import atomic_write_text, load_weights
from ..config import Config, config_from_dict
from ..report import read_metrics, read_run
from ..runinfo import provenance
from . import measure as M
from .arms import DESCRIPTIONS, arm_config, confounds


# --- accuracy --------------------------------------------------------------------------------
def binomial_se(p: float, n: int) -> float:
    """Standard error of an error rate p measured on n independent test images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def accuracy(runs: dict[tuple[str, int], dict]) -> dict:
    """Per arm: per-seed final/best test error and final train error; mean and standard error.

    One seed: the binomial standard error of the test error; several: std over seeds / √seeds.
    """
    out = {}
    for arm in dict.fromkeys(a for a, _ in runs):
        seeds = sorted(s for a, s in runs if a == arm)
        per = []
        for s in seeds:
            r = runs[arm, s]
            rows, summ = r["rows"], r["summary"]
            per.append({"seed": summ.get("seed"), "epochs": len(rows), "final_test_error": rows[-1]["test_error"],
                        "best_test_error": min(x["test_error"] for x in rows),
                        "final_train_error": rows[-1]["train_error"], "n_test": summ.get("n_test"),
                        "run": r["name"]})
        finals = [p["final_test_error"] for p in per]
        mean = statistics.fmean(finals)
        if len(finals) == 1:
            se, how = binomial_se(mean, per[0]["n_test"]), "binomial standard error (one seed)"
            std = None
        else:
            std = statistics.stdev(finals)
            se, how = std / math.sqrt(len(finals)), f"std over {len(finals)} seeds / √{len(finals)}"
        out[arm] = {"description": DESCRIPTIONS[arm], "seeds": per, "mean_final_test_error": mean, "std": std,
                    "se": se, "se_how": how,
                    "mean_best_test_error": statistics.fmean(p["best_test_error"] for p in per),
                    "mean_final_train_error": statistics.fmean(p["final_train_error"] for p in per)}
    return out


def in_progress_arms(run_dirs: dict[tuple[str, int], Path], planned: int) -> dict:
    """Arms still training: epochs done of the ``planned`` ones, and the last and best errors so far."""
    out = {}
    for (arm, seed), d in run_dirs.items():
        rows = [{k: r.get(k) for k in ("epoch", "test_error", "train_error", "seconds")} for r in read_metrics(d)]
        out[f"{arm}-seed{seed}"] = {
            "arm": arm, "description": DESCRIPTIONS[arm], "dir": str(d), "epochs_done": len(rows),
            "epochs_planned": planned,
            "last_test_error": rows[-1]["test_error"], "best_test_error": min(r["test_error"] for r in rows),
            "last_train_error": rows[-1]["train_error"], "curve": rows}
    return out


def gaps(acc: dict) -> list[dict]:
    """Each arm's gap in percentage points to each reference arm present, ± √(se² + se_ref²)."""
    return [{"arm": arm, "ref": ref, "gap_points": 100 * (a["mean_final_test_error"] - b["mean_final_test_error"]),
             "pm_points": 100 * math.sqrt(a["se"] ** 2 + b["se"] ** 2)} for arm, ref, a, b in M.against_refs(acc)]


# --- measurements on weights -------------------------------------------------------------------
class Context:
    """What the measurements share: the arms' configs, data, normalisation, device and dtype."""

    def __init__(self, cfg: Config, arms: list[str], run_dirs: dict[tuple[str, int], Path], log=print):
        from ..prepare import load_data, normalisation, resolve_device
        self.cfg, self.arms, self.run_dirs, self.log = cfg, arms, run_dirs, log
        self.arm_cfgs = {a: config_from_dict(_yaml(run_dirs[a, 0] / "config.yaml"), str(run_dirs[a, 0]))
                         for a in arms}
        ref_cfg = self.arm_cfgs[arms[0]]
        self.ds = load_data(ref_cfg)
        self.mean, self.std = normalisation(ref_cfg, self.ds)
        self.device = resolve_device(cfg.train.device)
        self.dtype = getattr(torch, cfg.train.dtype)

    def net(self, weights: Path | None) -> R.EPNetwork:
        torch.manual_seed(self.cfg.train.seed)
        net = R.build_network(self.arm_cfgs[self.arms[0]].model)
        if weights is not None:
            load_weights(net, weights)
        return net.to(device=self.device, dtype=self.dtype)

    def batch(self, split: str, start: int, n: int):
        xs, ys = (self.ds.train_x, self.ds.train_y) if split == "train" else (self.ds.test_x, self.ds.test_y)
        x = D.normalize(xs[start:start + n], self.mean, self.std, dtype=self.dtype).to(self.device)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, ys[start:start + n].to(self.device)


def _yaml(path: Path) -> dict:
    import yaml
    return yaml.safe_load(Path(path).read_text())


def snapshot_epochs(run_dir: Path, wanted: tuple[int, ...] | None) -> list[int]:
    """Epochs with a ``weights-epochNNN.pt`` in ``run_dir`` (all, or those in ``wanted``)."""
    have = sorted(int(p.stem.split("epoch")[1]) for p in run_dir.glob("weights-epoch*.pt"))
    return [e for e in have if wanted is None or e in wanted]


def _rate_ep_source(ctx: Context) -> Path:
    return ctx.run_dirs.get(("rate_ep", 0)) or ctx.run_dirs[ctx.arms[0], 0]


def gradient_agreement(ctx: Context, arms: list[str]) -> dict:
    """Agreement of every arm's gradient with rate EP's and BPTT's on the rate-EP run's snapshots:
    the rows of every (method, reference) pair that involves one of ``arms`` (all arms: every row)."""
    cmp = ctx.cfg.compare
    src = _rate_ep_source(ctx)
    epochs = snapshot_epochs(src, cmp.grad_epochs)
    if not epochs:
        return {"rows": [], "note": f"no weight snapshots (weights-epochNNN.pt) in {src}"}
    rows = agreement_on_snapshots(ctx, src, epochs, arms)
    return {"rows": rows, "weights_from": src.name, "batches": cmp.grad_batches, "batch_size": cmp.grad_batch_size}


def agreement_on_snapshots(ctx: Context, src: Path, epochs: list[int], arms: list[str]) -> list[dict]:
    """Rows {epoch, method, ref, layer, cosine, rel_error, norm_ratio} on ``src``'s weight snapshots of
    ``epochs`` and the comparison's fixed training batches (mean over them), for every (method,
    reference) pair among ``ctx.arms`` that involves one of ``arms``."""
    cmp = ctx.cfg.compare
    wanted = {(m, r) for m, r, _, _ in M.against_refs(dict.fromkeys(ctx.arms)) if m in arms or r in arms}
    # only the estimates these pairs need (each arm's estimate does not depend on the others')
    need = {a: ctx.arm_cfgs[a] for a in ctx.arms if any(a in pair for pair in wanted)}
    rows = []
    for e in tqdm(epochs, desc="gradient agreement", disable=None):
        net = ctx.net(src / f"weights-epoch{e:03d}.pt")
        groups = M.layer_groups(net)
        per_batch = []
        for b in range(cmp.grad_batches):
            x, y = ctx.batch("train", b * cmp.grad_batch_size, cmp.grad_batch_size)
            grads = M.gradient_estimates(net, x, y, need, seed=b)
            per_batch.append([r for r in M.agreement(grads, groups) if (r["method"], r["ref"]) in wanted])
        rows += [{"epoch": e, **r} for r in M.mean_rows(per_batch)]
    return rows


def _first_arm(ctx: Context, candidates: tuple[str, ...]) -> str | None:
    return next((a for a in candidates if a in ctx.arm_cfgs), None)


def _arm_or_default(ctx: Context, arm: str | None, default: str, where) -> Config:
    return ctx.arm_cfgs[arm] if arm else arm_config(ctx.cfg, default, 0, where)


def fixed_points(ctx: Context, arms: list[str]) -> dict:
    """Fixed-point gap on the rate-EP run's initial and final weights (one measurement for all arms)."""
    cmp = ctx.cfg.compare
    src = _rate_ep_source(ctx)
    spk = _arm_or_default(ctx, _first_arm(ctx, SPIKING_FOR_FIXED_POINT), "spiking_rates", src.parent)
    rate = _arm_or_default(ctx, _first_arm(ctx, ("rate_ep",)), "rate_ep", src.parent)
    x, _ = ctx.batch("test", 0, cmp.fixed_point_images)
    out = {}
    epochs = snapshot_epochs(src, None)
    for tag, e in (("initial", epochs[0] if epochs else None), ("final", epochs[-1] if epochs else None)):
        weights = src / f"weights-epoch{e:03d}.pt" if e is not None else src / "weights.pt"
        out[tag] = {"epoch": e, **M.fixed_point_gap(ctx.net(weights), x, rate, spk, cmp.fixed_point_T1)}
    out["weights_from"] = src.name
    return out


def conversions(ctx: Context, arms: list[str]) -> dict:
    """The final weights of ``arms`` run as a rate and as a spiking network, test error vs steps."""
    cmp = ctx.cfg.compare
    n = cmp.conversion_test_subset or len(ctx.ds.test_x)
    tx, ty = ctx.ds.test_x[:n], ctx.ds.test_y[:n]
    as_kind = {"rate": _arm_or_default(ctx, _first_arm(ctx, ("rate_ep",)), "rate_ep", "."),
               "spiking": _arm_or_default(ctx, _first_arm(ctx, SPIKING_FOR_CONVERSION), "spiking_rates", ".")}
    rows = []
    for arm in arms:
        net = ctx.net(ctx.run_dirs[arm, 0] / "weights.pt")
        for kind, c in as_kind.items():
            for r in M.conversion(net, tx, ty, c, cmp.conversion_steps, ctx.mean, ctx.std, ctx.device, ctx.dtype):
                rows.append({"weights": arm, "run_as": kind, **r})
    return {"rows": rows, "n_test": n}


def memory(ctx: Context, arms: list[str]) -> dict:
    """Peak memory one training step of each of ``arms`` allocates."""
    return {arm: M.peak_memory(ctx.arm_cfgs[arm]) for arm in tqdm(arms, desc="peak memory", disable=None)}


SPIKING_FOR_FIXED_POINT = ("spiking_rates", "spiking_stdp", "spiking_bptt")
SPIKING_FOR_CONVERSION = ("spiking_rates", "spiking_stdp")
MEASUREMENTS = {"gradients": gradient_agreement, "fixed_point": fixed_points, "conversion": conversions,
                "memory": memory}
# bumped when a measurement's rows gain a field (gradients 2: norm_ratio): older caches are made again
VERSIONS = {"gradients": 2, "fixed_point": 1, "conversion": 1, "memory": 1}


def basis(name: str, arms: list[str]) -> dict:
    """What a measurement made for ``arms`` depends on besides each arm's own weights and config: the
    weights it is measured on and the arms whose configs define the rate / spiking runs. Cached rows
    are reused for a larger set of arms only while this is unchanged."""
    first = lambda candidates: next((a for a in candidates if a in arms), None)      # noqa: E731
    src = "rate_ep" if "rate_ep" in arms else arms[0]
    return {"gradients": {"weights_from": src},
            "fixed_point": {"weights_from": src, "rate": first(("rate_ep",)), "spiking": first(SPIKING_FOR_FIXED_POINT)},
            "conversion": {"rate": first(("rate_ep",)), "spiking": first(SPIKING_FOR_CONVERSION)},
            "memory": {}}[name]


def _merge(name: str, old: dict, new: dict, arms: list[str]) -> dict:
    """``old`` (measured on some arms) extended by ``new`` (the others), rows in the order a single
    measurement of all ``arms`` would give."""
    if name == "memory":
        both = {**old, **new}
        return {a: both[a] for a in arms if a in both}
    out = {**old, **new}
    rows = old.get("rows", []) + new.get("rows", [])
    if name == "conversion":
        out["rows"] = sorted(rows, key=lambda r: arms.index(r["weights"]))     # stable: steps stay in order
    else:
        out["rows"] = sorted(rows, key=lambda r: (r["epoch"], M.REFS.index(r["ref"]), arms.index(r["method"])))
    return out


def parts_of(cached: dict) -> list[dict]:
    """A cached measurement's parts (arms, provenance); a cache written before parts existed is one part."""
    return cached.get("parts") or [{"arms": cached.get("arms"), "provenance": cached.get("provenance")}]


def measured(ctx: Context, out: Path, which: tuple[str, ...] = tuple(MEASUREMENTS)) -> dict:
    """Each measurement from its cache file ``out/measurements/<name>.json``, extended to the arms it
    lacks (e.g. the last arm of a long comparison, finished after the others were measured) or made
    again when its :func:`basis` changed. The file lists each part (arms, provenance) in ``parts``."""
    folder = out / "measurements"
    folder.mkdir(parents=True, exist_ok=True)
    res = {}
    for name in which:
        path = folder / f"{name}.json"
        cached = json.loads(path.read_text()) if path.is_file() else None
        done = (cached or {}).get("arms") or []
        reusable = (bool(done) and set(done) <= set(ctx.arms) and basis(name, done) == basis(name, ctx.arms)
                    and cached.get("version", 1) == VERSIONS[name])
        # the fixed-point gap is one measurement for all arms: nothing to add while its basis holds
        todo = [] if reusable and name == "fixed_point" else [a for a in ctx.arms if not reusable or a not in done]
        if reusable and not todo:
            res[name] = {**cached, "parts": parts_of(cached)}
            continue
        if cached is None:
            ctx.log(f"measuring: {name}")
        elif reusable:
            ctx.log(f"{path} was measured for arms {done}: measuring {todo}")
        else:
            ctx.log(f"{path} was measured for arms {done or 'not recorded'} on another basis or by an older "
                    "version: measuring again")
        body, parts = {}, []
        if reusable:
            body = {k: v for k, v in cached.items() if k not in ("arms", "provenance", "parts", "version")}
            parts = parts_of(cached)
        prov = provenance(ctx.device)
        if todo:
            body = _merge(name, body, MEASUREMENTS[name](ctx, todo), ctx.arms)
            parts = parts + [{"arms": todo, "provenance": prov}]
        res[name] = {**body, "arms": list(ctx.arms), "version": VERSIONS[name], "provenance": prov, "parts": parts}
        atomic_write_text(json.dumps(res[name], indent=1) + "\n", path)
    return res


# --- cost ------------------------------------------------------------------------------------
def cost(ctx: Context, runs: dict, mem: dict) -> list[dict]:
    """Per arm: steps, spikes, synaptic operations or multiply-accumulates, time and memory."""
    rows = []
    for arm in ctx.arms:
        c, r = ctx.arm_cfgs[arm], runs[arm, 0]
        last, m = r["rows"][-1], c.method
        net = ctx.net(None)
        eval_T = m.inference_T1
        train_steps = m.T1 + (2 * m.T2 if m.name == "ep" else m.bptt_K)   # BPTT: K backward steps
        secs = [x["seconds"] for x in r["rows"]]
        rows.append({
            "arm": arm, "T1": m.T1, "T2": m.T2 if m.name == "ep" else None, "K": m.bptt_K if m.name == "bptt" else None,
            "eval_T1": eval_T, "mode": m.mode, "warm_start": m.warm_start, "tol": m.tol,
            "mean_steps_used": {k[6:]: last[k] for k in last if k.startswith("steps_")},
            "spikes_per_neuron_step_train": {k[23:]: last[k] for k in last if k.startswith("spikes_per_neuron_step_")},
            "synops_per_sample_train": last.get("synops_per_sample"),
            "synops_per_sample_inference": last.get("test_synops_per_sample"),
            "spikes_per_neuron_step_inference": last.get("test_spikes_per_neuron_step"),
            "rate_macs_per_sample_inference": M.inference_macs(net, eval_T),
            "rate_macs_per_sample_train_phases": train_steps * M.rate_macs(net)["per_step"],
            "seconds_per_epoch": statistics.fmean(secs), "seconds_total": r["summary"].get("seconds_total"),
            "torch_threads": last.get("torch_threads"),
            "load_avg_1m": statistics.fmean(x.get("load_avg_1m", float("nan")) for x in r["rows"]),
            "peak_memory_bytes": (mem.get(arm) or {}).get("peak_bytes"),
        })
    return rows


def build(cfg: Config, run_dirs: dict[tuple[str, int], Path], out: Path, *, measure: bool = True, log=print,
          in_progress: dict[tuple[str, int], Path] | None = None) -> dict:
    """Assemble report.json's content (measuring what is not cached yet when ``measure``).

    ``in_progress`` arms (still training) are listed apart, with their curves so far; they take no
    part in the gaps or the measurements.
    """
    runs = {k: read_run(d) for k, d in run_dirs.items()}
    arms = list(dict.fromkeys(a for a, _ in run_dirs))
    acc = accuracy(runs)
    report = {"accuracy": acc, "gaps": gaps(acc),
              "confounds": confounds({a: runs[a, 0]["config"] for a in arms}),
              "runs": {f"{a}-seed{s}": {"dir": str(d), "command": runs[a, s]["summary"].get("command"),
                                       "git_commit": runs[a, s]["summary"].get("git_commit"),
                                       "hardware": runs[a, s]["summary"].get("hardware"),
                                       "versions": runs[a, s]["summary"].get("versions"),
                                       "started": runs[a, s]["summary"].get("started"),
                                       "finished": runs[a, s]["summary"].get("finished"),
                                       "data_source": runs[a, s]["summary"].get("data_source"),
                                       "segments": runs[a, s]["summary"].get("segments")}
                      for (a, s), d in run_dirs.items()},
              "curves": {f"{a}-seed{s}": [{k: row.get(k) for k in ("epoch", "test_error", "train_error", "seconds")}
                                          for row in runs[a, s]["rows"]] for a, s in run_dirs},
              "in_progress": in_progress_arms(in_progress or {}, cfg.train.epochs),
              "provenance": provenance(cfg.train.device if cfg.train.device != "auto" else "cpu")}
    if measure:
        ctx = Context(cfg, arms, run_dirs, log)
        res = measured(ctx, out)
        report.update(gradients=res["gradients"], fixed_point=res["fixed_point"], conversion=res["conversion"],
                      memory=res["memory"], cost=cost(ctx, runs, res["memory"]))
    return report
