"""The DINO pretraining loop (facebookresearch/dino ``main_dino.py`` ``train_dino`` / ``train_one_epoch``).

``pretrain_dino(recipe, run_dir)``: student = backbone of the recipe's pose model + DINO head; teacher = a copy
with no gradients, updated by EMA. Per iteration: lr, weight decay and teacher momentum from their schedules;
teacher on the 2 global crops, student on every crop; DINO loss; backward (GradScaler under fp16); per-tensor
clipping; ``last_layer`` gradients dropped during the first ``freeze_last_layer`` epochs; step; EMA. The teacher
stays in training mode, as in the reference (its BatchNorm statistics come from its own batches).

Under ``torchrun`` (DDP, as ``main_dino.py``): ``train.batch_size`` is per process and the lr scales with the
global batch; a ``DistributedSampler`` gives each rank its share of the images; BatchNorm is synchronised in the
student and the teacher (gloo-capable on CPU); only the student is DDP-wrapped and the teacher starts from the
student DDP broadcast from rank 0; the center is the mean over every rank's teacher outputs (all-reduced in
:class:`DINOLoss`); rank 0 alone probes and writes. A checkpoint resumes under any world size.

Files in ``run_dir``: ``checkpoint.pth`` (every epoch, atomic: student, teacher, optimizer, scaler, loss center,
epoch, RNG streams; resuming gives bitwise the weights of an uninterrupted run), ``log.jsonl`` (one line per
epoch: loss, the collapse monitor ``teacher_entropy`` / ``kl``, schedules, the k-NN probe), ``recipe.yaml``,
``meta.json``, and at the end ``teacher_backbone.pth`` = ``{"teacher": {"backbone.*": ...}}`` (what
``model.init: dino:PATH`` loads into the pose model's backbone).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..engine import dist
from ..engine.build import amp_context, resolve_device, seed_everything, to_channels_last
from ..engine.checkpoint import load_checkpoint, save_checkpoint
from ..engine.loop import _rng_state, _set_rng_state, _tidy_run_dir
from ..io import atomic_torch_save, atomic_write_json, atomic_write_text
from .data import MultiCropDataset, multicrop_dataset
from .head import DINOHead
from .knn import ProbeSet, bn_calibrated, build_probe_set, knn_accuracy
from .loss import DINOLoss
from .multicrop import MultiCropWrapper, Trunk, feature_dim, pose_trunk
from .optim import build_optimizer, cancel_last_layer_grads, clip_gradients, cosine_schedule, ema_update, param_groups
from .recipe import PretrainRecipe

ProgressFn = Callable[[dict[str, Any]], None]
BACKBONE_FILE = "teacher_backbone.pth"


@dataclass
class PretrainResult:
    run_dir: Path
    checkpoint: Path
    backbone_file: Path | None          # None when stopped before the last epoch
    epochs: int                         # epochs done
    seconds: float
    last: dict[str, Any]                # the last log record
    knn_init: float | None              # the probe at random init (the same backbone before training, its
    #                                     BatchNorm statistics re-estimated on the data: probe.bn_batches)


def build_student(recipe: PretrainRecipe) -> MultiCropWrapper:
    """The student: the pose model's backbone, or with ``model.trunk=encoder`` the model up to its encoder (at the
    global crop size), + :class:`DINOHead`."""
    m = recipe.model
    backbone = pose_trunk(m.name, m.args, tuple(recipe.data.global_size), m.trunk)
    dim = feature_dim(backbone, tuple(recipe.data.global_size), m.pool, tuple(m.grid))
    head = DINOHead(dim, m.out_dim, m.use_bn_in_head, m.norm_last_layer, m.nlayers, m.hidden_dim, m.bottleneck_dim)
    return MultiCropWrapper(backbone, head, m.pool, tuple(m.grid))


def make_teacher(student: nn.Module) -> nn.Module:
    """A copy of the student without gradients."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad = False
    return teacher


def backbone_state(teacher: MultiCropWrapper, trunk: Trunk = "backbone") -> dict[str, torch.Tensor]:
    """``{"backbone.<key>": tensor}`` of the teacher's backbone; for the encoder trunk its pose-model keys
    (``backbone.*``, ``reduce.*``, ``pos_embed.*``, ``encoder.*``), of which ``dino:PATH`` loads ``backbone.*``."""
    prefix = "backbone." if trunk == "backbone" else ""
    return {f"{prefix}{k}": v.detach().clone() for k, v in teacher.backbone.state_dict().items()}


def make_loader(dataset: MultiCropDataset, batch_size: int, workers: int, gen: torch.Generator,
                sampler: DistributedSampler | None = None, pin_memory: bool = False) -> DataLoader:
    """Batches of ``batch_size`` per process: shuffled by ``gen`` in one process, by ``sampler`` under DDP (each
    rank its share). The last short batch is dropped unless the process' share is at most one batch (then it is
    the only batch: a share smaller than ``batch_size`` still trains)."""
    share = len(sampler) if sampler is not None else len(dataset)
    return DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler, num_workers=workers,
                      drop_last=share > batch_size, generator=gen, persistent_workers=workers > 0,
                      pin_memory=pin_memory)


def _schedules(recipe: PretrainRecipe, steps: int, world: int) -> dict[str, Any]:
    o, e = recipe.optim, recipe.train.epochs
    peak = o.lr * recipe.train.batch_size * world / 256.0  # linear scaling rule
    return {"lr": cosine_schedule(peak, o.min_lr, e, steps, o.warmup_epochs),
            "wd": cosine_schedule(o.weight_decay, o.weight_decay_end, e, steps),
            "momentum": cosine_schedule(recipe.loss.momentum_teacher, 1.0, e, steps)}


def _probe(recipe: PretrainRecipe, probe: ProbeSet | None, backbone: nn.Module,
           device: torch.device) -> float | None:
    if probe is None:
        return None
    states = _rng_state()  # the probe draws nothing, but keep training's streams untouched whatever it does
    try:
        return knn_accuracy(backbone, probe, recipe.model.pool, device, recipe.probe.k,
                            recipe.probe.temperature, tuple(recipe.model.grid))
    finally:
        _set_rng_state(states)


def global_crop_batches(dataset: MultiCropDataset, batch_size: int, n: int, device: torch.device):  # noqa: ANN201
    """The first ``n`` batches (samples in index order, epoch 0's crops) of both global crops, concatenated:
    what the teacher sees, for :func:`bn_calibrated`. Draws only from the samples' own seeded streams."""
    was = dataset.epoch
    dataset.set_epoch(0)
    try:
        for b in range(min(n, math.ceil(len(dataset) / batch_size))):
            crops = [dataset[i] for i in range(b * batch_size, min((b + 1) * batch_size, len(dataset)))]
            yield torch.stack([c[0] for c in crops] + [c[1] for c in crops]).to(device)
    finally:
        dataset.set_epoch(was)


def _probe_init(recipe: PretrainRecipe, probe: ProbeSet | None, teacher: MultiCropWrapper,
                dataset: MultiCropDataset, device: torch.device) -> tuple[float | None, float | None]:
    """(knn_init with the BatchNorm statistics re-estimated on the data, knn_init with the default ones)."""
    if probe is None:
        return None, None
    raw = _probe(recipe, probe, teacher.backbone, device)
    if not recipe.probe.bn_batches:
        return raw, raw
    batches = global_crop_batches(dataset, recipe.train.batch_size, recipe.probe.bn_batches, device)
    return _probe(recipe, probe, bn_calibrated(teacher.backbone, batches), device), raw


def pretrain_dino(recipe: PretrainRecipe, run_dir: str | Path, resume: bool = False,
                  progress: ProgressFn | None = None, stop_after: int | None = None) -> PretrainResult:
    """Pretrain ``recipe`` into ``run_dir`` (see the module docstring). ``stop_after``: return after that many
    epochs (as if interrupted; ``resume=True`` continues the same schedule)."""
    import yaml

    from ..results import environment

    run_dir = Path(run_dir)
    device_name = resolve_device(recipe.train.device)
    dist.init_from_env(device_name)
    if dist.is_dist():
        run_dir = Path(str(dist.all_gather_objects(str(run_dir))[0]))
    device = torch.device(device_name)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    seed_everything(recipe.train.seed + dist.get_rank(), recipe.train.deterministic)
    world = dist.get_world_size()
    ckpt_path = run_dir / "checkpoint.pth"

    student = build_student(recipe).to(device)
    if world > 1:  # SyncBN for conv nets, as the reference
        student = dist.convert_sync_batchnorm(student, device_name)
    teacher = make_teacher(student)
    if recipe.train.channels_last:
        to_channels_last(student)
        to_channels_last(teacher)
    dataset: MultiCropDataset = multicrop_dataset(recipe.data, recipe.train.seed)
    sampler = DistributedSampler(dataset, shuffle=True, seed=recipe.train.seed) if world > 1 else None
    gen = torch.Generator().manual_seed(recipe.train.seed)
    loader = make_loader(dataset, recipe.train.batch_size, recipe.data.workers, gen, sampler, device.type == "cuda")
    steps = len(loader)
    if recipe.train.max_steps_per_epoch:
        steps = min(steps, recipe.train.max_steps_per_epoch)
    sched = _schedules(recipe, steps, world)
    dino_loss = DINOLoss(recipe.model.out_dim, recipe.ncrops, recipe.loss.warmup_teacher_temp,
                         recipe.loss.teacher_temp, recipe.loss.warmup_teacher_temp_epochs, recipe.train.epochs,
                         recipe.loss.student_temp, recipe.loss.center_momentum).to(device)
    optimizer = build_optimizer(recipe.optim.name, param_groups(student))
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.train.amp == "fp16")

    probe = None
    if recipe.probe.enabled and dist.is_main():
        size = tuple(recipe.probe.size) if min(recipe.probe.size) > 0 else tuple(recipe.data.global_size)
        probe = build_probe_set(recipe.probe, size)
    start_epoch, knn_init, knn_init_raw = 0, None, None
    resumed = resume and ckpt_path.is_file()
    if resumed:
        state = load_checkpoint(ckpt_path)
        student.load_state_dict(state["student"])
        teacher.load_state_dict(state["teacher"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        dino_loss.load_state_dict(state["dino_loss"])
        start_epoch = int(state["epoch"]) + 1
        knn_init, knn_init_raw = state.get("knn_init"), state.get("knn_init_raw")
        _set_rng_state(state["rng"])
    else:
        knn_init, knn_init_raw = _probe_init(recipe, probe, teacher, dataset, device)
    ddp_student: nn.Module = student
    if world > 1:
        ddp_student = nn.parallel.DistributedDataParallel(
            student, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
        if not resumed:  # the student is rank 0's now (DDP broadcast it): so must every rank's teacher be, not
            teacher.load_state_dict(student.state_dict())  # the rank's own init (main_dino.py does the same)

    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        _tidy_run_dir(run_dir, start_epoch)
        atomic_write_text(run_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        atomic_write_json(run_dir / "meta.json", {
            "recipe": recipe.name, "model": recipe.model.name, "world_size": world, **environment(),
            "student_params": sum(p.numel() for p in student.parameters()),
            "backbone_params": sum(p.numel() for p in student.backbone.parameters()),
            "images": len(dataset), "knn_init": knn_init, "knn_init_raw": knn_init_raw,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")})

    t0 = time.perf_counter()
    last: dict[str, Any] = {}
    epochs = recipe.train.epochs
    end = epochs if stop_after is None else min(epochs, stop_after)
    for epoch in range(start_epoch, end):
        dataset.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        gen.manual_seed(recipe.train.seed * 1000 + epoch)
        te = time.perf_counter()
        sums = {"loss": 0.0, "teacher_entropy": 0.0, "kl": 0.0}
        n = 0
        student.train()
        for i, crops in enumerate(loader):
            if i >= steps:
                break
            it = steps * epoch + i
            for g_i, g in enumerate(optimizer.param_groups):
                g["lr"] = float(sched["lr"][it])
                if g_i == 0:
                    g["weight_decay"] = float(sched["wd"][it])
            crops = [c.to(device, non_blocking=True) for c in crops]
            if recipe.train.channels_last:
                crops = [c.contiguous(memory_format=torch.channels_last) for c in crops]
            with amp_context(device, recipe.train.amp):
                with torch.no_grad():
                    teacher_out = teacher(crops[:2])
                student_out = ddp_student(crops)
            loss = dino_loss(student_out.float(), teacher_out.float(), epoch)
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"DINO loss became {float(loss)} at epoch {epoch} step {i}; "
                                         "lower optim.lr or use train.amp=off")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if recipe.optim.clip_grad:
                scaler.unscale_(optimizer)
                clip_gradients(student, recipe.optim.clip_grad)
            cancel_last_layer_grads(epoch, student, recipe.optim.freeze_last_layer)
            scaler.step(optimizer)
            scaler.update()
            ema_update(student, teacher, float(sched["momentum"][it]))
            sums["loss"] += float(loss.detach())
            for k in ("teacher_entropy", "kl"):
                sums[k] += dino_loss.last_stats[k]
            n += 1
            if progress and dist.is_main():
                progress({"epoch": epoch, "epochs": epochs, "step": i + 1, "steps": steps,
                          "loss": sums["loss"] / n, "lr": float(sched["lr"][it]),
                          "entropy": sums["teacher_entropy"] / n})
        means = {k: float(dist.all_reduce_mean(torch.tensor(v / max(n, 1), dtype=torch.float64, device=device)))
                 for k, v in sums.items()}
        it_last = steps * epoch + max(n - 1, 0)
        record: dict[str, Any] = {
            "epoch": epoch, **means, "lr": float(sched["lr"][it_last]), "wd": float(sched["wd"][it_last]),
            "momentum": float(sched["momentum"][it_last]),
            "teacher_temp": float(dino_loss.teacher_temps[min(epoch, epochs - 1)]),
            "max_entropy": math.log(recipe.model.out_dim), "steps": n,
            "seconds": round(time.perf_counter() - te, 3)}
        every = recipe.probe.every
        if probe is not None and ((every and (epoch + 1) % every == 0) or epoch + 1 == epochs):
            record["knn"] = _probe(recipe, probe, teacher.backbone, device)
            record["knn_init"] = knn_init
            record["knn_init_raw"] = knn_init_raw
            record["knn_majority"] = probe.majority
        if dist.is_main():
            with (run_dir / "log.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")
            save_checkpoint(ckpt_path, {
                "student": student.state_dict(), "teacher": teacher.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "dino_loss": dino_loss.state_dict(), "epoch": epoch, "recipe": recipe.to_dict(),
                "rng": _rng_state(), "world_size": world, "knn_init": knn_init,
                "knn_init_raw": knn_init_raw})
        dist.barrier()
        last = record
    done = end if start_epoch < end else start_epoch
    backbone_file = None
    if done >= epochs and dist.is_main():
        backbone_file = run_dir / BACKBONE_FILE
        atomic_torch_save(backbone_file, {"teacher": backbone_state(teacher, recipe.model.trunk), "recipe": recipe.name,
                                          "model": recipe.model.name, "epochs": epochs})
    return PretrainResult(run_dir, ckpt_path, backbone_file, done, time.perf_counter() - t0, last, knn_init)
