"""Training loop: EP (any estimator, rate or spiking) or BPTT, with a self-describing run folder.

Run folder (``train.out_dir/run_name``):
    config.yaml     the resolved config (reloadable)
    metrics.csv     one row per epoch: errors, losses, learning rate, seconds, extras
    summary.json    seed, versions, device, git commit, data source, totals
    weights.pt      weights-only checkpoint (``torch.load(..., weights_only=True)``)
    checkpoint.pt   full resumable state: model, optimizer, scheduler, RNG states, data position

Checkpoints are written atomically at every epoch end, every ``checkpoint_every_minutes`` and
every ``checkpoint_every_batches``; ``resume`` continues from the last one and, on the CPU,
reproduces the uninterrupted run exactly. SIGINT/SIGTERM finish the current batch, checkpoint
and stop (:class:`Interrupted`).
"""
from __future__ import annotations

import csv
import io
import json
import math
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import torch
from tqdm import tqdm

import rate_ref as R
from rate_ref.config import ConfigError

from . import data as D
from .checkpoint import atomic_save, atomic_write_text, check_state_dict, load_file
from .config import Config, dump_config
from .gradients import Divergence, batch_stats, check_states, compute_gradients, first_nonfinite
from .inference import as_input, evaluate, infer
from .runinfo import choose_threads, command_line, git_commit, hardware, machine_load, now, versions

__all__ = ["Divergence", "Interrupted", "train", "evaluate", "infer", "compute_gradients", "check_states",
           "load_data", "normalisation", "resolve_device", "versions", "command_line", "git_commit", "hardware"]


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM: the current batch finished and a checkpoint was written."""

    def __init__(self, signum: int, run_dir: Path):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}; checkpoint written; "
                         f"continue with: spiking-ep train --resume {run_dir}")


# --- set-up ------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available (use cpu or auto)")
    return dev


def load_data(cfg: Config) -> D.Dataset:
    """Load the dataset and check that its images fit ``model.input_shape``."""
    dc = cfg.data
    ds = D.load_dataset(dc.name, dc.root, allow_embedded=dc.allow_embedded,
                        train_subset=dc.train_subset, test_subset=dc.test_subset)
    shape = tuple(ds.train_x.shape[1:])
    if shape != tuple(cfg.model.input_shape):
        raise ConfigError(f"model.input_shape: {list(cfg.model.input_shape)} does not match the {dc.name} "
                          f"images {list(shape)}")
    return ds


def normalisation(cfg: Config, ds: D.Dataset) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for :func:`spiking_ep.data.normalize`; std scaled by ``data.std_scale``."""
    return ds.mean, tuple(s * cfg.data.std_scale for s in ds.std)


def param_groups(net: R.EPNetwork, cfg: Config) -> list[dict]:
    """One SGD group per layer (W, b, B) and one for the readout, with the per-layer learning rates."""
    groups = [{"params": list(layer.parameters()), "lr": lr, "name": f"layer{i + 1}"}
              for i, (layer, lr) in enumerate(zip(net.layers, cfg.optim.lrs))]
    if net.readout is not None:
        groups.append({"params": list(net.readout.parameters()), "lr": cfg.optim.lrs[-1], "name": "readout"})
    return groups


def make_optimizer(net, cfg: Config):
    oc = cfg.optim
    opt = torch.optim.SGD(param_groups(net, cfg), lr=oc.lrs[0], momentum=oc.momentum,
                          weight_decay=oc.weight_decay, nesterov=oc.nesterov)
    sched = None
    if oc.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=oc.T_max or cfg.train.epochs, eta_min=oc.eta_min)
    return opt, sched


def fb_angles(net) -> dict:
    """Angle (degrees) between forward and backward weights per unidirectional layer."""
    out = {}
    for i, layer in enumerate(net.layers):
        if layer.B is not None:
            w, b = layer.weight.detach().flatten(), layer.B.detach().flatten()
            cos = (w @ b / (w.norm() * b.norm())).clamp(-1, 1).item()
            out[f"angle_layer{i + 1}"] = math.degrees(math.acos(cos))
    return out


# --- the loop ----------------------------------------------------------------------------------
class _Signals:
    """SIGINT/SIGTERM set a flag; the loop stops after the current batch."""

    def __init__(self):
        self.received = None
        self._old = {}

    def __enter__(self):
        if hasattr(signal, "SIGTERM"):
            for s in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._old[s] = signal.signal(s, self._handle)
                except ValueError:  # not the main thread
                    pass
        return self

    def _handle(self, signum, frame):
        if self.received is not None:  # second signal: give up at once
            raise KeyboardInterrupt
        self.received = signum
        print(f"\n{signal.Signals(signum).name} received: finishing the current batch, then checkpointing",
              file=sys.stderr)

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def new_run_dir(cfg: Config, config_path: str | None) -> Path:
    name = cfg.train.run_name
    if not name:
        stem = Path(config_path).stem if config_path else "default"
        name = f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(cfg.train.out_dir) / name
    if run_dir.exists():
        raise ConfigError(f"run folder {run_dir} already exists; pass --resume {run_dir} to continue it, "
                          f"or choose another train.run_name (results are never overwritten)")
    return run_dir


def _write_metrics(run_dir: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(buf.getvalue(), run_dir / "metrics.csv")


def train(cfg: Config, *, run_dir: Path | None = None, config_path: str | None = None,
          resume: Path | None = None, log=print) -> dict:
    """Train per ``cfg``; returns the summary dict. ``resume``: a run folder to continue."""
    if resume is not None:
        run_dir = Path(resume)
        ckpt = load_file(run_dir / "checkpoint.pt")
    else:
        run_dir = run_dir or new_run_dir(cfg, config_path)
        ckpt = None
    tc = cfg.train
    choose_threads(tc.threads, log)
    device = resolve_device(tc.device)
    dtype = getattr(torch, tc.dtype)

    # Everything that can fail fast does so before any long computation.
    torch.manual_seed(tc.seed)
    net = R.build_network(cfg.model).to(device=device, dtype=dtype)
    ds = load_data(cfg)
    log(f"data: {ds.source}")
    if ds.source.startswith("embedded"):
        log(f"  (no MNIST files under {D.resolve_data_dir(cfg.data.root)}; set data.root or SPIKING_EP_DATA "
            f"to a folder with the four IDX files to train on the full 60,000/10,000 digits)")
    mean, std = normalisation(cfg, ds)
    opt, sched = make_optimizer(net, cfg)

    particles = None
    if cfg.method.warm_start == "persistent":
        from .warm_start import Particles, describe
        particles = Particles(net, len(ds.train_x), kind=cfg.model.kind,
                              synapses=cfg.model.kind == "spiking" and cfg.spiking.tau_syn is not None)
        log(describe(particles))

    order_gen = torch.Generator().manual_seed(tc.seed + 1)
    aug_gen = torch.Generator().manual_seed(tc.seed + 2)
    algo_gen = torch.Generator().manual_seed(tc.seed + 3)
    rows: list[dict] = []
    epoch, batch_pos, perm, acc = 0, 0, None, None
    elapsed_before = 0.0
    if ckpt is not None:
        check_state_dict(net, ckpt["model"], str(run_dir / "checkpoint.pt"))
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and ckpt.get("scheduler"):
            sched.load_state_dict(ckpt["scheduler"])
        order_gen.set_state(ckpt["order_gen"])
        aug_gen.set_state(ckpt["aug_gen"])
        algo_gen.set_state(ckpt["algo_gen"])
        rows, epoch, batch_pos = list(ckpt["rows"]), ckpt["epoch"], ckpt["batch"]
        perm, acc = ckpt["perm"], ckpt["acc"]
        if particles is not None:
            particles.load_state_dict(ckpt.get("particles"), str(run_dir / "checkpoint.pt"))
        elapsed_before = ckpt.get("elapsed", 0.0)
        log(f"resuming {run_dir} at epoch {epoch + 1}, batch {batch_pos}")
    else:
        run_dir.mkdir(parents=True, exist_ok=False)
        atomic_write_text(dump_config(cfg), run_dir / "config.yaml")
        if tc.save_epoch_weights:
            atomic_save(net.state_dict(), run_dir / "weights-epoch000.pt")

    summary = {
        "command": command_line(), "config": config_path, "seed": tc.seed, "versions": versions(),
        "device": str(device), "hardware": hardware(device), "dtype": tc.dtype, "git_commit": git_commit(),
        "data_source": ds.source, "n_train": len(ds.train_x), "n_test": len(ds.test_x),
        "started": now(), "machine_at_start": machine_load(),
        "model": str(net), "n_parameters": sum(p.numel() for p in net.parameters()),
    }
    if ckpt is None and fb_angles(net):
        summary["angles_at_init"] = fb_angles(net)
    n = len(ds.train_x)
    bs = tc.batch_size
    n_batches = math.ceil(n / bs)
    t_start = time.time()
    last_ckpt = time.time()

    def save(epoch_, batch_, perm_, acc_):
        atomic_save({
            "model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "order_gen": order_gen.get_state(), "aug_gen": aug_gen.get_state(), "algo_gen": algo_gen.get_state(),
            "rows": rows, "epoch": epoch_, "batch": batch_, "perm": perm_, "acc": acc_,
            "elapsed": elapsed_before + time.time() - t_start,
            "particles": particles.state_dict() if particles is not None else None,
        }, run_dir / "checkpoint.pt")
        atomic_save(net.state_dict(), run_dir / "weights.pt")

    with _Signals() as sig:
        while epoch < tc.epochs:
            if perm is None:
                perm = torch.randperm(n, generator=order_gen)
                acc = {"wrong": 0, "loss": 0.0, "seen": 0, "skipped": 0, "seconds": 0.0, "extra": {}}
            t_epoch = time.time()
            bar = tqdm(range(batch_pos, n_batches), desc=f"epoch {epoch + 1}/{tc.epochs}", initial=batch_pos,
                       total=n_batches, leave=False, disable=None)
            for b in bar:
                idx = perm[b * bs:(b + 1) * bs]
                x = ds.train_x[idx]
                if cfg.data.crop_padding or cfg.data.hflip:
                    # on the raw pixels, so that crop padding is black as in torchvision's RandomCrop
                    x = D.augment(x, aug_gen, crop_padding=cfg.data.crop_padding, hflip=cfg.data.hflip)
                x = D.normalize(x, mean, std, dtype=dtype)
                x, y = as_input(x.to(device), cfg), ds.train_y[idx].to(device)
                masks = R.draw_masks(net, len(y), generator=algo_gen, device=device, dtype=dtype)
                where = f"epoch {epoch + 1}, batch {b + 1}"
                start = particles.start_state(idx, x) if particles is not None else None
                grads, state, extra = compute_gradients(net, x, y, cfg, algo_gen, masks, start)
                bad = None
                try:
                    if "states" in extra:
                        check_states(net, x, y, cfg, extra["states"], masks, where, start)
                    k = first_nonfinite(grads)
                    if k is not None:
                        raise Divergence(f"non-finite gradient for parameter '{k}' ({where})")
                except Divergence as e:
                    bad = e
                if bad is not None:
                    if tc.on_nonfinite == "stop":
                        raise Divergence(f"{bad}; the last good checkpoint is kept in {run_dir}")
                    acc["skipped"] += 1
                    log(f"skipping batch: {bad}")
                else:
                    params = dict(net.named_parameters())
                    for k, g in grads.items():
                        params[k].grad = g.to(params[k].dtype)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    if particles is not None:
                        particles.store(idx, extra["state_free"])
                    k = first_nonfinite(dict(net.named_parameters()))
                    if k is not None:
                        raise Divergence(f"parameter '{k}' became non-finite after the update ({where}); "
                                         f"the last good checkpoint is kept in {run_dir}")
                    with torch.no_grad():
                        acc["wrong"] += (R.predict(net, state).argmax(1) != y).sum().item()
                        acc["loss"] += R.loss(net, state, y).item() * len(y)
                    acc["seen"] += len(y)
                    for key, v in batch_stats(extra, len(y)).items():
                        acc["extra"][key] = acc["extra"].get(key, 0.0) + v * len(y)
                batch_pos = b + 1
                bar.set_postfix(err=f"{acc['wrong'] / max(acc['seen'], 1):.3f}")
                due = (tc.checkpoint_every_batches and batch_pos % tc.checkpoint_every_batches == 0) or \
                      (time.time() - last_ckpt) > 60 * tc.checkpoint_every_minutes
                if sig.received is not None or (due and batch_pos < n_batches):
                    acc["seconds"] += time.time() - t_epoch
                    t_epoch = time.time()
                    save(epoch, batch_pos, perm, acc)
                    last_ckpt = time.time()
                    if sig.received is not None:
                        bar.close()
                        raise Interrupted(sig.received, run_dir)
            bar.close()
            acc["seconds"] += time.time() - t_epoch
            test = evaluate(net, ds.test_x, ds.test_y, cfg, device, dtype, mean, std)
            row = {"epoch": epoch + 1,
                   "train_error": acc["wrong"] / max(acc["seen"], 1), "train_loss": acc["loss"] / max(acc["seen"], 1),
                   "test_error": test["error"], "test_loss": test["loss"],
                   "lr": opt.param_groups[0]["lr"], "seconds": round(acc["seconds"], 3),
                   "skipped_batches": acc["skipped"], "torch_threads": torch.get_num_threads(),
                   "load_avg_1m": (machine_load()["load_avg"] or [float("nan")])[0]}
            row.update({k: v / max(acc["seen"], 1) for k, v in acc["extra"].items()})
            row.update({f"test_{k}": v for k, v in test.items() if k not in ("error", "loss")})
            row.update(fb_angles(net))
            rows.append(row)
            if sched is not None:
                sched.step()
            epoch, batch_pos, perm, acc = epoch + 1, 0, None, None
            _write_metrics(run_dir, rows)
            save(epoch, 0, None, None)
            if tc.save_epoch_weights:
                atomic_save(net.state_dict(), run_dir / f"weights-epoch{epoch:03d}.pt")
            last_ckpt = time.time()
            log(f"epoch {row['epoch']:3d}  train err {100 * row['train_error']:6.2f} %  "
                f"test err {100 * row['test_error']:6.2f} %  test loss {row['test_loss']:.4f}  {row['seconds']:.1f} s")
            if sig.received is not None:
                raise Interrupted(sig.received, run_dir)

    summary.update({
        "finished": now(), "machine_at_end": machine_load(),
        "epochs": len(rows), "seconds_total": round(elapsed_before + time.time() - t_start, 1),
        "final_test_error": rows[-1]["test_error"], "best_test_error": min(r["test_error"] for r in rows),
        "final_train_error": rows[-1]["train_error"], "run_dir": str(run_dir),
    })
    atomic_write_text(json.dumps(summary, indent=2) + "\n", run_dir / "summary.json")
    return summary
