"""One readable training loop and one evaluation routine for every model family.

``train(recipe, run_dir)`` trains with the recipe's optimiser and schedule, logs JSON lines, checkpoints every
epoch atomically and resumes from ``checkpoint.pth``. ``evaluate(...)`` runs the top-down test protocol:
model → decode (+ flip merge) → inverse affine → rescoring + OKS-NMS → COCO AP.
"""

from __future__ import annotations

import inspect
import json
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..codecs.flip import flip_heatmaps_back
from ..codecs.heatmap import decode, heatmap_to_image
from ..data.keypoints import get_spec
from ..data.transforms import affine_points, get_affine_transform
from ..evaluation.coco import evaluate_keypoints, write_results
from ..evaluation.postprocess import rescore_and_nms
from ..losses.heatmap import JointsMSELoss
from ..recipes import Recipe
from ..registry import create_model
from . import dist
from .checkpoint import atomic_write_json, atomic_write_text, load_checkpoint, load_model_weights, save_checkpoint
from .data import make_dataset, person_records
from .schedules import build_optimizer, set_epoch_lr

ProgressFn = Callable[[dict[str, Any]], None]


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; deterministic algorithms on request."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def build_model(recipe: Recipe) -> nn.Module:
    """``create_model`` with the recipe's args, plus ``input_size`` / ``num_joints`` where the builder takes them."""
    from ..registry import model_entrypoint

    args = dict(recipe.model.args)
    params = inspect.signature(model_entrypoint(recipe.model.name)).parameters
    if "input_size" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        args.setdefault("input_size", tuple(recipe.data.input_size))
    if "num_joints" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        args.setdefault("num_joints", recipe.data.num_joints)
    for k in ("input_size",):
        if k in args and isinstance(args[k], list):
            args[k] = tuple(args[k])
    return create_model(recipe.model.name, **args)


def _amp_ctx(device: torch.device, amp: str):
    if amp == "off":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if isinstance(v, list):  # end-to-end targets: one dict of tensors per image
            return [move(x) for x in v]
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        return v

    return {k: move(v) for k, v in batch.items()}


def to_channels_last(model: nn.Module) -> None:
    """Convert every 2-D convolution's weights to channels-last (other parameters keep their layout)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.to(memory_format=torch.channels_last)


def is_end_to_end(model: nn.Module) -> bool:
    """Whole-image models (end-to-end PRTR) train and evaluate without person crops."""
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return getattr(core, "output_type", "heatmap") == "e2e"


def whole_image_dataset(recipe: Recipe, split: str, train: bool, ann_file: str | Path | None = None,
                        image_dir: str | Path | None = None) -> Any:
    """The recipe's ``split`` as whole images resized to ``data.input_size`` (end-to-end PRTR); its ``collate``
    makes the loop's batch dicts."""
    from ..models.prtr_e2e import WholeImageDataset
    from .data import split_files

    files = split_files(recipe.data, split)
    return WholeImageDataset(
        ann_file or files.ann_file, image_dir or files.image_dir, recipe.data.input_size, train=train,
        num_joints=recipe.data.num_joints, flip_prob=recipe.data.flip_prob, color_rgb=recipe.data.color_rgb,
        seed=recipe.train.seed,
    )


def compute_loss(
    model: nn.Module, outputs: Any, batch: dict[str, Any], criterion: nn.Module
) -> tuple[torch.Tensor, dict]:
    """Heatmap models: joints MSE (or Sinkhorn) against ``batch['heatmaps']``; others: ``model.loss``."""
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    if getattr(core, "output_type", "heatmap") == "heatmap":
        loss = criterion(outputs.float(), batch["heatmaps"], batch["target_weight"])
        return loss, {"loss_heatmap": float(loss.detach())}
    if is_end_to_end(core):
        return core.loss(outputs, batch["targets"])
    return core.loss(outputs, batch)


@dataclass
class TrainResult:
    """Where a training run wrote its files, and its last epoch."""

    run_dir: Path
    checkpoint: Path
    epochs: int
    last_loss: float
    seconds: float


def _make_criterion(recipe: Recipe) -> nn.Module:
    if recipe.train.loss == "sinkhorn":
        from ..losses.sinkhorn import SinkhornLoss

        return SinkhornLoss()
    return JointsMSELoss()


TRANSFER_PREFIX = "transfer:"


def _load_initial_weights(model: nn.Module, weights: str) -> None:
    """``model.weights`` / ``--weights``: a checkpoint (strict), or ``transfer:PATH`` = a checkpoint of another
    joint set (COCO → MPII): everything but ``head.final_layer``, which is re-initialised (FACTS §5.4)."""
    if weights.startswith(TRANSFER_PREFIX):
        from .checkpoint import load_for_transfer

        load_for_transfer(model, weights[len(TRANSFER_PREFIX):], reinit=("head.final_layer",))
    else:
        load_model_weights(model, weights, strict=True)


def train(recipe: Recipe, run_dir: str | Path, resume: bool = False, progress: ProgressFn | None = None,
          init_weights: str | None = None) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` (``checkpoint.pth``, ``log.jsonl``, ``recipe.yaml``, ``meta.json``)."""
    import yaml

    from ..results import environment

    run_dir = Path(run_dir)
    dist.init_from_env(recipe.train.device)
    if dist.is_dist():  # DDP: every rank uses rank 0's run directory (resume reads the same checkpoint)
        run_dir = Path(str(dist.all_gather_objects(str(run_dir))[0]))
    ckpt_path = run_dir / "checkpoint.pth"
    device = torch.device(recipe.train.device)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    seed_everything(recipe.train.seed + dist.get_rank(), recipe.train.deterministic)

    model = build_model(recipe)
    e2e = is_end_to_end(model)
    if e2e:  # end-to-end PRTR: whole images and their persons, no person crops
        dataset: Any = whole_image_dataset(recipe, "train", train=True)
    else:
        records, _ = person_records(recipe, "train")
        dataset = make_dataset(recipe, records, train=True)
    world = dist.get_world_size()
    sampler = DistributedSampler(dataset, shuffle=True, seed=recipe.train.seed) if world > 1 else None
    gen = torch.Generator().manual_seed(recipe.train.seed)
    loader = DataLoader(
        dataset, batch_size=recipe.train.batch_size, shuffle=sampler is None, sampler=sampler,
        num_workers=recipe.data.workers, drop_last=len(dataset) > recipe.train.batch_size, generator=gen,
        persistent_workers=recipe.data.workers > 0, pin_memory=device.type == "cuda",
        collate_fn=getattr(dataset, "collate", None),  # fast pipeline: pads cached windows; e2e: per-image targets
    )
    device_transform = getattr(dataset, "transform", None)  # data.pipeline=fast: warp + targets on the device

    weights = init_weights or recipe.model.weights
    if weights and not resume:
        _load_initial_weights(model, weights)
    if recipe.train.sync_bn and world > 1:
        model = dist.convert_sync_batchnorm(model, recipe.train.device)  # CPU: gloo-capable SyncBN
    model.to(device)
    if recipe.train.channels_last:
        to_channels_last(model)
    optimizer = build_optimizer(model, recipe.optim, recipe.train.batch_size * world)
    base_lr = optimizer.param_groups[0]["initial_lr"]
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.train.amp == "fp16")
    start_epoch = 0
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        fresh_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        optimizer.load_state_dict(state["optimizer"])
        for g, lr0 in zip(optimizer.param_groups, fresh_lrs):  # the world size (global batch) may differ
            g["initial_lr"] = lr0
        scaler.load_state_dict(state.get("scaler", {}))
        start_epoch = int(state["epoch"]) + 1
        torch.set_rng_state(state["rng_torch"])
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=getattr(model, "find_unused_parameters", False),
        )
    criterion = _make_criterion(recipe).to(device)

    if dist.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "recipe.yaml", yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        meta = {"recipe": recipe.name, "model": recipe.model.name, "world_size": world, **environment(),
                "params": sum(p.numel() for p in model.parameters()), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_json(run_dir / "meta.json", meta)

    t0 = time.perf_counter()
    last_loss = float("nan")
    epochs = recipe.schedule.epochs
    steps_per_epoch = len(loader)
    if recipe.train.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, recipe.train.max_steps_per_epoch)
    for epoch in range(start_epoch, epochs):
        lr = set_epoch_lr(optimizer, epoch, recipe.schedule, base_lr)
        dataset.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        gen.manual_seed(recipe.train.seed * 1000 + epoch)
        ddp_model.train()
        tot, n, seen = 0.0, 0, 0
        te = time.perf_counter()
        for step, batch in enumerate(loader):
            if step >= steps_per_epoch:
                break
            batch = _to(batch, device)
            if device_transform is not None:
                batch = device_transform(batch)
            images = batch["image"]
            if recipe.train.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with _amp_ctx(device, recipe.train.amp):
                outputs = ddp_model(images, batch["targets"]) if e2e else ddp_model(images)
            loss, parts = compute_loss(ddp_model, outputs, batch, criterion)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch} step {step}; lower optim.lr")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if recipe.optim.clip_grad_norm:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            tot += float(loss.detach())
            n += 1
            seen += images.shape[0] * world
            if progress and dist.is_main():
                progress({"epoch": epoch, "epochs": epochs, "step": step + 1, "steps": steps_per_epoch,
                          "loss": tot / n, "lr": lr, "ips": seen / max(time.perf_counter() - te, 1e-9)})
        last_loss = float(dist.all_reduce_mean(torch.tensor(tot / max(n, 1), dtype=torch.float64, device=device)))
        if dist.is_main():
            rec = {"epoch": epoch, "loss": last_loss, "lr": lr, "steps": n, "images": seen,
                   "seconds": round(time.perf_counter() - te, 3), **{k: v for k, v in (parts or {}).items()}}
            with (run_dir / "log.jsonl").open("a") as f:
                f.write(json.dumps(rec) + "\n")
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "epoch": epoch, "recipe": recipe.to_dict(), "rng_torch": torch.get_rng_state(),
                "world_size": world,
            })
        dist.barrier()
    return TrainResult(run_dir, ckpt_path, epochs, last_loss, time.perf_counter() - t0)


@torch.no_grad()
def predict_crops(
    model: nn.Module, loader: DataLoader, recipe: Recipe, flip: bool, device: torch.device,
    progress: ProgressFn | None = None,
) -> dict[str, np.ndarray]:
    """Run the model over every crop; keypoints mapped back to image pixels.

    Returns arrays ``preds (N, K, 3)`` (x, y, score), ``centers (N, 2)``, ``scales (N, 2)``, ``scores (N,)``,
    ``image_ids (N,)``.
    """
    model.eval()
    spec = get_spec("coco" if recipe.data.num_joints == 17 else "mpii")
    in_w, in_h = recipe.data.input_size
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("preds", "centers", "scales", "scores", "image_ids")}
    kind = getattr(model, "output_type", "heatmap")
    total = len(loader)
    for step, batch in enumerate(loader):
        images = batch["image"].to(device)
        outputs = model(images)
        flipped = model(images.flip(3)) if flip else None
        centers = batch["center"].numpy()
        scales = batch["scale"].numpy()
        if kind == "heatmap":
            hm = outputs.float()
            if flipped is not None:
                hm = (hm + flip_heatmaps_back(flipped.float(), spec.flip_pairs, shift=recipe.eval.flip_shift)) / 2
            coords, maxvals = decode(hm.cpu().numpy(), recipe.eval.decode, recipe.eval.blur_kernel)
            hh, hw = hm.shape[-2:]
            img_pts = heatmap_to_image(coords, centers, scales, (hw, hh), udp=recipe.eval.decode == "udp",
                                       convention=recipe.data.affine)
        else:
            c, maxvals = model.decode(outputs, flipped)
            coords = c.detach().float().cpu().numpy()
            maxvals = maxvals.detach().float().cpu().numpy()
            img_pts = np.zeros_like(coords)
            for i in range(coords.shape[0]):
                inv = get_affine_transform(centers[i], scales[i], 0.0, (in_w, in_h), inv=True,
                                           convention=recipe.data.affine)
                img_pts[i] = affine_points(coords[i], inv)
        out["preds"].append(np.concatenate([img_pts, maxvals[..., None]], axis=-1))
        out["centers"].append(centers)
        out["scales"].append(scales)
        out["scores"].append(batch["score"].numpy())
        out["image_ids"].append(batch["image_id"].numpy())
        if progress:
            progress({"step": step + 1, "steps": total})
    return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in out.items()}


@dataclass
class EvalResult:
    """Metrics (empty for splits without ground truth), results JSON path and counts."""

    metrics: dict[str, float]
    results_file: Path
    num_crops: int
    num_results: int
    ann_file: Path
    seconds: float


def evaluate(
    model: nn.Module, recipe: Recipe, out_dir: str | Path, split: str = "val", use_gt_boxes: bool | None = None,
    det_file: str | Path | None = None, flip: bool | None = None, device: str | None = None,
    ann_file: str | Path | None = None, image_dir: str | Path | None = None, progress: ProgressFn | None = None,
    results_name: str | None = None,
) -> EvalResult:
    """Top-down evaluation of ``model`` on a split; writes the COCO results JSON into ``out_dir``.

    End-to-end models (:func:`is_end_to_end`) see whole images instead: boxes, detector files and flip test do not
    apply to them.
    """
    t0 = time.perf_counter()
    dev = torch.device(device or recipe.train.device)
    if is_end_to_end(model):
        return _evaluate_whole_images(model, recipe, out_dir, split, dev, ann_file, image_dir, progress,
                                      results_name, t0)
    records, files = person_records(recipe, split, use_gt_boxes, det_file, ann_file, image_dir)
    ds = make_dataset(recipe, records, train=False)
    loader = DataLoader(ds, batch_size=recipe.eval.batch_size, shuffle=False, num_workers=recipe.data.workers)
    model.to(dev)
    flip = recipe.eval.flip if flip is None else flip
    p = predict_crops(model, loader, recipe, flip, dev, progress)
    if recipe.data.dataset == "mpii":
        return _evaluate_mpii(p, files, split, flip, out_dir, results_name, t0)
    spec = get_spec("coco" if recipe.data.num_joints == 17 else "mpii")
    results = rescore_and_nms(
        p["preds"], p["centers"], p["scales"], p["scores"], p["image_ids"], in_vis_thre=recipe.eval.in_vis_thre,
        oks_thre=recipe.eval.oks_thre, sigmas=spec.sigmas, nms=recipe.eval.nms,
    )
    out_dir = Path(out_dir)
    name = results_name or f"results_{split}_{'gt' if use_gt_boxes else 'det'}{'_flip' if flip else ''}.json"
    res_path = out_dir / name
    write_results(res_path, results)
    metrics: dict[str, float] = {}
    if files.has_gt:
        metrics = evaluate_keypoints(files.ann_file, results, backend=recipe.eval.backend, sigmas=spec.sigmas)
    return EvalResult(metrics, res_path, len(records), len(results), files.ann_file, time.perf_counter() - t0)


@torch.no_grad()
def _evaluate_whole_images(
    model: nn.Module, recipe: Recipe, out_dir: str | Path, split: str, dev: torch.device,
    ann_file: str | Path | None, image_dir: str | Path | None, progress: ProgressFn | None,
    results_name: str | None, t0: float,
) -> EvalResult:
    """End-to-end PRTR: every image of the split through detector + keypoint Transformer → COCO results → AP."""
    from ..models.prtr_e2e import predict_image_results
    from .data import split_files

    files = split_files(recipe.data, split)
    ds = whole_image_dataset(recipe, split, train=False, ann_file=ann_file, image_dir=image_dir)
    loader = DataLoader(ds, batch_size=recipe.eval.batch_size, shuffle=False, num_workers=recipe.data.workers,
                        collate_fn=ds.collate)
    model.to(dev).eval()
    results: list[dict] = []
    for step, batch in enumerate(loader):
        results += predict_image_results(model, batch["image"].to(dev), batch["image_id"], batch["orig_size"],
                                         in_vis_thre=recipe.eval.in_vis_thre)
        if progress:
            progress({"step": step + 1, "steps": len(loader)})
    res_path = Path(out_dir) / (results_name or f"results_{split}_e2e.json")
    write_results(res_path, results)
    gt = Path(ann_file) if ann_file else files.ann_file
    has_gt = files.has_gt if ann_file is None else True
    metrics = evaluate_keypoints(gt, results, backend=recipe.eval.backend,
                                 sigmas=get_spec("coco").sigmas) if has_gt else {}
    return EvalResult(metrics, res_path, len(ds), len(results), gt, time.perf_counter() - t0)


def _evaluate_mpii(p: dict[str, np.ndarray], files: Any, split: str, flip: bool, out_dir: str | Path,
                   results_name: str | None, t0: float) -> EvalResult:
    """MPII: predictions (annotated person centres, no rescoring/NMS) → HRNet-style ``pred.mat`` → PCKh
    (``PCKh@0.5/Head`` … ``PCKh@0.5/Mean``, ``PCKh@0.1/…``, fractions) when ``gt_valid.mat`` is there."""
    from ..evaluation.mpii import pckh_metrics, save_predictions

    preds = p["preds"][..., :2]
    name = results_name or f"pred_mpii_{split}{'_flip' if flip else ''}.mat"
    res_path = save_predictions(Path(out_dir) / name, preds)
    metrics: dict[str, float] = {}
    if files.has_gt and files.gt_file is not None:
        metrics = pckh_metrics(preds, p["image_ids"], files.gt_file)
    return EvalResult(metrics, res_path, len(preds), len(preds), files.gt_file or files.ann_file,
                      time.perf_counter() - t0)
