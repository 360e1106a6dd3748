"""Data-parallel training (torch.distributed, gloo, 2 CPU processes) equals a single-process run."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from spiking_ep import train as T
from spiking_ep.config import load_config

BASE = [
    "data.allow_embedded=true", "data.root=/nonexistent-so-the-embedded-sample-is-used",
    "data.train_subset=200", "data.test_subset=100", "train.batch_size=50", "train.threads=1",
    "train.dtype=float64", "model.layers=[{type: dense, features: 24}, {type: dense, features: 16}]",
    "optim.lrs=[0.05, 0.05, 0.02]", "method.T1=10", "method.T2=6", "optim.scheduler=none",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, overrides: list, resume: str | None):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = load_config(None, overrides)
    try:
        T.train(cfg, resume=resume, log=lambda *a: None)
    finally:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def run_distributed(overrides, world=2, resume=None):
    mp.start_processes(_worker, args=(world, _free_port(), overrides, resume), nprocs=world, start_method="spawn")


def weights(run_dir):
    return torch.load(run_dir / "weights.pt", weights_only=True)


@pytest.mark.parametrize("extra", [
    pytest.param(["method.name=ep"], marks=pytest.mark.slow),
    pytest.param(["method.name=bptt"], marks=pytest.mark.slow),
    ["model.kind=spiking", "method.warm_start=persistent", "spiking.rate_estimate=charge"],
], ids=["rate-ep", "bptt", "spiking-warm"])
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path, extra):
    common = BASE + extra + [f"train.out_dir={tmp_path}", "train.epochs=2"]
    T.train(load_config(None, common + ["train.run_name=single"]), log=lambda *a: None)
    run_distributed(common + ["train.run_name=ddp"])
    single, ddp = weights(tmp_path / "single"), weights(tmp_path / "ddp")
    assert single.keys() == ddp.keys()
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-9, atol=1e-11, msg=k)
    # the run folder is written once (rank 0), with every rank's share in its numbers
    m_single = (tmp_path / "single" / "metrics.csv").read_text().splitlines()
    m_ddp = (tmp_path / "ddp" / "metrics.csv").read_text().splitlines()
    assert "world_size" in m_ddp[0] and len(m_ddp) == len(m_single) == 3
    if "method.warm_start=persistent" in extra:
        assert {p.name for p in (tmp_path / "ddp").glob("particles-rank*.pt")} == {"particles-rank0.pt",
                                                                                "particles-rank1.pt"}


@pytest.mark.slow
def test_distributed_resume_continues_the_same_run(tmp_path):
    common = BASE + ["model.kind=spiking", "method.warm_start=persistent", f"train.out_dir={tmp_path}"]
    run_distributed(common + ["train.run_name=full", "train.epochs=2"])
    run_distributed(common + ["train.run_name=resumed", "train.epochs=1"])
    run_distributed(common + ["train.run_name=resumed", "train.epochs=2"], resume=str(tmp_path / "resumed"))
    a, b = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


def test_resuming_with_another_number_of_processes_is_refused(tmp_path):
    from spiking_ep.checkpoint import CheckpointError
    cfg = load_config(None, BASE + [f"train.out_dir={tmp_path}", "train.run_name=r", "train.epochs=1"])
    T.train(cfg, log=lambda *a: None)
    ck = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    ck["world"] = 2                                    # as if written by a 2-process run
    torch.save(ck, tmp_path / "r" / "checkpoint.pt")
    more = load_config(None, BASE + [f"train.out_dir={tmp_path}", "train.run_name=r", "train.epochs=2"])
    with pytest.raises(CheckpointError, match="written by 2 process.*resumed with 1"):
        T.train(more, resume=tmp_path / "r", log=lambda *a: None)
