"""Training loop: EP (any estimator, rate or spiking) or BPTT, with a self-describing run folder.

Single process, or data-parallel under ``torchrun`` (see :mod:`spiking_ep.distributed`).

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
from .checkpoint import CheckpointError, atomic_save, atomic_write_text, check_state_dict, load_file
from .config import Config, dump_config
from .gradients import Divergence, batch_stats, check_states, compute_gradients, first_nonfinite
from .inference import as_input, evaluate, infer
from . import accel
from . import distributed as DP
from .prepare import fb_angles, load_data, make_optimizer, normalisation, resolve_device
from .runinfo import choose_threads, command_line, git_commit, hardware, machine_load, now, versions

__all__ = ["Divergence", "Interrupted", "train", "evaluate", "infer", "compute_gradients", "check_states",
           "load_data", "normalisation", "resolve_device", "versions", "command_line", "git_commit", "hardware"]


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM: the current batch finished and a checkpoint was written."""

    def __init__(self, signum: int, run_dir: Path):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}; checkpoint written; "
                         f"continue with: spiking-ep train --resume {run_dir}")


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


class _Trainer:
    """One training run: set-up, restore, the batch step, the epoch end, checkpoints (see :func:`train`)."""

    def __init__(self, cfg: Config, run_dir: Path, ckpt: dict | None, config_path: str | None, log):
        self.cfg, self.tc, self.run_dir, self.config_path = cfg, cfg.train, run_dir, config_path
        # A resumed run keeps the thread count it was started with: a different count changes the order of
        # float sums in the matmuls, and the spiking thresholds turn those last-bit differences into different
        # runs (seen in CI: a run resumed on a quieter machine took 2 threads instead of 1 and diverged).
        inherited = (ckpt or {}).get("torch_threads") if not self.tc.threads else None
        n = choose_threads(self.tc.threads or inherited, log)
        if inherited:
            log(f"{n} torch thread(s), as when the run started (train.threads is null): a resumed run repeats the "
                f"uninterrupted one only with the same count")
        self.device = resolve_device(self.tc.device)
        self.dist = DP.setup(self.device)
        self.device = DP.local_device(self.device, self.dist)
        self.log = log if self.dist.main else (lambda *a, **k: None)
        self.dtype = getattr(torch, self.tc.dtype)
        # Everything that can fail fast does so before any long computation.
        torch.manual_seed(self.tc.seed)
        self.net = R.build_network(cfg.model).to(device=self.device, dtype=self.dtype)
        self.ds = load_data(cfg)
        self.log(f"data: {self.ds.source}")
        if self.ds.source.startswith("embedded"):
            self.log(f"  (no MNIST files under {D.resolve_data_dir(cfg.data.root)}; set data.root or SPIKING_EP_DATA "
                     f"to a folder with the four IDX files to train on the full 60,000/10,000 digits)")
        self.mean, self.std = normalisation(cfg, self.ds)
        self.opt, self.sched = make_optimizer(self.net, cfg)
        self.particles = self._particles()
        self.order_gen = torch.Generator().manual_seed(self.tc.seed + 1)
        self.aug_gen = torch.Generator().manual_seed(self.tc.seed + 2)
        self.algo_gen = torch.Generator().manual_seed(self.tc.seed + 3)
        self.rows: list[dict] = []
        self.epoch, self.batch_pos, self.perm, self.acc = 0, 0, None, None
        self.elapsed_before = 0.0
        self.segments: list[dict] = []      # earlier processes that trained this run (from the checkpoint)
        if ckpt is not None:
            self._restore(ckpt)
        elif self.dist.main:
            run_dir.mkdir(parents=True, exist_ok=False)
            atomic_write_text(dump_config(cfg), run_dir / "config.yaml")
            if self.tc.save_epoch_weights:
                atomic_save(self.net.state_dict(), run_dir / "weights-epoch000.pt")
        DP.barrier(self.dist)
        # this process's part of the run: command, commit, start, load, and where it took over
        self.segment = {"command": command_line(), "git_commit": git_commit(), "started": now(),
                        "machine_at_start": machine_load(), "from": {"epoch": self.epoch + 1, "batch": self.batch_pos}}
        self.n = len(self.ds.train_x)
        self.n_batches = math.ceil(self.n / self.tc.batch_size)
        self.t_start = self.last_ckpt = time.time()

    # --- set-up and restore ----------------------------------------------------------------------
    def _particles(self):
        if self.cfg.method.warm_start != "persistent":
            return None
        from .warm_start import Particles, describe
        # a rank keeps the states of its own examples only (index mod world = rank), at index // world
        n_own = len(range(self.dist.rank, len(self.ds.train_x), self.dist.world))
        p = Particles(self.net, n_own, kind=self.cfg.model.kind,
                      synapses=self.cfg.model.kind == "spiking" and self.cfg.spiking.tau_syn is not None)
        self.log(describe(p) + (f" on each of {self.dist.world} ranks" if self.dist.enabled else ""))
        return p

    def _restore(self, ckpt: dict) -> None:
        source = str(self.run_dir / "checkpoint.pt")
        check_state_dict(self.net, ckpt["model"], source)
        if ckpt.get("world", 1) != self.dist.world:
            raise CheckpointError(f"{source}: written by {ckpt.get('world', 1)} process(es), resumed with "
                                  f"{self.dist.world}; resume with the same number of processes")
        self.net.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if self.sched is not None and ckpt.get("scheduler"):
            self.sched.load_state_dict(ckpt["scheduler"])
        for name in ("order_gen", "aug_gen", "algo_gen"):
            getattr(self, name).set_state(ckpt[name])
        self.rows, self.epoch, self.batch_pos = list(ckpt["rows"]), ckpt["epoch"], ckpt["batch"]
        self.perm, self.acc = ckpt["perm"], ckpt["acc"]
        if self.acc is not None and not self.dist.main:
            self.acc = _new_acc()     # rank 0's checkpoint holds the all-rank sums
        if self.particles is not None:
            self.particles.load_state_dict(self._saved_particles(ckpt, source), source)
        self.elapsed_before = ckpt.get("elapsed", 0.0)
        self.segments = list(ckpt.get("segments") or [{
            "note": "not recorded (checkpoint written by an older version)",
            "until": {"epoch": self.epoch + 1, "batch": self.batch_pos}}])
        self.log(f"resuming {self.run_dir} at epoch {self.epoch + 1}, batch {self.batch_pos}")

    def _saved_particles(self, ckpt: dict, source: str):
        if not self.dist.enabled:
            return ckpt.get("particles")
        path = self.run_dir / DP.particles_file(self.dist.rank)
        shard = load_file(path)
        if (shard.get("epoch"), shard.get("batch")) != (ckpt["epoch"], ckpt["batch"]):
            raise CheckpointError(f"{path} (epoch {shard.get('epoch')}, batch {shard.get('batch')}) does not match "
                                  f"{source} (epoch {ckpt['epoch']}, batch {ckpt['batch']})")
        return shard["particles"]

    # --- checkpoints -----------------------------------------------------------------------------
    def save(self) -> None:
        """Checkpoint (rank 0) and this rank's warm-start states; the accumulators hold all-rank sums."""
        acc = self.acc
        if self.dist.enabled and acc is not None:
            acc = _sum_acc(acc, self.dist, self.device)
            self.acc = acc if self.dist.main else _new_acc()
        if self.dist.enabled and self.particles is not None:
            atomic_save({"epoch": self.epoch, "batch": self.batch_pos, "particles": self.particles.state_dict()},
                        self.run_dir / DP.particles_file(self.dist.rank))
        if self.dist.main:
            atomic_save({
                "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict() if self.sched is not None else None,
                "order_gen": self.order_gen.get_state(), "aug_gen": self.aug_gen.get_state(),
                "algo_gen": self.algo_gen.get_state(), "rows": self.rows, "epoch": self.epoch,
                "batch": self.batch_pos, "perm": self.perm, "acc": acc, "world": self.dist.world,
                "elapsed": self.elapsed_before + time.time() - self.t_start,
                "segments": self.segments_so_far(), "torch_threads": torch.get_num_threads(),
                "particles": self.particles.state_dict() if self.particles is not None and not self.dist.enabled else None,
            }, self.run_dir / "checkpoint.pt")
            atomic_save(self.net.state_dict(), self.run_dir / "weights.pt")
        DP.barrier(self.dist)
        self.last_ckpt = time.time()

    # --- one mini-batch --------------------------------------------------------------------------
    def batch(self, b: int) -> tuple:
        """The global batch b (augmented, normalised, with its dropout masks), then this rank's share."""
        idx = self.perm[b * self.tc.batch_size:(b + 1) * self.tc.batch_size]
        x = self.ds.train_x[idx]
        if self.cfg.data.crop_padding or self.cfg.data.hflip:
            # on the raw pixels, so that zero crop padding is black as in torchvision's RandomCrop
            x = D.augment(x, self.aug_gen, crop_padding=self.cfg.data.crop_padding, hflip=self.cfg.data.hflip,
                          crop_pad_mode=self.cfg.data.crop_pad_mode)
        masks = R.draw_masks(self.net, len(idx), generator=self.algo_gen, device=self.device, dtype=self.dtype)
        if self.dist.enabled:
            mine = DP.shard(idx, self.dist)
            x, own = x[mine], idx[mine]
            if masks is not None:
                masks = tuple(None if m is None else m[mine.to(m.device)] for m in masks)
        else:
            own = idx
        x = as_input(D.normalize(x, self.mean, self.std, dtype=self.dtype).to(self.device), self.cfg)
        return idx, own, x, self.ds.train_y[own].to(self.device), masks

    def step(self, b: int) -> None:
        idx, own, x, y, masks = self.batch(b)
        where = f"epoch {self.epoch + 1}, batch {b + 1}"
        start = self.particles.start_state(own // self.dist.world, x) if self.particles is not None else None
        bad, grads, state, extra = None, None, None, {}
        if len(own):
            with accel.precision(self.tc.precision, self.device):
                grads, state, extra = compute_gradients(self.net, x, y, self.cfg, self.algo_gen, masks, start)
            bad = self._check(grads, x, y, extra, masks, where, start)
        else:   # an empty share: keep the shared generator in step with the other ranks
            grads = {k: torch.zeros_like(p) for k, p in self.net.named_parameters()}
            if self.cfg.method.estimator == "random_sign":
                torch.rand((), generator=self.algo_gen)
        n_bad = DP.all_sum([float(bad is not None)], self.dist, self.device)[0] if self.dist.enabled else float(bad is not None)
        if n_bad:
            if bad is None:
                bad = Divergence(f"non-finite values on another rank ({where})")
            if self.tc.on_nonfinite == "stop":
                raise Divergence(f"{bad}; the last good checkpoint is kept in {self.run_dir}")
            self.acc["skipped"] += 1 if self.dist.main else 0
            self.log(f"skipping batch: {bad}")
            return
        self._update(DP.average_gradients(grads, len(own), len(idx), self.dist), where)
        if len(own):
            if self.particles is not None:
                self.particles.store(own // self.dist.world, extra["state_free"])
            self._account(state, y, extra)

    def _check(self, grads, x, y, extra, masks, where, start) -> Divergence | None:
        try:
            if "states" in extra:
                check_states(self.net, x, y, self.cfg, extra["states"], masks, where, start)
            k = first_nonfinite(grads)
            if k is not None:
                raise Divergence(f"non-finite gradient for parameter '{k}' ({where})")
        except Divergence as e:
            return e
        return None

    def _update(self, grads: dict, where: str) -> None:
        params = dict(self.net.named_parameters())
        for k, g in grads.items():
            params[k].grad = g.to(params[k].dtype)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        k = first_nonfinite(dict(self.net.named_parameters()))
        if k is not None:
            raise Divergence(f"parameter '{k}' became non-finite after the update ({where}); "
                             f"the last good checkpoint is kept in {self.run_dir}")

    def _account(self, state, y, extra) -> None:
        with torch.no_grad():
            self.acc["wrong"] += (R.predict(self.net, state).argmax(1) != y).sum().item()
            self.acc["loss"] += R.loss(self.net, state, y).item() * len(y)
        self.acc["seen"] += len(y)
        for key, v in batch_stats(extra, len(y)).items():
            self.acc["extra"][key] = self.acc["extra"].get(key, 0.0) + v * len(y)

    # --- epochs ----------------------------------------------------------------------------------
    def run_epoch(self, sig) -> None:
        if self.perm is None:
            self.perm = torch.randperm(self.n, generator=self.order_gen)
            self.acc = _new_acc()
        t_epoch = time.time()
        bar = tqdm(range(self.batch_pos, self.n_batches), desc=f"epoch {self.epoch + 1}/{self.tc.epochs}",
                   initial=self.batch_pos, total=self.n_batches, leave=False, disable=None if self.dist.main else True)
        for b in bar:
            self.step(b)
            self.batch_pos = b + 1
            bar.set_postfix(err=f"{self.acc['wrong'] / max(self.acc['seen'], 1):.3f}")
            due = (self.tc.checkpoint_every_batches and self.batch_pos % self.tc.checkpoint_every_batches == 0) or \
                (time.time() - self.last_ckpt) > 60 * self.tc.checkpoint_every_minutes
            stop = sig.received is not None
            if self.dist.enabled:   # every rank stops at the same batch
                due, stop = (v > 0 for v in DP.all_sum([float(bool(due)), float(stop)], self.dist, self.device))
            if stop or (due and self.batch_pos < self.n_batches):
                self.acc["seconds"] += time.time() - t_epoch
                t_epoch = time.time()
                self.save()
                if stop:
                    bar.close()
                    raise Interrupted(sig.received or signal.SIGTERM, self.run_dir)
        bar.close()
        self.acc["seconds"] += time.time() - t_epoch
        self.end_epoch()

    def end_epoch(self) -> None:
        acc = _sum_acc(self.acc, self.dist, self.device) if self.dist.enabled else self.acc
        test = self._evaluate()
        seen = max(acc["seen"], 1)
        row = {"epoch": self.epoch + 1, "train_error": acc["wrong"] / seen, "train_loss": acc["loss"] / seen,
               "test_error": test["error"], "test_loss": test["loss"], "lr": self.opt.param_groups[0]["lr"],
               "seconds": round(self.acc["seconds"], 3), "skipped_batches": acc["skipped"],
               "torch_threads": torch.get_num_threads(), "load_avg_1m": (machine_load()["load_avg"] or [float("nan")])[0]}
        if self.dist.enabled:
            row["world_size"] = self.dist.world
        row.update({k: v / seen for k, v in acc["extra"].items()})
        row.update({f"test_{k}": v for k, v in test.items() if k not in ("error", "loss")})
        row.update(fb_angles(self.net))
        self.rows.append(row)
        if self.sched is not None:
            self.sched.step()
        self.epoch, self.batch_pos, self.perm, self.acc = self.epoch + 1, 0, None, None
        if self.dist.main:
            _write_metrics(self.run_dir, self.rows)
        self.save()
        if self.tc.save_epoch_weights and self.dist.main:
            atomic_save(self.net.state_dict(), self.run_dir / f"weights-epoch{self.epoch:03d}.pt")
        self.log(f"epoch {row['epoch']:3d}  train err {100 * row['train_error']:6.2f} %  "
                 f"test err {100 * row['test_error']:6.2f} %  test loss {row['test_loss']:.4f}  {row['seconds']:.1f} s")

    def reached_target(self) -> bool:
        """True once an epoch's test error is ≤ ``train.stop_at_test_error`` (when set): training ends there."""
        goal = self.tc.stop_at_test_error
        return goal is not None and any(r["test_error"] <= goal for r in self.rows)

    def segments_so_far(self) -> list[dict]:
        """Every process that trained this run so far, this one last (with where it has got to)."""
        return self.segments + [{**self.segment, "until": {"epoch": self.epoch + 1, "batch": self.batch_pos},
                                 "at": now()}]

    def _evaluate(self) -> dict:
        # each rank evaluates every world-th test example; the sums are combined
        tx, ty = self.ds.test_x[self.dist.rank::self.dist.world], self.ds.test_y[self.dist.rank::self.dist.world]
        with accel.precision(self.tc.precision, self.device):
            res = evaluate(self.net, tx, ty, self.cfg, self.device, self.dtype, self.mean, self.std)
        if not self.dist.enabled:
            return res
        keys = [k for k in res]
        sums = DP.all_sum([res[k] * len(ty) for k in keys] + [float(len(ty))], self.dist, self.device)
        return {k: v / sums[-1] for k, v in zip(keys, sums[:-1])}

    def summary(self) -> dict:
        seg = self.segment
        s = {"command": seg["command"], "config": self.config_path, "seed": self.tc.seed, "versions": versions(),
             "device": str(self.device), "hardware": hardware(self.device), "dtype": self.tc.dtype,
             "git_commit": seg["git_commit"], "data_source": self.ds.source, "n_train": len(self.ds.train_x),
             "n_test": len(self.ds.test_x), "started": seg["started"], "machine_at_start": seg["machine_at_start"],
             "model": str(self.net), "n_parameters": sum(p.numel() for p in self.net.parameters())}
        if self.dist.enabled:
            s["world_size"] = self.dist.world
        return s


def _new_acc() -> dict:
    return {"wrong": 0, "loss": 0.0, "seen": 0, "skipped": 0, "seconds": 0.0, "extra": {}}


def _sum_acc(acc: dict, d, device) -> dict:
    """The accumulators summed over ranks (every rank must call this at the same point)."""
    keys = sorted(acc["extra"])
    vals = DP.all_sum([acc["wrong"], acc["loss"], acc["seen"], acc["skipped"]] + [acc["extra"][k] for k in keys],
                      d, device)
    return {"wrong": int(vals[0]), "loss": vals[1], "seen": int(vals[2]), "skipped": int(vals[3]),
            "seconds": acc["seconds"], "extra": dict(zip(keys, vals[4:]))}


def train(cfg: Config, *, run_dir: Path | None = None, config_path: str | None = None,
          resume: Path | None = None, log=print) -> dict:
    """Train per ``cfg``; returns the summary dict. ``resume``: a run folder to continue.

    Under torchrun (env ``WORLD_SIZE`` > 1) every process calls this; rank 0 names and writes the
    run folder (see :mod:`spiking_ep.distributed`).
    """
    if resume is not None:
        run_dir = Path(resume)
        ckpt = load_file(run_dir / "checkpoint.pt")
    else:
        ckpt = None
        if run_dir is None:
            world = int(__import__("os").environ.get("WORLD_SIZE", "1"))
            # every rank must agree on the (time-stamped) name: rank 0's after the group is up
            run_dir = new_run_dir(cfg, config_path) if world == 1 else None
    if run_dir is None:
        d = DP.setup(resolve_device(cfg.train.device))
        run_dir = DP.broadcast(new_run_dir(cfg, config_path) if d.main else None, d)
    t = _Trainer(cfg, Path(run_dir), ckpt, config_path, log)
    summary = t.summary()
    if ckpt is None and fb_angles(t.net):
        summary["angles_at_init"] = fb_angles(t.net)
    with _Signals() as sig, accel.compiled_steps(t.tc.compile):
        while t.epoch < t.tc.epochs and not t.reached_target():
            t.run_epoch(sig)
            if sig.received is not None:
                raise Interrupted(sig.received, t.run_dir)
    summary.update({
        "finished": now(), "machine_at_end": machine_load(), "epochs": len(t.rows),
        "seconds_total": round(t.elapsed_before + time.time() - t.t_start, 1),
        "final_test_error": t.rows[-1]["test_error"], "best_test_error": min(r["test_error"] for r in t.rows),
        "final_train_error": t.rows[-1]["train_error"], "run_dir": str(t.run_dir),
    })
    if t.reached_target():
        summary["stopped_at_test_error"] = {"target": t.tc.stop_at_test_error, "epoch": len(t.rows)}
    if t.segments:          # resumed: every process that trained it, each with its commit and command
        summary["segments"] = t.segments_so_far()
    if t.dist.main:
        atomic_write_text(json.dumps(summary, indent=2) + "\n", t.run_dir / "summary.json")
    DP.barrier(t.dist)
    return summary
