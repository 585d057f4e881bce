"""One readable training loop for every model family.

``train(recipe, run_dir)`` trains with the recipe's optimiser and schedule through the model's family
(:mod:`poserepro.families`: its data, forward and loss), logs one JSON line per epoch (epoch means of the loss and
of every named part), checkpoints every epoch atomically and resumes from ``checkpoint.pth``. With
``eval.every: N`` it evaluates on the val split every N epochs (rank 0; the others wait), logs ``val/AP``
(``val/PCKh`` on MPII) and keeps ``best.pth`` by that metric (a tie goes to the later epoch, as in the official
TransPose / PRTR ``tools/train.py``); the best so far survives a resume (the official code resumes with the last
epoch's value as the best).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..errors import RecipeError
from ..families import Criterion, ModelFamily, ProgressFn, family_of
from ..io import atomic_write_json, atomic_write_text
from ..recipes import Recipe
from ..weights.init import init_model
from . import dist
from .build import amp_context, build_model, seed_everything, to_channels_last, to_device, with_device
from .checkpoint import load_checkpoint, save_checkpoint
from .evaluate import evaluate, val_metric
from .schedules import build_optimizer, set_epoch_lr

TRANSFER_PREFIX = "transfer:"


@dataclass
class TrainResult:
    """Where a training run wrote its files, and its last epoch."""

    run_dir: Path
    checkpoint: Path
    epochs: int
    last_loss: float
    seconds: float
    best: dict[str, Any] | None = None      # {"metric", "value", "epoch"} with eval.every, else None
    init: str | None = None                 # the starting point's one-line report (None: from scratch / resumed)


@dataclass
class EpochStats:
    """Means over one epoch's steps of the loss and of every named part the criterion returned."""

    steps: int = 0
    images: int = 0
    loss_sum: float = 0.0
    part_sums: dict[str, float] = field(default_factory=dict)

    def add(self, loss: float, parts: dict[str, float], images: int) -> None:
        self.steps += 1
        self.images += images
        self.loss_sum += loss
        for k, v in parts.items():
            if k != "loss":  # a family's own total would shadow the epoch mean of the loss
                self.part_sums[k] = self.part_sums.get(k, 0.0) + float(v)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.steps, 1)

    def part_means(self) -> dict[str, float]:
        return {k: v / max(self.steps, 1) for k, v in self.part_sums.items()}


def load_initial_weights(model: nn.Module, weights: str) -> str:
    """``--init`` / ``--weights`` / ``model.weights`` / ``model.init``: a starting point in the grammar of
    :mod:`poserepro.weights.init` (``imagenet``, ``detr:r50``, ``dino:PATH``, ``official:NAME``, ``transfer:PATH``
    = a checkpoint of another joint set with ``head.final_layer`` re-initialised (FACTS §5.4), or a checkpoint).
    Returns the one-line report."""
    return init_model(model, weights)


def train_step(
    model: nn.Module, family: ModelFamily, criterion: Criterion, batch: dict[str, Any],
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, recipe: Recipe, device: torch.device,
    params: list[nn.Parameter], where: str = "",
) -> tuple[float, dict[str, float]]:
    """One optimisation step on a batch already on ``device``: channels-last input (``train.channels_last``),
    forward under autocast, loss, backward, clip, optimiser step. Returns the loss and its named parts.
    ``poserepro bench --train`` times exactly this function."""
    if recipe.train.channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    with amp_context(device, recipe.train.amp):
        outputs = family.forward(model, batch, train=True)
    loss, parts = criterion(outputs, batch)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {float(loss)}{' at ' + where if where else ''}; lower optim.lr")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if recipe.optim.clip_grad_norm:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, recipe.optim.clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach()), parts


def train_one_epoch(
    model: nn.Module, family: ModelFamily, criterion: Criterion, loader: DataLoader, optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, recipe: Recipe, device: torch.device, epoch: int, steps: int, lr: float,
    params: list[nn.Parameter], progress: ProgressFn | None = None,
) -> EpochStats:
    """One pass over ``loader`` (at most ``steps`` batches): forward under autocast, loss, backward, clip, step."""
    model.train()
    device_transform = getattr(loader.dataset, "transform", None)  # data.pipeline=fast: warp + targets on device
    world = dist.get_world_size()
    stats = EpochStats()
    t0 = time.perf_counter()
    for step, batch in enumerate(loader):
        if step >= steps:
            break
        batch = to_device(batch, device)
        if device_transform is not None:
            batch = device_transform(batch)
        loss, parts = train_step(model, family, criterion, batch, optimizer, scaler, recipe, device, params,
                                 f"epoch {epoch} step {step}")
        stats.add(loss, parts or {}, batch["image"].shape[0] * world)
        if progress and dist.is_main():
            progress({"epoch": epoch, "epochs": recipe.schedule.epochs, "step": step + 1, "steps": steps,
                      "loss": stats.loss, "lr": lr, "ips": stats.images / max(time.perf_counter() - t0, 1e-9)})
    return stats


def _rng_state() -> dict[str, Any]:
    """Python, numpy and torch CPU RNG states in a form ``torch.load(weights_only=True)`` reads back."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos,
                                                      has_gauss, gauss],
            "python": [version, torch.tensor(internal, dtype=torch.int64), gauss_next]}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal.tolist()), gauss_next))


def _validate(model: nn.Module, recipe: Recipe, run_dir: Path, device: torch.device) -> float:
    """The val metric of ``model`` now; the RNG streams training draws from are left as they were."""
    key, _ = val_metric(recipe)
    states = _rng_state()
    try:
        with torch.no_grad():  # not inference_mode: tensors a model caches here are used in training afterwards
            res = evaluate(model, recipe, run_dir / "val", split="val", device=str(device))
    finally:
        _set_rng_state(states)
    if key not in res.metrics:
        raise ValueError(f"eval.every: the val split gave no {key!r} (has it ground truth?)")
    return float(res.metrics[key])


def _tidy_run_dir(run_dir: Path, start_epoch: int) -> None:
    """After a kill: drop the temporary files of interrupted atomic writes, and the ``log.jsonl`` records of
    epochs the checkpoint does not hold (an epoch is logged just before its checkpoint is saved), so that a
    resumed run's log has each epoch once."""
    for tmp in run_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return
    kept = []
    for line in log.read_text().splitlines():
        try:
            epoch = int(json.loads(line)["epoch"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by the kill
        if epoch < start_epoch:
            kept.append(line)
    atomic_write_text(log, "".join(f"{line}\n" for line in kept))


def train(recipe: Recipe, run_dir: str | Path, resume: bool = False, progress: ProgressFn | None = None,
          init_weights: str | None = None) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` (``checkpoint.pth``, ``log.jsonl``, ``recipe.yaml``, ``meta.json``,
    and ``best.pth`` with ``eval.every``)."""
    import yaml

    from ..results import environment

    run_dir = Path(run_dir)
    recipe = with_device(recipe)
    dist.init_from_env(recipe.train.device)
    if dist.is_dist():  # DDP: every rank uses rank 0's run directory (resume reads the same checkpoint)
        run_dir = Path(str(dist.all_gather_objects(str(run_dir))[0]))
    ckpt_path = run_dir / "checkpoint.pth"
    device = torch.device(recipe.train.device)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    seed_everything(recipe.train.seed + dist.get_rank(), recipe.train.deterministic)

    if run_dir.exists() and not run_dir.is_dir():
        raise RecipeError(f"run directory {run_dir} is a file: pass a folder (--run-dir) that is new or a run's")
    model = build_model(recipe)
    family = family_of(model)
    weights = init_weights or recipe.model.weights or recipe.model.init
    init_report = None
    if weights and not resume:  # before the data: a bad starting point fails before any data is made
        if dist.is_dist() and not dist.is_main():
            dist.barrier()  # rank 0 downloads the file first
        init_report = load_initial_weights(model, weights)
        if dist.is_dist() and dist.is_main():
            dist.barrier()
    dataset = family.train_dataset(recipe)
    world = dist.get_world_size()
    sampler = DistributedSampler(dataset, shuffle=True, seed=recipe.train.seed) if world > 1 else None
    gen = torch.Generator().manual_seed(recipe.train.seed)
    loader = DataLoader(
        dataset, batch_size=recipe.train.batch_size, shuffle=sampler is None, sampler=sampler,
        num_workers=recipe.data.workers, drop_last=len(dataset) > recipe.train.batch_size, generator=gen,
        persistent_workers=recipe.data.workers > 0, pin_memory=device.type == "cuda",
        collate_fn=getattr(dataset, "collate", None),  # fast pipeline: pads cached windows; e2e: per-image targets
    )

    if recipe.train.sync_bn and world > 1:
        model = dist.convert_sync_batchnorm(model, recipe.train.device)  # CPU: gloo-capable SyncBN
    model.to(device)
    if recipe.train.channels_last:
        to_channels_last(model)
    optimizer = build_optimizer(model, recipe.optim, recipe.train.batch_size * world)
    base_lr = optimizer.param_groups[0]["initial_lr"]
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.train.amp == "fp16")
    start_epoch = 0
    metric_key, metric_name = val_metric(recipe)
    best: dict[str, Any] | None = None
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        fresh_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        optimizer.load_state_dict(state["optimizer"])
        for g, lr0 in zip(optimizer.param_groups, fresh_lrs):  # the world size (global batch) may differ
            g["initial_lr"] = lr0
        scaler.load_state_dict(state.get("scaler", {}))
        start_epoch = int(state["epoch"]) + 1
        best = state.get("best")
        if "rng" in state:
            _set_rng_state(state["rng"])
        else:  # checkpoints of earlier versions kept the torch state only
            torch.set_rng_state(state["rng_torch"])
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=getattr(model, "find_unused_parameters", False),
        )
    if recipe.train.compile:  # the training forward only; checkpoints keep the plain module's state dict
        ddp_model = torch.compile(ddp_model)
    criterion = family.criterion(recipe, model, device)

    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        _tidy_run_dir(run_dir, start_epoch)
        atomic_write_text(run_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        meta = {"recipe": recipe.name, "model": recipe.model.name, "world_size": world, **environment(),
                "params": sum(p.numel() for p in model.parameters()), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "init": init_report}
        atomic_write_json(run_dir / "meta.json", meta)

    t0 = time.perf_counter()
    last_loss = math.nan
    epochs = recipe.schedule.epochs
    steps = len(loader)
    if recipe.train.max_steps_per_epoch:
        steps = min(steps, recipe.train.max_steps_per_epoch)
    every = recipe.eval.every
    params = list(model.parameters())
    for epoch in range(start_epoch, epochs):
        lr = set_epoch_lr(optimizer, epoch, recipe.schedule, base_lr)
        dataset.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        gen.manual_seed(recipe.train.seed * 1000 + epoch)
        te = time.perf_counter()
        stats = train_one_epoch(ddp_model, family, criterion, loader, optimizer, scaler, recipe, device, epoch,
                                steps, lr, params, progress)
        last_loss = float(dist.all_reduce_mean(torch.tensor(stats.loss, dtype=torch.float64, device=device)))
        if dist.is_main():
            record: dict[str, Any] = {"epoch": epoch, "loss": last_loss, "lr": lr, "steps": stats.steps,
                                      "images": stats.images, "seconds": round(time.perf_counter() - te, 3),
                                      **stats.part_means()}
            improved = False
            if every and ((epoch + 1) % every == 0 or epoch + 1 == epochs):
                value = _validate(model, recipe, run_dir, device)
                record[metric_name] = value
                improved = best is None or value >= float(best["value"])  # ties: the later epoch, as official
                if improved:
                    best = {"metric": metric_name, "value": value, "epoch": epoch}
            with (run_dir / "log.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                     "epoch": epoch, "recipe": recipe.to_dict(), "rng": _rng_state(), "world_size": world, "best": best}
            if improved:  # best first: a crash between the two writes never leaves a checkpoint ahead of best.pth
                save_checkpoint(run_dir / "best.pth", {"model": state["model"], "epoch": epoch,
                                                       "recipe": state["recipe"], "best": best})
            save_checkpoint(ckpt_path, state)
        dist.barrier()
    if dist.is_dist():
        best = dist.all_gather_objects(best)[0]
    return TrainResult(run_dir, ckpt_path, epochs, last_loss, time.perf_counter() - t0, best, init_report)
