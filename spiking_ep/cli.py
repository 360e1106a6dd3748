"""Command line: ``spiking-ep train|evaluate|report|gdu|compare|export|import`` (also ``python -m spiking_ep``).

Errors that a user can fix (config, data, checkpoint) print one message naming the file or key
and exit with status 2; divergence exits with 3; SIGINT/SIGTERM checkpoint and exit with 130/143.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rate_ref.config import ConfigError

from .checkpoint import CheckpointError
from .config import dump_config, load_config


def _add_config_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument("config", nargs="?" if optional else None, default=None,
                   help="YAML config file" + (" (default: the embedded MNIST demo)" if optional else ""))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 --set model.layers.0.features=256")


def _plain(text: str) -> str:
    """Docstring text for the terminal: reStructuredText ``literals`` without their backticks."""
    return text.replace("``", "")


def _parser_train(sub) -> None:
    p = sub.add_parser("train", help="train a network (EP rate/spiking, or BPTT)")
    _add_config_args(p, optional=True)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _parser_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="test error of trained weights (as a rate or spiking network)",
                       description="Test error of trained weights. RUN_DIR: the run's own config.yaml (its "
                       "network, data and data subset) and weights.pt; --config and --set override that config. "
                       "A config file instead of RUN_DIR needs --weights.")
    p.add_argument("target", metavar="RUN_DIR", help="a run folder, or a YAML config file (then with --weights)")
    p.add_argument("--config", help="evaluate with this config file instead of the run's config.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.kind=spiking --set data.test_subset=null")
    p.add_argument("--weights", metavar="RUN_OR_FILE", help="a run folder or a weights file (default: RUN_DIR)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--steps", metavar="T,T,...", help="sweep the inference time steps (free-phase T1), e.g. 25,50,100,200")
    p.add_argument("--out", help="with --steps: write the sweep as a markdown table here")
    p.add_argument("--plot", help="with --steps: plot error and synaptic operations vs time steps (PNG)")


def _parser_report(sub) -> None:
    p = sub.add_parser("report", help="markdown table (+ plot) from finished run folders")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--title", default="spiking-ep results")
    p.add_argument("--out", help="write the markdown table here")
    p.add_argument("--plot", help="write learning curves (PNG) here")
    p.add_argument("--raw", metavar="DIR", help="also copy each run's config.yaml, metrics.csv and summary.json "
                   "(never weights) into DIR/<run name>/, the raw data beside a results table")


def _parser_compare(sub) -> None:
    p = sub.add_parser("compare", help="train rate EP, spiking EP (rates, stdp), BPTT and spiking BPTT on the same "
                       "network and data, and report the gaps")
    _add_config_args(p)
    p.add_argument("--arms", nargs="+", metavar="ARM", help="arms to train (default: the config's compare.arms; "
                   "choose from rate_ep bptt spiking_rates spiking_stdp spiking_bptt)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per arm (train.seed, +1, …; default 1)")
    p.add_argument("--out", metavar="DIR", help="comparison folder: one run folder per arm and seed, and the report "
                   "(default: <train.out_dir>/compare-<config stem>)")
    p.add_argument("--runs", nargs="+", metavar="RUN_DIR", help="compare these finished run folders instead of training")
    p.add_argument("--train-only", action="store_true", help="train (or resume) the arms, write no report "
                   "(e.g. one process per core, each with its own --arms)")
    p.add_argument("--report-only", action="store_true", help="report on the finished arms in --out, train nothing")
    p.add_argument("--no-measure", action="store_true", help="report accuracy and curves only (no gradient, "
                   "fixed-point, conversion or memory measurements)")
    p.add_argument("--title", help="report title")
    p.add_argument("--results", metavar="DIR", help="also copy the report, its measurements and every arm's "
                   "config.yaml / metrics.csv / summary.json (no weights) into DIR (a results folder)")


def _parser_gdu(sub) -> None:
    p = sub.add_parser("gdu", help="EP vs BPTT per-step gradient check (paper Fig. 2), untrained or trained")
    _add_config_args(p)
    p.add_argument("--checkpoint", metavar="RUN_OR_FILE", help="trained weights: a run folder or a weights.pt file "
                   "(default: the untrained network initialised from train.seed)")
    p.add_argument("--n-images", type=int, default=10, help="training images in the batch (default 10)")
    p.add_argument("--beta", type=float, default=None, help="nudging strength (default: method.beta)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: a new folder under train.out_dir)")


def _parser_export(sub) -> None:
    p = sub.add_parser("export", help="export a trained network to NIR (or plain HDF5), check and verify it")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder (config.yaml + weights.pt)")
    p.add_argument("--out", metavar="FILE", help="output file (default: RUN_DIR/export-<feedback>.nir|h5); "
                   "the verification report goes to FILE.json")
    p.add_argument("--feedback", choices=("full", "none"), default="full",
                   help="full: feedback edges between layers (the EP network); none: forward edges only")
    p.add_argument("--format", dest="fmt", choices=("nir", "h5"), default="nir")
    p.add_argument("--steps", type=int, help="free-phase time steps T1 of the exported network (default: the run's "
                   "inference T1 for spiking runs, at least 100 for rate runs)")
    p.add_argument("--n-verify", type=int, default=16, help="test images for the spike-for-spike check (default 16)")
    p.add_argument("--n-test", type=int, default=1000, help="test images for the test errors (default 1000; 0 = all)")
    p.add_argument("--no-verify", action="store_true", help="write and check the file only")
    p.add_argument("--no-importers", action="store_true", help="skip the snnTorch and norse importers")
    p.add_argument("--max-weights", type=int, help="largest weight array allowed in the graph (default 2^24 entries)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a value of the run's config, e.g. --set data.root=/data")


def _parser_import(sub) -> None:
    p = sub.add_parser("import", help="rebuild a network from an exported .nir / .h5 file (config.yaml + weights.pt)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", metavar="DIR", help="folder for config.yaml and weights.pt (default: FILE without its "
                   "suffix + '-imported'); evaluate it with spiking-ep evaluate DIR/config.yaml --weights DIR")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="spiking-ep", description=_plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"spiking-ep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_parser_train, _parser_evaluate, _parser_report, _parser_compare, _parser_gdu, _parser_export,
                _parser_import):
        add(sub)
    return parser


def _train(args) -> int:
    from .train import train
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise CheckpointError(f"--resume {run_dir}: no config.yaml there (is it a run folder?)")
        cfg = load_config(saved, args.overrides)
        if args.config is not None:
            given = load_config(args.config, args.overrides)
            if dump_config(given) != dump_config(cfg):
                raise ConfigError(f"{args.config} differs from the config of the run being resumed ({saved}); "
                                  f"resume without a config file, or start a new run")
        if args.overrides:  # e.g. more epochs: the run folder keeps describing what it ran
            from .checkpoint import atomic_write_text
            atomic_write_text(dump_config(cfg), saved)
        summary = train(cfg, resume=run_dir)
    else:
        cfg = load_config(args.config, args.overrides)
        if args.print_config:
            print(dump_config(cfg), end="")
            return 0
        if args.config is None:
            print("no config given: training the embedded demo (784-512-10 MNIST, symmetric EP, cross-entropy readout)")
        summary = train(cfg, config_path=args.config)
    print(json.dumps({k: summary[k] for k in ("run_dir", "epochs", "final_test_error", "best_test_error",
                                               "seconds_total", "device")}, indent=2))
    return 0


def _evaluate(args) -> int:
    from .evaluation import evaluate_weights, format_table, parse_steps, resolve
    cfg, weights, source = resolve(args.target, config=args.config, weights=args.weights, overrides=args.overrides)
    steps = parse_steps(args.steps, cfg.method.inference_T1)
    result = evaluate_weights(cfg, weights, steps, config_source=source)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    if args.out or args.plot:
        from .report import sweep_report
        sweep_report(result["results"], cfg, weights=weights, data=result["data"], out=args.out,
                     plot_path=args.plot, device=result["device"])
    return 0


def _report(args) -> int:
    from .report import report
    try:
        text = report(args.runs, title=args.title, out=args.out, plot_path=args.plot)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    if args.raw:
        from .report import collect_raw
        collect_raw(args.runs, args.raw)
    print(text)
    return 0


def _compare(args) -> int:
    from .compare import run_compare
    from .config import ARMS
    cfg = load_config(args.config, args.overrides)
    if args.arms and any(a not in ARMS for a in args.arms):
        raise ConfigError(f"--arms: {', '.join(a for a in args.arms if a not in ARMS)} unknown; choose from {', '.join(ARMS)}")
    if args.train_only and args.report_only:
        raise ConfigError("--train-only and --report-only exclude each other")
    out = args.out or str(Path(cfg.train.out_dir) / f"compare-{Path(args.config).stem}")
    if cfg.train.threads:
        import torch
        torch.set_num_threads(cfg.train.threads)
    run_compare(cfg, out=out, arms=tuple(args.arms) if args.arms else None, seeds=args.seeds, runs=args.runs,
                train=not args.report_only, report=not args.train_only, measure=not args.no_measure,
                title=args.title, results=args.results)
    return 0


def _export(args) -> int:
    from .export import export_run
    if args.n_verify < 1 or args.n_test < 0:
        raise ConfigError("--n-verify must be ≥ 1 and --n-test ≥ 0")
    report = export_run(args.run, out=args.out, feedback=args.feedback, fmt=args.fmt, steps=args.steps,
                        n_verify=args.n_verify, n_test=args.n_test or None, verify=not args.no_verify,
                        importers=not args.no_importers, overrides=args.overrides, max_weights=args.max_weights)
    checks = report.get("verification", {}).get("spike_check", [])
    print(json.dumps({"file": report["file"], "bytes": report["bytes"], "report": report["file"] + ".json",
                      **({"test_error": report["verification"]["test_error"]} if "verification" in report else {})},
                     indent=2))
    if any(c["dtype"] == "float64" and not c["identical"] for c in checks):
        print("spiking-ep: verification FAILED: the exported graph does not reproduce our simulator spike for "
              "spike (see the report)", file=sys.stderr)
        return 1
    return 0


def _import(args) -> int:
    from .export import import_network, save_imported
    imp = import_network(args.file)
    out = Path(args.out) if args.out else Path(args.file).with_suffix("").with_name(Path(args.file).stem + "-imported")
    save_imported(imp, out)
    print(json.dumps({"out": str(out), "layers": [type(l).__name__ for l in imp.net.layers],
                      "parameters": sum(p.numel() for p in imp.net.parameters()), "exact": imp.exact,
                      "source_run": imp.metadata.get("source_run"), **({"note": imp.note} if imp.note else {})},
                     indent=2))
    return 0


def _gdu(args) -> int:
    from .gdu import main as gdu_main
    return gdu_main(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DataError
    from .export.errors import ExportError
    from .train import Divergence, Interrupted
    try:
        return {"train": _train, "evaluate": _evaluate, "report": _report, "gdu": _gdu,
                "compare": _compare, "export": _export, "import": _import}[args.command](args)
    except (ConfigError, DataError, CheckpointError, ExportError) as e:
        print(f"spiking-ep: error: {e}", file=sys.stderr)
        return 2
    except Divergence as e:
        print(f"spiking-ep: diverged: {e}", file=sys.stderr)
        return 3
    except Interrupted as e:
        print(f"spiking-ep: {e}", file=sys.stderr)
        return 128 + e.signum


if __name__ == "__main__":
    sys.exit(main())
