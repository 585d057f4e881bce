"""Two-stage PRTR's keypoint decoder, read through a forward hook on ``model.transformer`` (its output ``hs``
holds every decoder layer; the hook only records it, so the forward is unchanged and ``aux_loss`` does not
matter):

* refinement (PRTR Fig. 4): the keypoints read out (Hungarian, as at inference) after each decoder layer, and the
  query heat map of one joint: a Gaussian at every query's location with its class probability as peak.
* query classes (Fig. 7): per query, the distribution of its predicted (argmax) class over a split's crops,
  background included; each row sums to 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..codecs.set_prediction import decode_set
from ..errors import PoseReproError
from .common import joint_name, pyplot, save_figure


def require_prtr(model: nn.Module) -> None:
    if not all(hasattr(model, a) for a in ("transformer", "class_embed", "kpt_embed", "query_embed")) or \
            hasattr(model, "detect"):
        raise PoseReproError(f"{type(model).__name__} is not a two-stage PRTR model (refinement and query "
                             "classes read its keypoint decoder)")


@torch.no_grad()
def _layer_outputs(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per decoder layer ``(logits (L, B, Q, K+1), coords (L, B, Q, 2) normalised)`` via a hook on the
    transformer."""
    seen: list[torch.Tensor] = []
    handle = model.transformer.register_forward_hook(lambda _m, _i, out: seen.append(out[0].detach()))
    try:
        model(images)
    finally:
        handle.remove()
    hs = seen[-1]
    return model.class_embed(hs).float(), model.kpt_embed(hs).float().sigmoid()


@dataclass
class Refinement:
    """One crop through the decoder: per layer ``keypoints (L, K, 2)`` crop pixels and ``scores (L, K)`` of the
    Hungarian read-out, and every query's ``query_coords (L, Q, 2)`` crop pixels and ``query_probs (L, Q, K+1)``
    class probabilities (softmax, background last)."""

    keypoints: np.ndarray
    scores: np.ndarray
    query_coords: np.ndarray
    query_probs: np.ndarray

    def query_heatmap(self, layer: int, joint: int, size: tuple[int, int], sigma: float = 2.0) -> np.ndarray:
        """``(H, W)`` map: Σ_q p_q(joint) · exp(−|u − c_q|² / 2σ²) over the crop (Fig. 4, second row)."""
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        c = self.query_coords[layer]
        p = self.query_probs[layer, :, joint]
        d2 = (xx[None] - c[:, 0, None, None]) ** 2 + (yy[None] - c[:, 1, None, None]) ** 2
        return (p[:, None, None] * np.exp(-d2 / (2 * sigma**2))).sum(0)


@torch.no_grad()
def refinement(model: nn.Module, image: torch.Tensor) -> Refinement:
    """The keypoints of one crop ``image (3, H, W)`` after each decoder layer (and every query's guess)."""
    require_prtr(model)
    model.eval()
    logits, coords = _layer_outputs(model, image[None])
    kps, scs = [], []
    for lg, co in zip(logits, coords):
        kp, sc = decode_set({"pred_logits": lg, "pred_coords": co}, model.input_size, model.flip_pairs, None,
                            model.include_bg_logit, model.class_fixed_queries)
        kps.append(kp[0])
        scs.append(sc[0])
    size = torch.tensor(model.input_size, dtype=torch.float32)
    return Refinement(torch.stack(kps).numpy(), torch.stack(scs).float().numpy(),
                      (coords[:, 0] * size).numpy(), logits[:, 0].softmax(-1).numpy())


def render_refinement(
    crop_rgb: np.ndarray, ref: Refinement, joint_names: Sequence[str], out: str | Path, joint: int,
    skeleton: Sequence[tuple[int, int]] = (), gt: np.ndarray | None = None, caption: str = "",
    dpi: int = 100,
) -> Path:
    """Fig. 4 layout: top row the read-out pose after each decoder layer (+ GT), bottom row the query heat map
    of ``joint`` after each layer. PNG."""
    plt = pyplot()
    n = ref.keypoints.shape[0]
    h, w = crop_rgb.shape[:2]
    fig, axes = plt.subplots(2, n, figsize=(max(1.6 * n + 0.2, 4.6), 4.6), squeeze=False)
    for li in range(n):
        ax = axes[0][li]
        kp = ref.keypoints[li]
        ax.imshow(crop_rgb)
        for a, b in skeleton:
            ax.plot([kp[a, 0], kp[b, 0]], [kp[a, 1], kp[b, 1]], "-", color="yellow", lw=0.8)
        ax.scatter(kp[:, 0], kp[:, 1], s=6, c="red")
        if gt is not None:
            ax.scatter(gt[:, 0], gt[:, 1], s=6, c="lime", marker="+", linewidths=0.6)
        ax.set_title(f"decoder layer {li + 1}", fontsize=6)
        ax2 = axes[1][li]
        ax2.imshow(crop_rgb)
        ax2.imshow(ref.query_heatmap(li, joint, (w, h)), cmap="jet", alpha=0.55)
        ax2.set_title(f"{joint_name(joint_names, joint)}, all queries", fontsize=6)
        for a in (ax, ax2):
            a.set_xticks([])
            a.set_yticks([])
            a.set_xlim(0, w)
            a.set_ylim(h, 0)
    fig.suptitle("read-out per decoder layer (red; GT green) / query heat map", fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return save_figure(fig, out, caption, dpi)


def refinement_numbers(ref: Refinement, joint_names: Sequence[str], joint: int) -> dict:
    """The numbers behind the refinement figure."""
    return {"figure": "refinement", "joint": joint_name(joint_names, joint),
            "joints": [joint_name(joint_names, j) for j in range(ref.keypoints.shape[1])],
            "keypoints": ref.keypoints, "scores": ref.scores, "query_coords": ref.query_coords,
            "query_probs": ref.query_probs}


@dataclass
class QueryClasses:
    """``distribution (Q, K+1)``: the fraction of ``count`` crops in which query q's argmax class is c
    (background last); ``mean_probs (Q, K+1)``: its mean softmax; ``predicted (N, Q)``: every crop's argmax
    classes and ``locations (N, Q, 2)`` the queries' coordinates in crop pixels (Fig. 5)."""

    distribution: np.ndarray
    mean_probs: np.ndarray
    count: int
    predicted: np.ndarray | None = None
    locations: np.ndarray | None = None

    def most_specialised(self, n: int) -> list[int]:
        """The ``n`` queries that most often predict a keypoint (not background), most first; ties by index."""
        share = 1.0 - self.distribution[:, -1]
        return sorted(range(len(share)), key=lambda q: (-share[q], q))[:n]


@torch.no_grad()
def query_classes(model: nn.Module, batches: Iterable[dict], layer: int = -1) -> QueryClasses:
    """Per-query class distribution of decoder ``layer`` (default the last) over the crops of ``batches``."""
    require_prtr(model)
    model.eval()
    counts: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    n = 0
    preds, locs = [], []
    size = torch.tensor(model.input_size, dtype=torch.float32)
    for batch in batches:
        logits, coords = _layer_outputs(model, batch["image"])
        lg = logits[layer]  # (B, Q, K+1)
        arg = lg.argmax(-1)
        onehot = torch.nn.functional.one_hot(arg, lg.shape[-1]).float().sum(0)
        p = lg.softmax(-1).sum(0)
        counts = onehot if counts is None else counts + onehot
        probs = p if probs is None else probs + p
        n += lg.shape[0]
        preds.append(arg)
        locs.append(coords[layer] * size)
    if counts is None or probs is None:
        raise PoseReproError("no crops to count query classes over")
    return QueryClasses((counts / n).numpy(), (probs / n).numpy(), n, torch.cat(preds).numpy(),
                        torch.cat(locs).numpy())


def render_query_classes(qc: QueryClasses, joint_names: Sequence[str], out: str | Path,
                         queries: Sequence[int], caption: str = "", dpi: int = 100) -> Path:
    """Fig. 7 layout: one row per selected query, one column per class (background last), the probability ×100
    written in each cell. PNG."""
    plt = pyplot()
    k1 = qc.distribution.shape[1]
    labels = [joint_name(joint_names, j) for j in range(k1 - 1)] + ["background"]
    data = qc.distribution[list(queries)]
    fig, ax = plt.subplots(figsize=(0.32 * k1 + 1.6, 0.3 * len(queries) + 1.8))
    ax.imshow(data, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for r in range(data.shape[0]):
        for c in range(k1):
            v = 100 * data[r, c]
            if v >= 0.5:
                ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=4.5,
                        color="white" if data[r, c] > 0.5 else "black")
    ax.set_xticks(range(k1), labels, rotation=90, fontsize=5)
    ax.set_yticks(range(len(queries)), [f"query {q}" for q in queries], fontsize=5)
    ax.set_title(f"predicted class per query over {qc.count} crops (x100)", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save_figure(fig, out, caption, dpi)


def render_query_locations(qc: QueryClasses, joint_names: Sequence[str], out: str | Path, size: tuple[int, int],
                           caption: str = "", dpi: int = 100) -> Path:
    """Fig. 5 layout: one panel per class (background last) with every location a query predicted for it over
    the split, one colour per query, in the crop frame ``size = (w, h)``. PNG."""
    if qc.predicted is None or qc.locations is None:
        raise PoseReproError("these query classes were counted without locations")
    plt = pyplot()
    k1 = qc.distribution.shape[1]
    nq = qc.distribution.shape[0]
    labels = [joint_name(joint_names, j) for j in range(k1 - 1)] + ["background"]
    cols = 6
    rows = (k1 + cols - 1) // cols
    w, h = size
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.6 * rows + 0.5), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax in axes.flat:
        ax.set_axis_off()
    for c in range(k1):
        ax = axes[c // cols][c % cols]
        ax.set_axis_on()
        sel = qc.predicted == c
        q_idx = np.nonzero(sel)[1]
        pts = qc.locations[sel]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c=[cmap(q % 20) for q in q_idx], linewidths=0)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{labels[c]} ({len(set(q_idx.tolist()))}/{nq} q)", fontsize=5)
    fig.suptitle(f"where each query predicts each class, {qc.count} crops (colour = query)", fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return save_figure(fig, out, caption, dpi)


def query_class_numbers(qc: QueryClasses, joint_names: Sequence[str], queries: Sequence[int]) -> dict:
    """The numbers behind the query-class figure (every query, with the shown ones listed)."""
    k1 = qc.distribution.shape[1]
    return {"figure": "queries", "count": qc.count, "shown": list(queries),
            "classes": [joint_name(joint_names, j) for j in range(k1 - 1)] + ["background"],
            "distribution": qc.distribution, "mean_probs": qc.mean_probs, "predicted": qc.predicted,
            "locations": qc.locations}
