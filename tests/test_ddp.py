"""DDP on CPU (gloo): two processes give the same gradients and weights as one process on the same global batch,
and a checkpoint of a ``torchrun`` run resumes in one process.

What makes the runs exactly comparable: dropout 0 (no per-rank randomness), SyncBatchNorm (BatchNorm statistics
over the global batch, as in the single process; plain BN would normalise each half separately — checked to
differ), the same initial weights (DDP broadcasts rank 0's; we also seed alike), augmentation drawn from
``(seed, epoch, index)`` (rank-independent), ``DistributedSampler`` with one replica for the reference (same
permutation, so global batch k of the 2-process run = batch k of the single process), a loss that is a mean over
equal per-rank batches (DDP's gradient average = the global mean's gradient), and SGD (linear in the gradient;
Adam's normalisation would amplify 1e-9 differences of near-zero gradients).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from .conftest import REPO, join_workers, tiny_overrides

STEPS = 3
LOCAL_BATCH = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(rank: int, world: int, port: int, root: str, out: str, variants: tuple[bool, ...] = (True,)) -> None:
    """One rank (or the single-process reference when ``world == 1``): STEPS SGD steps of the smoke model, once per
    SyncBN setting in ``variants``; rank 0 saves first-step gradients and final state to ``out % sync_bn``."""
    from poserepro.engine import dist

    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                          LOCAL_RANK=str(rank))
        assert dist.init_from_env("cpu") and dist.get_world_size() == world
    for sync_bn in variants:
        _steps(rank, world, root, out % sync_bn, sync_bn)
    dist.barrier()


def _steps(rank: int, world: int, root: str, out: str, sync_bn: bool) -> None:
    from torch import nn
    from torch.utils.data import DataLoader, DistributedSampler

    from poserepro.data.splits import make_dataset, person_records
    from poserepro.engine import build_model, dist, seed_everything
    from poserepro.engine.schedules import build_optimizer
    from poserepro.families import family_of
    from poserepro.recipes import load_recipe

    rec = load_recipe("transpose-r-smoke", [
        *tiny_overrides(Path(root)), "model.args={dropout: 0.0}", "optim.name=sgd", "optim.lr=0.05",
        f"optim.scale_lr_by_batch={LOCAL_BATCH}", f"train.sync_bn={str(sync_bn).lower()}"])
    records, _ = person_records(rec, "train")
    dataset = make_dataset(rec, records, train=True)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=0, drop_last=True)
    loader = DataLoader(dataset, batch_size=LOCAL_BATCH * (2 // world), sampler=sampler, num_workers=0)
    seed_everything(0)
    model = build_model(rec)
    if world > 1 and sync_bn:
        model = dist.convert_sync_batchnorm(model, "cpu")
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = build_optimizer(model, rec.optim, global_batch=2 * LOCAL_BATCH)
    criterion = family_of(model).criterion(rec, model, torch.device("cpu"))
    grads: dict[str, torch.Tensor] = {}
    net.train()
    for step, batch in enumerate(loader):
        if step == STEPS:
            break
        loss, _ = criterion(net(batch["image"]), batch)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        opt.step()
    if rank == 0:
        torch.save({"grads": grads, "state": model.state_dict(), "lr": opt.param_groups[0]["lr"]}, out)


def _spawn_two(root: Path, out: str, port: int, variants: tuple[bool, ...], timeout: float = 240.0) -> None:
    ctx = mp.start_processes(_run, args=(2, port, str(root), out, variants), nprocs=2, join=False,
                             start_method="spawn")
    join_workers(ctx, timeout)


def test_two_process_ddp_matches_single_process_on_the_global_batch(tiny_synth: Path, tmp_path: Path) -> None:
    n = torch.get_num_threads()
    try:
        _run(0, 1, 0, str(tiny_synth), str(tmp_path / "single_%s.pt"))
    finally:
        torch.set_num_threads(n)
    _spawn_two(tiny_synth, str(tmp_path / "ddp_%s.pt"), _free_port(), variants=(True, False))
    one = torch.load(tmp_path / "single_True.pt", weights_only=True)
    two = torch.load(tmp_path / "ddp_True.pt", weights_only=True)
    plain = torch.load(tmp_path / "ddp_False.pt", weights_only=True)

    assert one["lr"] == two["lr"] == pytest.approx(0.05 * 2)     # linear scaling rule: global batch 8 / 4
    assert one["grads"].keys() == two["grads"].keys() and len(one["grads"]) > 50
    for k, g in one["grads"].items():
        torch.testing.assert_close(two["grads"][k], g, rtol=1e-4, atol=1e-5, msg=f"gradient of {k}")
    for k, v in one["state"].items():                           # weights and BN running statistics after 3 steps
        torch.testing.assert_close(two["state"][k], v, rtol=1e-4, atol=1e-5, msg=f"state {k}")
    diffs = {k: float((two["grads"][k] - g).abs().max()) for k, g in one["grads"].items()}
    print(f"max |grad diff| SyncBN DDP vs single process: {max(diffs.values()):.2e}")
    worst = max(float((plain["grads"][k] - g).abs().max()) for k, g in one["grads"].items())
    print(f"max |grad diff| plain-BN DDP vs single process: {worst:.2e}")
    # without SyncBN the halves are normalised separately: not the same computation (far beyond float noise)
    assert worst > 100 * max(max(diffs.values()), 1e-8)


def test_torchrun_training_writes_on_rank0_and_resumes_in_one_process(tiny_synth: Path, tmp_path: Path) -> None:
    from poserepro.engine import train
    from poserepro.engine.checkpoint import load_checkpoint
    from poserepro.recipes import load_recipe

    run = tmp_path / "run"
    over = [*tiny_overrides(tiny_synth, epochs=2), "train.max_steps_per_epoch=2", "train.sync_bn=true",
            "optim.scale_lr_by_batch=8", "train.batch_size=4", "schedule.name=cosine", "schedule.min_lr=1e-5"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--node_rank", "0", "--nproc_per_node",
           "2", "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{_free_port()}", "-m", "poserepro.cli.main",
           "train", "transpose-r-smoke", "--run-dir", str(run)]
    for o in [*over, "schedule.epochs=1"]:  # the distributed run stops after epoch 0
        cmd += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1                                   # one writer: rank 0
    assert log[0]["images"] == 2 * 2 * 4                   # 2 steps x 2 ranks x 4 crops
    assert log[0]["lr"] == pytest.approx(1e-3)             # base lr x (global batch 8 / 8)
    assert json.loads((run / "meta.json").read_text())["world_size"] == 2
    state = load_checkpoint(run / "checkpoint.pth")
    assert state["world_size"] == 2 and state["epoch"] == 0
    assert not any(k.startswith("module.") for k in state["model"])   # the unwrapped model

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = train(load_recipe("transpose-r-smoke", over), run, resume=True)    # 1 process, epochs=2
    finally:
        torch.set_num_threads(n)
    state = load_checkpoint(res.checkpoint)
    assert state["world_size"] == 1 and state["epoch"] == 1
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    # epoch 1 of a 2-epoch cosine at the single process' global batch 4: lr 1e-3 * 4/8 * (0.02 + 0.98 / 2)
    assert log[1]["lr"] == pytest.approx(5e-4 * (0.02 + 0.98 / 2))
