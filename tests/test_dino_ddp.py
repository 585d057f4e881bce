"""DINO pretraining under DDP on CPU (gloo, 127.0.0.1 only): the centering all-reduce by hand, two processes give
the weights of one process on the same global batch, and ``torchrun ... pretrain dino`` writes on rank 0 only,
splits the data across the ranks and resumes in one process through the CLI.

What makes the 2-process and the 1-process runs exactly comparable (see also tests/test_ddp.py): every epoch is a
single step over the whole image set (8 images: 4 per rank vs 8 in one process), so the data order does not
matter (the loss, BatchNorm statistics and the center are batch means); augmentation is drawn from
``(seed, epoch, index)`` (rank-independent); BatchNorm is synchronised over the ranks in student *and* teacher;
the teacher starts from the student that DDP broadcast from rank 0 (as main_dino.py's
``teacher_without_ddp.load_state_dict(student.module.state_dict())``), not from each rank's own random init;
and SGD (AdamW's normalisation would amplify float noise in near-zero gradients).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from .conftest import REPO, join_workers
from .test_ddp import _free_port

RECIPE = "btranspose-smoke-dino"


def _images(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / f"c{i % 2}" / f"{i}.png"), rng.integers(0, 256, (40, 36, 3), dtype=np.uint8))
    return root


def _tiny(folder: Path, batch: int, epochs: int) -> list[str]:
    """``--set`` overrides: the smoke recipe on an image folder, a tiny backbone and head, 2 local crops."""
    return [
        "data.source=folder", f"data.root={folder}", "data.global_size=[32, 32]", "data.local_crops=2",
        "data.local_size=[16, 16]", "model.out_dim=32", "model.hidden_dim=16", "model.bottleneck_dim=8",
        "model.args={widths: [8, 8, 8, 8], num_layers: 1}", f"train.batch_size={batch}", f"train.epochs={epochs}",
        "optim.warmup_epochs=0", "probe.enabled=false", "train.threads=1", "train.channels_last=false"]


def _init(rank: int, world: int, port: int) -> None:
    from poserepro.engine import dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    assert dist.init_from_env("cpu") and dist.get_world_size() == world


# ------------------------------------------------------------------------------------------ the centering
#: teacher outputs of two steps, 4 crops x K = 3; rank r of 2 holds rows 2r, 2r + 1
T1 = [[1.0, 0.0, -1.0], [3.0, 1.0, 0.0], [-2.0, 4.0, 2.0], [0.0, -1.0, 7.0]]
T2 = [[0.0, 2.0, 0.0], [1.0, 0.0, 4.0], [5.0, 1.0, 1.0], [2.0, 1.0, -3.0]]


def _center_rank(rank: int, port: int, out: str) -> None:
    from poserepro.pretrain.loss import DINOLoss

    _init(rank, 2, port)
    loss = DINOLoss(3, ncrops=2, warmup_teacher_temp=0.04, teacher_temp=0.04, warmup_teacher_temp_epochs=0,
                    epochs=1)
    centers = []
    for t in (T1, T2):
        loss.update_center(torch.tensor(t)[2 * rank:2 * rank + 2])
        centers.append(loss.center.clone())
    torch.save(torch.cat(centers), out % rank)


def test_center_is_all_reduced_over_ranks(tmp_path: Path) -> None:
    """main_dino.py's ``update_center``: batch_center = all_reduce(sum(teacher_output)) / (len(teacher_output) ·
    world_size); center ← 0.9 center + 0.1 batch_center. Two ranks holding the halves of a batch must both end with
    the center of the whole batch: by hand c1 = 0.1 · mean(T1) = 0.1 · (0.5, 1, 2), c2 = 0.9 c1 + 0.1 · (2, 1, 0.5).
    (Rank 0's half alone would give 0.1 · (2, 0.5, -0.5) at step 1.)"""
    from poserepro.pretrain.loss import DINOLoss

    out = str(tmp_path / "center_%d.pt")
    join_workers(mp.start_processes(_center_rank, args=(_free_port(), out), nprocs=2, join=False,
                                    start_method="spawn"), 120.0)
    c1 = 0.1 * np.array([0.5, 1.0, 2.0])
    want = np.stack([c1, 0.9 * c1 + 0.1 * np.array([2.0, 1.0, 0.5])])
    np.testing.assert_allclose(np.mean(T1, 0), [0.5, 1.0, 2.0])          # the hand means above
    np.testing.assert_allclose(np.mean(T2, 0), [2.0, 1.0, 0.5])
    for r in range(2):
        np.testing.assert_allclose(torch.load(out % r, weights_only=True).numpy(), want, rtol=1e-6)
    one = DINOLoss(3, 2, 0.04, 0.04, 0, 1)                                  # one process on the whole batches
    one.update_center(torch.tensor(T1))
    np.testing.assert_allclose(one.center.numpy()[0], want[0], rtol=1e-6)
    one.update_center(torch.tensor(T2))
    np.testing.assert_allclose(one.center.numpy()[0], want[1], rtol=1e-6)


# ------------------------------------------------------------------------ 2 processes = 1 on the global batch
def _pretrain_rank(rank: int, port: int, over: list[str], run_dir: str) -> None:
    from poserepro.engine import dist
    from poserepro.pretrain.recipe import load_pretrain_recipe
    from poserepro.pretrain.train import pretrain_dino

    _init(rank, 2, port)
    pretrain_dino(load_pretrain_recipe(RECIPE, over), run_dir)
    dist.barrier()


def test_two_process_pretraining_matches_one_process_on_the_global_batch(tmp_path: Path) -> None:
    from poserepro.pretrain.recipe import load_pretrain_recipe
    from poserepro.pretrain.train import pretrain_dino

    folder = _images(tmp_path / "imgs", 8)
    sgd = ["optim.name=sgd", "optim.lr=0.5"]   # peak lr 0.5 x 8 / 256: the weights move far beyond float noise
    over2 = [*_tiny(folder, batch=4, epochs=2), *sgd]
    join_workers(mp.start_processes(_pretrain_rank, args=(_free_port(), over2, str(tmp_path / "ddp")), nprocs=2,
                                    join=False, start_method="spawn"), 240.0)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain_dino(load_pretrain_recipe(RECIPE, [*_tiny(folder, batch=8, epochs=2), *sgd]), tmp_path / "one")
    finally:
        torch.set_num_threads(n)

    two = torch.load(tmp_path / "ddp" / "checkpoint.pth", weights_only=True)
    one = torch.load(tmp_path / "one" / "checkpoint.pth", weights_only=True)
    assert (two["world_size"], one["world_size"], two["epoch"], one["epoch"]) == (2, 1, 1, 1)
    logs = {k: [json.loads(x) for x in (tmp_path / k / "log.jsonl").read_text().splitlines()] for k in ("ddp", "one")}
    assert [r["steps"] for r in logs["ddp"]] == [r["steps"] for r in logs["one"]] == [1, 1]
    for r2, r1 in zip(logs["ddp"], logs["one"]):
        assert r2["lr"] == pytest.approx(r1["lr"]) and r2["loss"] == pytest.approx(r1["loss"], rel=1e-5)
    assert torch.load(tmp_path / "ddp" / "teacher_backbone.pth", weights_only=True)["epochs"] == 2
    moved = 0.0
    for part in ("student", "teacher", "dino_loss"):
        assert two[part].keys() == one[part].keys()
        for k, v in one[part].items():
            torch.testing.assert_close(two[part][k], v, rtol=1e-4, atol=1e-5, msg=f"{part} {k}")
        worst = max(float((two[part][k].double() - v.double()).abs().max()) for k, v in one[part].items())
        print(f"max |{part} 2 processes - 1 process|: {worst:.2e}")
    for k, v in one["student"].items():
        if v.is_floating_point() and k in one["teacher"]:
            moved = max(moved, float((v - one["teacher"][k]).abs().max()))
    print(f"max |student - teacher|: {moved:.2e}")
    assert moved > 1e-3                     # the student left the teacher: the comparison is not of two inits
    assert float(one["dino_loss"]["center"].abs().max()) > 1e-3


# ---------------------------------------------------------------------------- torchrun through the CLI
def _cli(args: list[str], over: list[str], torchrun: bool) -> subprocess.CompletedProcess:
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--node_rank", "0",
              "--nproc_per_node", "2", "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{_free_port()}",
              "-m", "poserepro"] if torchrun else [sys.executable, "-m", "poserepro"]
    cmd = [*launch, "pretrain", "dino", RECIPE, *args]
    for o in over:
        cmd += ["--set", o]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_torchrun_pretraining_writes_on_rank0_splits_the_batch_and_resumes_in_one_process(
        tiny_synth: Path, tmp_path: Path) -> None:
    from poserepro.cli.pretrain import published_backbone

    folder = _images(tmp_path / "imgs", 16)
    run = tmp_path / "run"
    # the k-NN probe on the tiny synthetic set: rank 0 alone runs it (the teacher's synchronised BatchNorm in eval
    # mode there) while rank 1 waits
    probe = ["probe.enabled=true", f"probe.root={tiny_synth}", "probe.synth_images=24", "probe.synth_val_images=8",
             "probe.synth_seed=3"]
    proc = _cli(["--run-dir", str(run)], [*_tiny(folder, batch=4, epochs=1), *probe], torchrun=True)
    assert proc.stdout.count("pretrain dino") == 1 and proc.stdout.count("done: 1 epochs") == 1   # rank 0 prints
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pth", "log.jsonl", "meta.json", "recipe.yaml",
                                                    "teacher_backbone.pth"]
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["steps"] == 2          # one writer; 16 images / (2 ranks x 4)
    assert 0.0 <= log[0]["knn"] <= 1.0 and 0.0 <= log[0]["knn_init"] <= 1.0 and proc.stdout.count("k-NN") == 1
    # cosine over 2 iterations without warm-up, peak 5e-4 x global batch 8 / 256: the last is (peak + min) / 2
    assert log[0]["lr"] == pytest.approx((5e-4 * 8 / 256 + 1e-6) / 2)
    assert json.loads((run / "meta.json").read_text())["world_size"] == 2
    state = torch.load(run / "checkpoint.pth", weights_only=True)
    assert state["world_size"] == 2 and state["epoch"] == 0
    assert not any(k.startswith("module.") for k in state["student"])   # the unwrapped student
    assert torch.load(published_backbone(RECIPE), weights_only=True)["epochs"] == 1

    proc = _cli(["--run-dir", str(run), "--resume"], [*_tiny(folder, batch=4, epochs=2), *probe], torchrun=False)
    assert "done: 2 epochs" in proc.stdout
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1] and log[1]["steps"] == 2 * log[0]["steps"] == 4
    assert log[1]["knn_init"] == log[0]["knn_init"]     # the random-init probe, carried by the checkpoint
    # epoch 1 = iterations 4..7 of a 2-epoch cosine at the single process' batch 4: the last is iteration 7
    peak = 5e-4 * 4 / 256
    assert log[1]["lr"] == pytest.approx(1e-6 + 0.5 * (peak - 1e-6) * (1 + np.cos(np.pi * 7 / 8)))
    state = torch.load(run / "checkpoint.pth", weights_only=True)
    assert state["world_size"] == 1 and state["epoch"] == 1
    backbone = torch.load(run / "teacher_backbone.pth", weights_only=True)
    assert backbone["epochs"] == 2
    for k, v in backbone["teacher"].items():
        assert torch.equal(v, state["teacher"][k])


def test_a_rank_share_smaller_than_the_batch_still_trains(tmp_path: Path) -> None:
    """12 images, batch 8 per process: one process drops the short last batch (1 step of 8); each of 2 ranks holds 6
    images, fewer than a batch, so its one short batch is kept (dropping it, as a drop_last judged on the whole
    set did, left 0 steps per epoch)."""
    from torch.utils.data import DistributedSampler

    from poserepro.pretrain.data import multicrop_dataset
    from poserepro.pretrain.recipe import load_pretrain_recipe
    from poserepro.pretrain.train import make_loader

    rec = load_pretrain_recipe(RECIPE, _tiny(_images(tmp_path / "imgs", 12), batch=8, epochs=1))
    ds = multicrop_dataset(rec.data, 0)
    gen = torch.Generator().manual_seed(0)
    assert len(make_loader(ds, 8, 0, gen)) == 1 and len(make_loader(ds, 4, 0, gen)) == 3
    for rank in range(2):
        loader = make_loader(ds, 8, 0, gen, DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True))
        assert len(loader) == 1 and next(iter(loader))[0].shape[0] == 6
    halves = make_loader(ds, 4, 0, gen, DistributedSampler(ds, num_replicas=2, rank=0, shuffle=True))
    assert len(halves) == 1 and next(iter(halves))[0].shape[0] == 4   # 6 = one batch of 4 + a dropped 2
