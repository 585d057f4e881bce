#!/usr/bin/env python
"""Forward and training-step speed of poserepro against the official layer structure, same weights, one process.

For each model the "official" network is rebuilt from ours (a deep copy with the same weights, then the parts
whose official implementation differs swapped for modules that compute what the official code computes, from
the published key layouts and the papers; no official code is copied):

* TransPose (TP-R-A4, TP-H-A6) and BTranspose (C3A1): the encoder runs sequence-first ``(L, B, d)`` tokens through
  ``nn.MultiheadAttention`` called with its default ``need_weights=True`` (the head-averaged attention matrix is
  computed every layer), the position table is an ``(L, 1, d)`` parameter added to q and k in every layer
  (BTranspose: first layer only, learnable); BTranspose's backbone MHSA is the released code's: three 1×1 convs,
  ``content = qᵀk`` and ``position = rᵀq`` as two ``torch.matmul`` products, softmax, ``v·attnᵀ`` (FACTS §1.2).
* PRTR (R-50): DETR's Transformer, i.e. ``nn.MultiheadAttention`` with ``need_weights=True`` in every layer (here an
  adapter that feeds it sequence-first views), and DETR's ``FrozenBatchNorm2d`` (``x * scale + bias``, two passes).
* TFPose (R-50): no official code exists (FACTS §3.2); the baseline is the Deformable-DETR structure it builds on:
  its ``MSDeformAttn`` with the pure-PyTorch sampling it runs without its CUDA kernel (``value_proj`` over all
  value tokens, then one ``grid_sample`` per level, stacked, weighted and summed: :class:`OfficialMSDeformAttn`)
  and ``nn.MultiheadAttention`` (``need_weights=True``) for the decoder's query self-attention.

The convolutional backbones and heads compute the same operations in both (torchvision ResNet / HRNet layouts),
so they are shared copies. Execution settings follow the two code bases:

* official forward: eval mode under ``torch.no_grad()`` as the official test loops run it, contiguous tensors;
* official training step: as the official ``train.py`` runs it (DataParallel aside): ``model.train()``, forward,
  the official loss (HRNet/TransPose ``JointsMSELoss`` looping over joints; PRTR/TFPose the set / regression loss,
  shared), ``zero_grad``, ``backward``, (PRTR: ``clip_grad_norm_(0.1)``), ``optimizer.step()`` with PyTorch's
  default (non-fused) Adam / AdamW; the heatmap loop also computes its per-step accuracy on numpy copies;
* ours forward: ``poserepro eval``'s path (``no_grad``, an eval-only copy with BatchNorm folded into the
  convolutions unless ``--no-fold-bn``, channels-last convolutions: ``eval.channels_last``);
* ours training step: :func:`poserepro.engine.loop.train_step` with the recipe and ``train.channels_last`` unless
  ``--contiguous`` names the model (BTranspose's channels-last BatchNorm is slower than its NCHW one on this CPU;
  its recipes train NCHW), fused optimiser step, attention without SDPA's CPU math path, fast dropout masks.

Outputs of the two must agree (eval mode) to 1e-4 of the output scale. Variants are interleaved and their order
rotated every repeat, so the load of a shared machine hits both alike; wall-clock and process CPU time are both
recorded, and beside the ratio of the medians (``speedup``) the ratio of the fastest repeats (``speedup_of_min``,
the least disturbed one).

Usage: ``python scripts/speed_official_vs_ours.py [--models tp_r_a4 ...] [--batches 1 8] [--repeats 3]
[--threads 2] [--modes forward train]``. Appends to ``results/speed_official_vs_ours_cpu_torch<version>.csv``
(rows of the same model, mode and batch are replaced) and prints the ratios.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poserepro.bench.runner import hardware_name  # noqa: E402
from poserepro.bench.train_speed import synthetic_batch, train_recipe  # noqa: E402
from poserepro.engine.build import build_model, to_channels_last  # noqa: E402
from poserepro.engine.evaluate import inference_copy  # noqa: E402
from poserepro.engine.loop import train_step  # noqa: E402
from poserepro.engine.schedules import build_optimizer  # noqa: E402
from poserepro.families import family_of  # noqa: E402
from poserepro.models.backbones.botnet import BTransposeMHSA  # noqa: E402
from poserepro.models.backbones.resnet import FrozenBatchNorm2d  # noqa: E402
from poserepro.models.layers.attention import MultiheadAttention  # noqa: E402
from poserepro.models.layers.deform_attn import MSDeformAttn, ms_deform_attn_sample_per_level  # noqa: E402
from poserepro.models.transpose import TransPose  # noqa: E402
from poserepro.recipes import load_recipe  # noqa: E402

#: short name → (recipe stem, paper name)
MODELS = {
    "tp_r_a4": ("transpose-r-a4", "TP-R-A4"),
    "tp_h_a6": ("transpose-h-a6", "TP-H-A6"),
    "bt_c3a1": ("btranspose-c3a1-4h", "BTranspose C3A1(4)"),
    "tfpose_r50": ("tfpose-r50-e6-256x192", "TFPose R-50 (E6 D6)"),
    "prtr_r50": ("prtr-r50-384x288", "PRTR R-50"),
}


# ------------------------------------------------------------------ official structures (rebuilt, same weights)


class OfficialEncoderLayer(nn.Module):
    """TransPose / DETR ``TransformerEncoderLayer.forward_post`` on ``(L, B, d)`` tokens."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        q = k = src if pos is None else src + pos
        src2 = self.self_attn(q, k, value=src)[0]  # need_weights=True: averaged attention computed and dropped
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class OfficialBoTMHSA(nn.Module):
    """The released BTranspose MHSA (FACTS §1.2) with the weights of our :class:`BTransposeMHSA`."""

    def __init__(self, ours: BTransposeMHSA) -> None:
        super().__init__()
        self.heads = ours.heads
        self.query, self.key, self.value = (copy.deepcopy(m) for m in (ours.query, ours.key, ours.value))
        self.rel_h = nn.Parameter(ours.pos_w.detach().clone()[0])  # (heads, dh, 1, W): names swapped as released
        self.rel_w = nn.Parameter(ours.pos_h.detach().clone()[0])  # (heads, dh, H, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        nh = self.heads
        q = self.query(x).view(b, nh, c // nh, -1)
        k = self.key(x).view(b, nh, c // nh, -1)
        v = self.value(x).view(b, nh, c // nh, -1)
        content_content = torch.matmul(q.permute(0, 1, 3, 2), k)
        content_position = (self.rel_h + self.rel_w).view(1, nh, c // nh, -1).permute(0, 1, 3, 2)
        content_position = torch.matmul(content_position, q)
        attention = (content_content + content_position).softmax(dim=-1)
        out = torch.matmul(v, attention.permute(0, 1, 3, 2))
        return out.view(b, c, h, w)


class OfficialMHA(nn.Module):
    """``nn.MultiheadAttention`` (sequence-first, ``need_weights=True``) behind our batch-first call signature."""

    def __init__(self, ours: MultiheadAttention) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(ours.d_model, ours.num_heads, dropout=ours.dropout)
        self.attn.load_state_dict(ours.state_dict(), strict=True)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = False,
                average_attn_weights: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, w = self.attn(query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1),
                           key_padding_mask=key_padding_mask)
        return out.transpose(0, 1), w


class OfficialFrozenBN(nn.Module):
    """DETR's ``FrozenBatchNorm2d.forward``: ``x * scale + bias`` (two passes over ``x``)."""

    def __init__(self, ours: FrozenBatchNorm2d) -> None:
        super().__init__()
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.register_buffer(name, getattr(ours, name).clone())
        self.eps = ours.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1)


class OfficialMSDeformAttn(nn.Module):
    """Deformable DETR's ``MSDeformAttn.forward`` without its CUDA kernel, with the weights of our
    :class:`MSDeformAttn`: ``value_proj`` over every value token, then ``ms_deform_attn_core_pytorch`` (one
    ``grid_sample`` per level, stacked, weighted, summed: :func:`ms_deform_attn_sample_per_level`)."""

    def __init__(self, ours: MSDeformAttn) -> None:
        super().__init__()
        self.n_heads, self.n_levels, self.n_points = ours.n_heads, ours.n_levels, ours.n_points
        self.d_model = ours.d_model
        for name in ("sampling_offsets", "attention_weights", "value_proj", "output_proj"):
            setattr(self, name, copy.deepcopy(getattr(ours, name)))

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, value: torch.Tensor,
                spatial_shapes: Any, padding_mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, None]:
        b, lq, _ = query.shape
        s = value.shape[1]
        h, lv, p = self.n_heads, self.n_levels, self.n_points
        v = self.value_proj(value)
        if padding_mask is not None:
            v = v.masked_fill(padding_mask[..., None], 0.0)
        v = v.view(b, s, h, self.d_model // h)
        offsets = self.sampling_offsets(query).view(b, lq, h, lv, p, 2)
        weights = self.attention_weights(query).view(b, lq, h, lv * p).softmax(-1).view(b, lq, h, lv, p)
        if reference_points.shape[-1] == 2:
            norm = torch.tensor([[w_, h_] for h_, w_ in spatial_shapes], dtype=query.dtype, device=query.device)
            loc = reference_points[:, :, None, :, None, :] + offsets / norm[None, None, None, :, None, :]
        else:
            loc = (reference_points[:, :, None, :, None, :2]
                   + offsets / p * reference_points[:, :, None, :, None, 2:] * 0.5)
        out = ms_deform_attn_sample_per_level(v, spatial_shapes, loc, weights)
        return self.output_proj(out), None


def _swap(model: nn.Module, kind: type, make: Callable[[Any], nn.Module]) -> int:
    """Replace every submodule of type ``kind`` by ``make(it)``; returns how many."""
    n = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, kind):
                setattr(parent, name, make(child))
                n += 1
    return n


class OfficialStyleTransPose(nn.Module):
    """Backbone → reduce → sequence-first encoder → head, with ``ours``' weights (TransPose and BTranspose)."""

    def __init__(self, ours: TransPose) -> None:
        super().__init__()
        self.backbone = copy.deepcopy(ours.backbone)
        _swap(self.backbone, BTransposeMHSA, OfficialBoTMHSA)
        self.reduce = copy.deepcopy(ours.reduce)
        self.head = copy.deepcopy(ours.head)
        first = ours.encoder.layers[0]
        d = first.self_attn.d_model
        self.layers = nn.ModuleList(
            OfficialEncoderLayer(d, first.self_attn.num_heads, first.linear1.out_features, first.self_attn.dropout)
            for _ in ours.encoder.layers)
        for mine, theirs in zip(ours.encoder.layers, self.layers):
            theirs.load_state_dict(mine.state_dict(), strict=True)  # same parameter names (packed in_proj)
        self.pos_every_layer = ours.encoder.pos_every_layer
        pe = ours.pos_embed.weight
        self.pos_embedding = nn.Parameter(pe.detach().clone()[:, None, :], requires_grad=pe.requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(self.backbone(x)[-1])
        bs, c, h, w = x.shape
        x = x.flatten(2).permute(2, 0, 1)
        for i, layer in enumerate(self.layers):
            x = layer(x, self.pos_embedding if (self.pos_every_layer or i == 0) else None)
        x = x.permute(1, 2, 0).contiguous().view(bs, c, h, w)
        return self.head(x)


def official_model(ours: nn.Module) -> nn.Module:
    """The official-structure network with ``ours``' weights (see the module docstring)."""
    if isinstance(ours, TransPose):
        return OfficialStyleTransPose(ours)
    off = copy.deepcopy(ours)
    _swap(off, MultiheadAttention, OfficialMHA)
    _swap(off, MSDeformAttn, OfficialMSDeformAttn)
    _swap(off, FrozenBatchNorm2d, OfficialFrozenBN)
    return off


# ------------------------------------------------------------------ the official training step


def official_joints_mse(output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """HRNet / TransPose ``JointsMSELoss(use_target_weight=True)``: a loop over joints of ``0.5·MSE`` of the
    weighted flattened heatmaps, divided by the number of joints; ``target_weight (B, K, 1)``."""
    b, k = output.shape[:2]
    preds = output.reshape(b, k, -1).split(1, 1)
    gts = target.reshape(b, k, -1).split(1, 1)
    loss = output.new_zeros(())
    for idx in range(k):
        p, g = preds[idx].squeeze(), gts[idx].squeeze()
        loss = loss + 0.5 * F.mse_loss(p.mul(target_weight[:, idx]), g.mul(target_weight[:, idx]))
    return loss / k


def _max_preds(hm: np.ndarray) -> np.ndarray:
    b, k, _, w = hm.shape
    idx = hm.reshape(b, k, -1).argmax(2)
    return np.stack([idx % w, idx // w], -1).astype(np.float32)


def official_accuracy(output: np.ndarray, target: np.ndarray) -> float:
    """The per-step PCK@0.5 of heatmap argmaxes the HRNet / TransPose train loop logs (normalised by h/10, w/10)."""
    h, w = output.shape[2:]
    norm = np.array([h, w], dtype=np.float32) / 10
    d = np.linalg.norm((_max_preds(output) - _max_preds(target)) / norm, axis=-1)
    return float((d < 0.5).mean())


def official_step(model: nn.Module, batch: dict[str, torch.Tensor], heatmap: bool, recipe: Any,
                  ours: nn.Module) -> Callable[[], float]:
    """A closure running one official training step (see the module docstring)."""
    if recipe.optim.name == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=recipe.optim.lr)
    else:  # DETR / PRTR style: backbone group, AdamW with weight decay
        bb = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
        rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
        opt = torch.optim.AdamW([{"params": rest}, {"params": bb, "lr": recipe.optim.backbone_lr or recipe.optim.lr}],
                                lr=recipe.optim.lr, weight_decay=recipe.optim.weight_decay)
    clip = recipe.optim.clip_grad_norm
    tw = batch["target_weight"][..., None]

    def step() -> float:
        model.train()
        out = model(batch["image"])
        if heatmap:
            target = batch["heatmaps"]
            loss = official_joints_mse(out, target, tw)
        else:
            loss, _ = ours.loss(out, batch)  # the same set / regression loss (module-free, reads only outputs)
        opt.zero_grad()
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if heatmap:
            official_accuracy(out.detach().cpu().numpy(), target.detach().cpu().numpy())
        return float(loss.detach())

    return step


# ------------------------------------------------------------------ timing


def _time(fn: Callable[[], Any]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run_model(key: str, batches: list[int], modes: list[str], repeats: int, warmup: int,
              channels_last: bool = True, fold_bn: bool = True, compile: bool = False) -> list[dict]:
    rows: list[dict] = []
    for batch in batches:
        rows += run_one(key, batch, modes, repeats, warmup, channels_last, fold_bn, compile)
    return rows


def run_one(key: str, batch: int, modes: list[str], repeats: int, warmup: int,
            channels_last: bool = True, fold_bn: bool = True, compile: bool = False) -> list[dict]:
    """Both networks of ``key`` at ``batch``: the ratios of the interleaved medians, one row per mode."""
    stem, paper = MODELS[key]
    cpu_dev = torch.device("cpu")
    torch.manual_seed(0)
    w0, h0 = load_recipe(stem).data.input_size  # the recipe's own input size
    rec = train_recipe("", stem, (int(h0), int(w0)), channels_last=channels_last, compile=compile)
    hw = (int(h0), int(w0))
    base = build_model(rec)
    family = family_of(base)
    heatmap = family.heatmap_output
    official = official_model(base)
    ours = copy.deepcopy(base)
    if channels_last:
        to_channels_last(ours)
    # the forward as `poserepro eval` runs it: an eval-only copy, BatchNorm folded (unless --no-fold-bn) and
    # channels-last (eval.channels_last) whatever the layout of the training step
    if not fold_bn:
        rec = dataclasses.replace(rec, eval=dataclasses.replace(rec.eval, fold_batchnorm=False))
    ours_eval = inference_copy(ours, rec, cpu_dev)
    data = synthetic_batch(base, batch, hw, cpu_dev, heatmap)
    x = data["image"]  # contiguous, as the data loader gives it to `poserepro eval`
    with torch.no_grad():
        ref = official.eval()(x)
        mine = ours_eval.eval()(x)
    if not heatmap:
        name = "coords" if "coords" in ref else "pred_coords"
        ref, mine = ref[name], mine[name]
    diff = (ref - mine).abs().max().item()
    scale = max(1e-3, ref.abs().max().item())
    assert diff <= 1e-4 * scale, f"{key}: official-structure and our outputs differ by {diff:g} (scale {scale:g})"

    def fwd_official() -> None:
        with torch.no_grad():
            official.eval()(x)

    def fwd_ours() -> None:
        with torch.no_grad():
            ours_eval.eval()(x)

    variants: dict[str, Callable[[], Any]] = {}
    if "forward" in modes:
        variants["forward/official"] = fwd_official
        variants["forward/ours"] = fwd_ours
    if "train" in modes:
        variants["train/official"] = official_step(official, data, heatmap, rec, base)
        opt = build_optimizer(ours, rec.optim, batch)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        crit = family.criterion(rec, ours, cpu_dev)
        params = list(ours.parameters())
        # train.compile: the training forward compiled as engine.loop.train compiles it (the warm-up compiles)
        step_model = torch.compile(ours) if compile else ours

        def train_ours() -> float:
            ours.train()
            return train_step(step_model, family, crit, dict(data), opt, scaler, rec, cpu_dev, params)[0]

        variants["train/ours"] = train_ours
    labels = list(variants)
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in labels}
    cpu: dict[str, list[float]] = {k: [] for k in labels}
    load0 = _load()
    for rep in range(repeats):
        for label in labels[rep % len(labels):] + labels[: rep % len(labels)]:
            w, c = _time(variants[label])
            wall[label].append(w)
            cpu[label].append(c)
    load1 = _load()
    rows = []
    for mode in [m for m in ("forward", "train") if m in modes]:
        o, u = f"{mode}/official", f"{mode}/ours"
        ow, uw = statistics.median(wall[o]), statistics.median(wall[u])
        oc, uc = statistics.median(cpu[o]), statistics.median(cpu[u])
        row = {
            "model": key, "paper_name": paper, "recipe": stem, "mode": mode, "batch": batch,
            "input_size": f"{hw[0]}x{hw[1]}", "official_ms": f"{ow * 1e3:.1f}", "ours_ms": f"{uw * 1e3:.1f}",
            "speedup": f"{ow / uw:.3f}", "speedup_of_min": f"{min(wall[o]) / min(wall[u]):.3f}",
            "official_cpu_ms": f"{oc * 1e3:.1f}", "ours_cpu_ms": f"{uc * 1e3:.1f}",
            "cpu_speedup": f"{oc / uc:.3f}", "ours_images_per_s": f"{batch / uw:.3f}",
            "official_images_per_s": f"{batch / ow:.3f}", "max_abs_diff": f"{diff:.2e}",
            "ours_layout": "channels_last" if (rec.eval.channels_last if mode == "forward" else channels_last)
            else "contiguous",
            "ours_fold_bn": str(fold_bn and mode == "forward"), "ours_compile": str(compile and mode == "train"),
            "repeats": repeats,
            "threads": torch.get_num_threads(), "load_avg_1m": f"{(load0 + load1) / 2:.2f}",
            "hardware": hardware_name("cpu"), "torch": torch.__version__,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        rows.append(row)
        print(f"{paper:22s} {mode:7s} b{batch:<2d} official {ow * 1e3:9.1f} ms  ours {uw * 1e3:9.1f} ms  "
              f"x{ow / uw:.2f} (cpu x{oc / uc:.2f}, fastest repeats x{row['speedup_of_min']})  "
              f"load {row['load_avg_1m']}", flush=True)
    return rows


KEY = ("model", "mode", "batch")


def write(path: Path, rows: list[dict], key_fields: tuple[str, ...] = KEY) -> None:
    """Merge ``rows`` into ``path`` (rows with the same ``key_fields``, by default model / mode / batch, replaced),
    under a lock (parallel runs)."""
    from poserepro.io import atomic_write_text, locked

    with locked(path):
        old = []
        if path.is_file():
            with open(path, newline="") as fh:
                old = [r for r in csv.DictReader(fh) if "mode" in r]
        for r in old:  # rows written before a column: they timed ours channels-last, unfolded, eager
            for col, before in (("ours_layout", "channels_last"), ("ours_fold_bn", "False"), ("ours_compile", "False")):
                if col in rows[0] and not r.get(col):
                    r[col] = before
        keys = {tuple(str(r[k]) for k in key_fields) for r in rows}
        merged = [r for r in old if tuple(r.get(k, "") for k in key_fields) not in keys] + rows
        merged.sort(key=lambda r: (list(MODELS).index(r["model"]) if r["model"] in MODELS else 99, r["mode"],
                                   int(r["batch"])))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(merged)
        atomic_write_text(path, buf.getvalue())


def at_least(lo: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= lo`` (a bad value is argparse's one-line usage error, not a traceback)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"{v} is below {lo}")
        return v

    return parse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batches", nargs="+", type=at_least(1), default=[1, 8])
    p.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    p.add_argument("--repeats", type=at_least(1), default=3)
    p.add_argument("--warmup", type=at_least(0), default=1)
    p.add_argument("--threads", type=at_least(1), default=2)
    p.add_argument("--contiguous", nargs="*", default=[], choices=list(MODELS),
                   help="models whose training step of ours runs NCHW (contiguous) instead of channels-last (the "
                   "forward runs as poserepro eval runs it: channels-last, eval.channels_last)")
    p.add_argument("--no-fold-bn", action="store_true",
                   help="time our forward without folding BatchNorm into the convolutions (eval.fold_batchnorm=false)")
    p.add_argument("--compile", action="store_true",
                   help="our training step with train.compile (torch.compile; the warm-up steps compile)")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent / "results")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    path = a.out_dir / f"speed_official_vs_ours_cpu_torch{torch.__version__.split('+')[0]}.csv"
    for key in a.models:
        if a.compile and a.warmup < 1:
            p.error("--compile needs --warmup >= 1 (the first step compiles)")
        rows = run_model(key, a.batches, a.modes, a.repeats, a.warmup, key not in a.contiguous, not a.no_fold_bn,
                         a.compile)
        write(path, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
