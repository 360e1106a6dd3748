"""``export_run`` (run folder → NIR or HDF5 file, checked and verified) and ``import_network`` (file →
EP network). The CLI's ``export`` and ``import`` commands are thin layers over these."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


import rate_ref as R
from rate_ref.network import EPNetwork

from ..checkpoint import atomic_save, atomic_write_text, load_weights
from ..config import Config, config_from_dict, dump_config, load_config
from ..learning import default_windows
from ..runinfo import choose_threads, now, provenance
from .errors import ExportError
from .files import write_atomic
from .profile import deviations, overrides as profile_overrides

NIR_FORMAT = "spiking-ep/nir-export"
FORMAT_VERSION = 1
SCHEDULE = ("forward: each time step the layers update in order 1..N; layer n integrates the drive of "
            "layer n-1's spikes of this step plus the feedback of layer n+1's spikes of the previous step "
            "(the order nirtorch executes this graph in: nodes by name, a cycle closed by the previous step's value)")
STEP = ("discrete time, dt = 1 step: every step each neuron node integrates its summed input as a charge "
        "(v <- v + r*I for IF; v <- v*exp(-1/tau) + r*I for LIF, tau in steps), spikes when v > v_threshold and "
        "resets to v_reset; the input is constant (the image each step); spikes are 0/1 per step")
READOUT = ("prediction = argmax over classes of the output summed over the last `window` of the `T1` steps "
           "(the readout of spike counts)")


@dataclass
class Imported:
    """A network rebuilt from a file: ``net`` (float32), its ``config`` (from the file), the file's
    ``metadata`` and whether the weights are bit-exact (``exact``; False only for hand-edited graphs)."""
    net: EPNetwork
    config: Config | None
    metadata: dict = field(default_factory=dict)
    exact: bool = True
    note: str = ""


def load_run(run_dir: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> tuple[Config, EPNetwork, dict]:
    """(config, network with the run's weights, summary.json or {}); errors name the folder and file."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ExportError(f"run folder {run_dir} does not exist")
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir} is a file, not a run folder; pass the folder that spiking-ep train wrote")
    if not (run_dir / "config.yaml").is_file():
        raise ExportError(f"{run_dir}: no config.yaml there (is it a run folder?)")
    cfg = load_config(run_dir / "config.yaml", overrides)
    if not (run_dir / "weights.pt").is_file():
        raise ExportError(f"{run_dir}: no weights.pt there (has the run finished an epoch?)")
    net = R.build_network(cfg.model)
    load_weights(net, run_dir / "weights.pt")           # CheckpointError names a corrupt or foreign file
    summary = {}
    if (run_dir / "summary.json").is_file():
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            summary = {}
    return cfg, net, summary


def default_steps(cfg: Config) -> int:
    """Free-phase steps of the exported network: the run's inference T1 for a spiking run; at least
    100 for a rate run (a spiking readout over a handful of steps is too coarse)."""
    t = cfg.method.inference_T1
    return t if cfg.model.kind == "spiking" else max(100, t)


def window_for(cfg: Config, steps: int) -> int:
    """The readout window inference uses at ``steps`` (default: the last half)."""
    return default_windows(steps, cfg.method.T2, cfg.spiking.window)[0]


def neuron_of(cfg: Config, net: EPNetwork) -> dict:
    sc = cfg.spiking
    theta = float(sc.v_threshold) if sc.v_threshold is not None else float(net.theta)
    if sc.neuron == "lif" and sc.tau_mem is not None:
        return {"kind": "lif", "theta": theta, "tau_mem": float(sc.tau_mem)}
    return {"kind": "if", "theta": theta}


def input_stats(cfg: Config) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) the images are normalised with: x = (pixel/255 − mean) / std."""
    from .. import data as D
    spec = D._SPECS[D._canonical_name(cfg.data.name)]
    # as training normalises (spiking_ep.train.normalisation): data.std, where given, replaces the dataset's
    std = cfg.data.std or spec.std
    return list(spec.mean), [s * cfg.data.std_scale for s in std]


def metadata(cfg: Config, run_dir: Path, summary: dict, *, neuron: dict, feedback: str, steps: int, window: int,
             layouts: list) -> dict:
    """Graph-level metadata: flat keys, strings and numbers only (NIR reads one level back)."""
    import numpy as np
    mean, std = input_stats(cfg)
    m = cfg.method
    return {
        "format": NIR_FORMAT, "format_version": FORMAT_VERSION, "created": now(),
        "exported_by": f"spiking-ep {provenance().get('versions', {}).get('spiking-ep')}",
        "source_run": str(run_dir), "source_git_commit": str(summary.get("git_commit")),
        "source_data": str(summary.get("data_source")),
        "schedule": SCHEDULE, "step_convention": STEP, "readout": READOUT,
        "T1": int(steps), "window": int(window), "feedback": feedback,
        "neuron": neuron["kind"].upper(), "reset": "to v_reset = 0 (NIR); no membrane floor or ceiling",
        "theta": neuron["theta"], **({"tau_mem_steps": neuron["tau_mem"]} if "tau_mem" in neuron else {}),
        "pooling": "2x2 average pooling folded into each conv layer: one stride-2 (k+1)x(k+1) convolution",
        "layouts": json.dumps([lay.describe() for lay in layouts]),
        "input_preprocessing": "x = (pixel / 255 - mean) / std per channel, fed every step as a constant current",
        "input_mean": np.array(mean), "input_std": np.array(std),
        "ep_method": m.name, "ep_estimator": m.estimator, "ep_beta": float(m.beta), "ep_T1": m.T1, "ep_T2": m.T2,
        "ep_mode": m.mode, "ep_rule": cfg.spiking.rule, "model_kind": cfg.model.kind,
        "trained_spiking_settings": json.dumps({"reset": cfg.spiking.reset, "v_floor": cfg.spiking.v_floor,
                                                "v_ceiling": cfg.spiking.v_ceiling,
                                                "rate_estimate": cfg.spiking.rate_estimate}),
        "nir_exact_profile": " ".join(profile_overrides()),
        "config_yaml": dump_config(cfg),
    }


def _out_path(run_dir: Path, out, feedback: str, fmt: str) -> Path:
    if out:
        return Path(out)
    return run_dir / f"export-{feedback}.{'nir' if fmt == 'nir' else 'h5'}"


def export_run(run_dir: str | Path, *, out: str | Path | None = None, feedback: str = "full", fmt: str = "nir",
               steps: int | None = None, n_verify: int = 16, n_test: int | None = 1000, verify: bool = True,
               importers: bool = True, overrides: tuple[str, ...] | list[str] = (), max_weights: int | None = None,
               log=print) -> dict:
    """Export the run in ``run_dir`` to ``out`` (default ``RUN_DIR/export-<feedback>.nir|h5``).

    The file is written to a temporary name, read back and compared with what was meant to be
    written, then renamed. With ``verify`` the file is executed and compared with our simulator
    (:mod:`.verify`). Returns the report (also written as ``<out>.json``).
    """
    from .nir_graph import DEFAULT_MAX_WEIGHTS
    if fmt not in ("nir", "h5"):
        raise ExportError(f"--format must be nir or h5, got {fmt!r}")
    if feedback not in ("full", "none"):
        raise ExportError(f"--feedback must be full or none, got {feedback!r}")
    run_dir = Path(run_dir)
    cfg, net, summary = load_run(run_dir, overrides)
    if verify:
        choose_threads(cfg.train.threads, log)
    steps = int(steps or default_steps(cfg))
    if steps < 1:
        raise ExportError(f"--steps must be ≥ 1, got {steps}")
    window = window_for(cfg, steps)
    out = _out_path(run_dir, out, feedback, fmt)
    meta_args = dict(feedback=feedback, steps=steps, window=window, neuron=neuron_of(cfg, net))
    if fmt == "nir":
        size, layouts = _write_nir(net, cfg, run_dir, summary, out, max_weights or DEFAULT_MAX_WEIGHTS, **meta_args)
    else:
        from .h5 import write_h5
        from .layout import layouts as _layouts
        lays = _layouts(net, feedback)
        layouts = [lays[0], *lays[1]]
        size = write_h5(out, net, meta_args["neuron"], metadata(cfg, run_dir, summary, layouts=layouts, **meta_args))
    log(f"wrote {out} ({size:,} bytes, {fmt}, feedback {feedback}, T1 = {steps}, window = {window})")
    report = {"file": str(out), "format": fmt, "bytes": size, "feedback": feedback, "T1": steps, "window": window,
              "run": str(run_dir), "neuron": neuron_of(cfg, net), "layouts": [lay.describe() for lay in layouts],
              "profile_changes": deviations(cfg), "provenance": {**provenance(), "packages": package_versions()}}
    if verify:
        from .verify import verify_export
        report["verification"] = verify_export(out, fmt, cfg, net, steps=steps, window=window, n_verify=n_verify,
                                               n_test=n_test, importers=importers, log=log)
    atomic_write_text(json.dumps(report, indent=2, default=str) + "\n", Path(str(out) + ".json"))
    return report


def _write_nir(net, cfg, run_dir, summary, out: Path, max_weights: int, *, feedback, steps, window, neuron):
    import nir

    from .layout import layouts as _layouts
    from .nir_graph import build_graph, compare_graphs, read_graph
    lin0, lays = _layouts(net, feedback)
    meta = metadata(cfg, run_dir, summary, neuron=neuron, feedback=feedback, steps=steps, window=window,
                    layouts=[lin0, *lays])
    graph, info = build_graph(net, feedback=feedback, neuron=neuron, metadata=meta,
                              max_weights=max_weights)

    def check(tmp: Path) -> None:
        back = read_graph(tmp)
        compare_graphs(back, graph, f"{out} (written)")
        if back.metadata.get("format") != NIR_FORMAT:
            raise ExportError(f"{out}: the metadata did not survive writing")

    size = write_atomic(out, lambda tmp: nir.write(tmp, graph), check)
    return size, info["layouts"]


def package_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("nir", "nirtorch", "h5py", "snntorch", "norse"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


# --- import ---------------------------------------------------------------------------------------
def file_kind(path: str | Path) -> str:
    """``"nir"`` or ``"h5"`` (our plain layout), from the file's content; errors name the file."""
    import h5py
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path} does not exist")
    if path.is_dir():
        raise ExportError(f"{path} is a folder; pass a .nir or .h5 file written by spiking-ep export")
    try:
        with h5py.File(path, "r") as f:
            if "node" in f and "version" in f:
                return "nir"
            from .h5 import H5_FORMAT
            if f.attrs.get("format") == H5_FORMAT:
                return "h5"
    except OSError as e:
        raise ExportError(f"{path} cannot be read as HDF5 ({e}); is it a complete .nir / .h5 file?") from None
    raise ExportError(f"{path} is HDF5 but neither a NIR graph nor a spiking-ep HDF5 export")


def _config_from_yaml(text: str, source: str) -> Config:
    import yaml
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ExportError(f"{source}: the stored config is not valid YAML ({e})") from None
    return config_from_dict(tree, f"{source} (stored config)")


def import_network(path: str | Path, *, config: Config | None = None) -> Imported:
    """Rebuild the EP network from a file ``export_run`` wrote (NIR or our HDF5 layout).

    ``config``: build this architecture instead of the one stored in the file (its shapes must match;
    a mismatch is an :class:`ExportError` naming the node and both shapes).
    """
    path = Path(path)
    if file_kind(path) == "h5":
        from .h5 import read_h5
        return read_h5(path, config=config)
    from .nir_graph import build_graph, compare_graphs, load_weights_from_graph, read_graph
    graph = read_graph(path)
    meta = dict(graph.metadata or {})
    if meta.get("format") != NIR_FORMAT:
        raise ExportError(f"{path} is a NIR graph, but not one spiking-ep export wrote (no '{NIR_FORMAT}' metadata): "
                          f"the EP network (layers, θ, feedback) cannot be rebuilt from it")
    cfg = config or _config_from_yaml(str(meta.get("config_yaml", "")), str(path))
    try:
        net = R.build_network(cfg.model)
    except ValueError as e:
        raise ExportError(f"{path}: {e}") from None
    feedback = str(meta.get("feedback", "full"))
    load_weights_from_graph(net, graph, feedback, str(path))
    rebuilt, _ = build_graph(net, feedback=feedback, neuron=neuron_of(cfg, net), metadata={}, max_weights=2 ** 62)
    try:
        compare_graphs(graph, rebuilt, str(path))
    except ExportError as e:
        # e.g. a graph edited elsewhere: its conv kernels are no longer a folded k×k kernel, or a feedback
        # node is no longer the transpose of its forward node. Keep what was read, and say what differs.
        return Imported(net=net, config=cfg, metadata=meta, exact=False,
                        note=f"the network does not reproduce the file exactly: {e}")
    return Imported(net=net, config=cfg, metadata=meta)


def save_imported(imp: Imported, out_dir: str | Path) -> Path:
    """Write ``config.yaml`` and ``weights.pt`` (a folder ``spiking-ep evaluate --weights`` reads); never
    overwrites an existing run's weights."""
    out_dir = Path(out_dir)
    if (out_dir / "weights.pt").exists():
        raise ExportError(f"{out_dir} already holds weights.pt; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    if imp.config is not None:
        atomic_write_text(dump_config(imp.config), out_dir / "config.yaml")
    atomic_save(imp.net.state_dict(), out_dir / "weights.pt")
    return out_dir
