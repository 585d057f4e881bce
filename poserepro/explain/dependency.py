"""Dependency areas (TransPose §3.3, FACTS §6): for a predicted keypoint p at feature location (y, x), the
*dependency area* of encoder layer l is the attention row ``A_l[(y, x), :]`` (what p attends to) and the
*affected area* the column ``A_l[:, (y, x)]`` (what p influences), each reshaped to the feature grid and
upsampled by the backbone stride to the input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..codecs.heatmap import decode
from ..errors import PoseReproError


@dataclass
class DependencyMaps:
    """Per-layer maps for every keypoint of one crop.

    ``dependency`` and ``affected``: ``(layers, K, H, W)`` at input resolution; ``keypoints``: ``(K, 2)`` in
    input pixels; ``scores``: ``(K,)``.
    """

    dependency: np.ndarray
    affected: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray


@torch.no_grad()
def dependency_areas(model: nn.Module, image: torch.Tensor, threshold: float = 0.0) -> DependencyMaps:
    """Attention-based dependency / affected areas of the predicted keypoints of one crop ``image (3, H, W)``.

    The model must offer ``forward_with_attention`` (TransPose, BTranspose). Keypoints are the heatmap argmax
    (×heatmap stride, +half a pixel, as the official visualisation); values ≤ ``threshold`` are set to 0.
    """
    if not hasattr(model, "forward_with_attention"):
        raise PoseReproError(f"{type(model).__name__} has no encoder attention to explain; use a TransPose or "
                             "BTranspose model")
    model.eval()
    x = image[None]
    heatmaps, attns = model.forward_with_attention(x)
    if not attns:
        raise PoseReproError("the model returned no attention maps")
    h_in, w_in = x.shape[-2:]
    hh, hw = heatmaps.shape[-2:]
    coords, scores = decode(heatmaps.float().numpy(), "argmax")
    kp = (coords[0] + 0.5) * np.array([w_in / hw, h_in / hh])
    stride = getattr(model, "backbone_stride", 8)
    gh, gw = h_in // stride, w_in // stride
    fy = np.clip((kp[:, 1] / stride).astype(int), 0, gh - 1)
    fx = np.clip((kp[:, 0] / stride).astype(int), 0, gw - 1)
    idx = torch.as_tensor(fy * gw + fx)
    dep, aff = [], []
    for a in attns:  # (1, L, L)
        a = a[0]
        rows = a[idx].reshape(-1, 1, gh, gw)
        cols = a[:, idx].t().reshape(-1, 1, gh, gw)
        dep.append(F.interpolate(rows, size=(h_in, w_in), mode="bilinear", align_corners=False)[:, 0])
        aff.append(F.interpolate(cols, size=(h_in, w_in), mode="bilinear", align_corners=False)[:, 0])
    d = torch.stack(dep).numpy()
    f = torch.stack(aff).numpy()
    if threshold > 0:
        d = np.where(d > threshold, d, 0.0)
        f = np.where(f > threshold, f, 0.0)
    return DependencyMaps(d, f, kp.astype(np.float32), scores[0])


def render_dependency_figure(
    crop_rgb: np.ndarray, maps: DependencyMaps, joint_names: tuple[str, ...], out: str | Path,
    joints: tuple[int, ...] | None = None, kind: str = "dependency",
) -> Path:
    """Grid figure: one row per encoder layer, one column per selected joint, map over the crop (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = maps.dependency if kind == "dependency" else maps.affected
    joints = joints or tuple(range(data.shape[1]))
    n_l, n_j = data.shape[0], len(joints)
    fig, axes = plt.subplots(n_l, n_j, figsize=(1.6 * n_j, 2.0 * n_l), squeeze=False)
    for li in range(n_l):
        for ci, j in enumerate(joints):
            ax = axes[li][ci]
            ax.imshow(crop_rgb)
            ax.imshow(data[li, j], cmap="jet", alpha=0.5)
            ax.scatter([maps.keypoints[j, 0]], [maps.keypoints[j, 1]], s=12, c="white", edgecolors="black")
            ax.set_xticks([])
            ax.set_yticks([])
            if li == 0:
                ax.set_title(joint_names[j] if j < len(joint_names) else str(j), fontsize=7)
            if ci == 0:
                ax.set_ylabel(f"layer {li + 1}", fontsize=7)
    fig.suptitle(f"{kind} areas", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
