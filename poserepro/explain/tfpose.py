"""TFPose's decoder, seen through ``TFPose.forward(x, need_weights=True)`` (which adds ``"attention"``, one dict
per decoder layer, and leaves the default path untouched):

* q2q attention (TFPose Fig. 6): the head-averaged keypoint-query-to-query self-attention ``(K, K)`` of each
  decoder layer, averaged over the crops of a split; row = query joint, column = key joint, rows sum to 1.
* deformable sampling points (Fig. 7, App. Fig. 11-12): the ``heads × points`` locations of the p2q deformable
  cross-attention of one decoder layer and one feature level for chosen joint queries, in crop pixels, with
  their attention weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PoseReproError
from .common import joint_name, pyplot, save_figure


def require_tfpose(model: nn.Module) -> None:
    dec = getattr(getattr(model, "transformer", None), "decoder", None)
    if dec is None or not hasattr(model, "init_coords"):
        raise PoseReproError(f"{type(model).__name__} is not a TFPose model (no deformable keypoint decoder)")


@dataclass
class QueryAttention:
    """``attention``: ``(layers, K, K)`` q2q attention averaged over ``count`` crops (and over heads)."""

    attention: np.ndarray
    count: int


@torch.no_grad()
def q2q_attention(model: nn.Module, batches: Iterable[dict]) -> QueryAttention:
    """Mean q2q attention of every decoder layer over the crops of ``batches`` (dicts with ``"image"``)."""
    require_tfpose(model)
    if any(layer.self_attn is None for layer in model.transformer.decoder):
        raise PoseReproError("this TFPose model has no q2q attention (q2q: false)")
    model.eval()
    total: torch.Tensor | None = None
    count = 0
    for batch in batches:
        out = model(batch["image"], need_weights=True)
        maps = torch.stack([ex["q2q"].float() for ex in out["attention"]], dim=1)  # (B, layers, K, K)
        s = maps.sum(0)
        total = s if total is None else total + s
        count += maps.shape[0]
    if total is None:
        raise PoseReproError("no crops to average q2q attention over")
    return QueryAttention((total / count).numpy(), count)


def render_q2q(qa: QueryAttention, joint_names: Sequence[str], out: str | Path, layers: Sequence[int] | None = None,
               caption: str = "", dpi: int = 100) -> Path:
    """One ``K × K`` heat map per selected decoder layer (row: query joint, column: key joint). PNG."""
    plt = pyplot()
    layers = tuple(layers) if layers else tuple(range(qa.attention.shape[0]))
    k = qa.attention.shape[1]
    labels = [joint_name(joint_names, j) for j in range(k)]
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 4.4), squeeze=False)
    for ax, li in zip(axes[0], layers):
        im = ax.imshow(qa.attention[li], cmap="viridis")
        ax.set_xticks(range(k), labels, rotation=90, fontsize=5)
        ax.set_yticks(range(k), labels, fontsize=5)
        ax.set_xlabel("key", fontsize=6)
        ax.set_ylabel("query", fontsize=6)
        ax.set_title(f"decoder layer {li + 1}", fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=5)
    fig.suptitle(f"q2q attention, mean over {qa.count} crops", fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return save_figure(fig, out, caption, dpi)


@dataclass
class SamplingPoints:
    """Deformable p2q sampling of one crop at decoder layer ``layer`` and feature level ``level``.

    ``points``: ``(K, heads·points, 2)`` crop pixels (x, y); ``weights``: ``(K, heads·points)`` attention weights
    (the level's share of each head's softmax over levels × points); ``reference``: ``(K, 2)`` crop pixels of the
    reference point (the previous estimate); ``prediction``: ``(K, 2)`` the layer's estimate; ``inside``:
    ``(K, heads·points)`` whether a point lies in the crop.
    """

    points: np.ndarray
    weights: np.ndarray
    reference: np.ndarray
    prediction: np.ndarray
    inside: np.ndarray
    layer: int
    level: int
    stride: int


@torch.no_grad()
def sampling_points(model: nn.Module, image: torch.Tensor, layer: int = -1, level: int = 0) -> SamplingPoints:
    """Sampling locations of every joint query of one crop ``image (3, H, W)`` at decoder ``layer`` (negative
    counts from the last) and feature ``level`` (0 = the finest, C3 for C3–C5)."""
    require_tfpose(model)
    model.eval()
    n_dec = len(model.transformer.decoder)
    li = layer % n_dec if -n_dec <= layer < n_dec else None
    if li is None:
        raise PoseReproError(f"--layer {layer} is out of range: the decoder has {n_dec} layers")
    n_lv = model.transformer.n_levels
    if not 0 <= level < n_lv:
        raise PoseReproError(f"--level {level} is out of range: the model has {n_lv} feature levels")
    x = image[None]
    out = model(x, need_weights=True)
    ex = out["attention"][li]
    loc = ex["locations"][0, :, :, level].float()  # (K, H, P, 2) normalised
    w = ex["weights"][0, :, :, level].float()       # (K, H, P)
    k = loc.shape[0]
    size = torch.tensor([x.shape[-1], x.shape[-2]], dtype=torch.float32)
    pts = (loc * size).reshape(k, -1, 2)
    coords = list(out["aux_coords"]) + [out["coords"]]
    prev = model.init_coords.sigmoid() if li == 0 else coords[li - 1][0]
    inside = (pts[..., 0] >= 0) & (pts[..., 0] < size[0]) & (pts[..., 1] >= 0) & (pts[..., 1] < size[1])
    return SamplingPoints(pts.numpy(), w.reshape(k, -1).numpy(), (prev.float() * size).numpy(),
                          (coords[li][0].float() * size).numpy(), inside.numpy(), li, level,
                          int(model.strides[level]))


def render_sampling_points(
    crop_rgb: np.ndarray, sp: SamplingPoints, joint_names: Sequence[str], out: str | Path,
    joints: Sequence[int], gt: np.ndarray | None = None, caption: str = "",
    dpi: int = 100,
) -> Path:
    """One panel per selected joint query: the crop, its sampling points coloured by attention weight (jet: red
    high, blue low), the GT joint (yellow circle) and the layer's estimate (cyan cross). Points outside the crop
    are not drawn. PNG."""
    plt = pyplot()
    n = len(joints)
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 2.25 * rows + 0.4), squeeze=False)
    vmax = float(sp.weights[list(joints)].max()) if n else 1.0
    for ax in axes.flat:
        ax.set_axis_off()
    for i, j in enumerate(joints):
        ax = axes[i // cols][i % cols]
        ax.imshow(crop_rgb)
        keep = sp.inside[j]
        ax.scatter(sp.points[j, keep, 0], sp.points[j, keep, 1], c=sp.weights[j, keep], cmap="jet",
                   vmin=0.0, vmax=vmax, s=12, edgecolors="black", linewidths=0.3)
        if gt is not None:
            ax.scatter([gt[j, 0]], [gt[j, 1]], s=60, facecolors="none", edgecolors="yellow", linewidths=1.0)
        ax.scatter([sp.prediction[j, 0]], [sp.prediction[j, 1]], s=25, marker="x", c="cyan", linewidths=0.8)
        ax.set_title(f"{joint_name(joint_names, j)} ({int(keep.sum())}/{keep.size})", fontsize=6)
        ax.set_xlim(0, crop_rgb.shape[1])
        ax.set_ylim(crop_rgb.shape[0], 0)
    fig.suptitle(f"deformable sampling points, decoder layer {sp.layer + 1}, level stride {sp.stride}", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    return save_figure(fig, out, caption, dpi)


def sampling_numbers(sp: SamplingPoints, joints: Sequence[int], joint_names: Sequence[str],
                     gt: np.ndarray | None = None) -> dict:
    """The numbers behind the sampling figure, per selected joint query."""
    return {
        "figure": "sampling", "layer": sp.layer + 1, "level": sp.level, "stride": sp.stride,
        "queries": [{
            "joint": joint_name(joint_names, j), "points": sp.points[j], "weights": sp.weights[j],
            "inside": sp.inside[j], "reference": sp.reference[j], "prediction": sp.prediction[j],
            "gt": None if gt is None else gt[j],
        } for j in joints],
    }


def q2q_numbers(qa: QueryAttention, joint_names: Sequence[str]) -> dict:
    """The numbers behind the q2q figure: the mean ``(layers, K, K)`` attention and the crop count."""
    k = qa.attention.shape[1]
    return {"figure": "q2q", "count": qa.count, "joints": [joint_name(joint_names, j) for j in range(k)],
            "attention": qa.attention}
