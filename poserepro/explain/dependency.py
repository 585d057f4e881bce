"""Dependency areas (TransPose §3.3, FACTS §6): for a predicted keypoint p at feature location (y, x), the
*dependency area* of an attention layer is the attention row ``A[(y, x), :]`` (what p attends to) and the
*affected area* the column ``A[:, (y, x)]`` (what p influences), each reshaped to the feature grid and
upsampled by the backbone stride to the input size.

For BTranspose the backbone's MHSA blocks give the same maps (BTranspose Fig. 3 a/c, 4a, 5): they run on the
same stride-8 grid as the encoder, so ``include_mhsa`` puts them in front of the encoder layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..codecs.heatmap import decode
from ..errors import PoseReproError
from .common import joint_name, pyplot, save_figure


@dataclass
class DependencyMaps:
    """Per-layer maps for every keypoint of one crop.

    ``dependency`` and ``affected``: ``(layers, K, H, W)`` at input resolution; ``keypoints``: ``(K, 2)`` in
    input pixels; ``scores``: ``(K,)``; ``layers``: one label per map (``"MHSA 1"``, ``"encoder 2"``);
    ``grid_dependency`` / ``grid_affected``: the attention rows / columns themselves on the feature grid
    ``(layers, K, h, w)`` (each dependency row sums to 1); ``stride``: feature-grid stride in input pixels.
    """

    dependency: np.ndarray
    affected: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    layers: tuple[str, ...] = ()
    grid_dependency: np.ndarray | None = field(default=None, repr=False)
    grid_affected: np.ndarray | None = field(default=None, repr=False)
    stride: int = 8

    def select(self, layers: Sequence[int]) -> DependencyMaps:
        """The maps of the given layer positions only."""
        idx = list(layers)
        gd = None if self.grid_dependency is None else self.grid_dependency[idx]
        ga = None if self.grid_affected is None else self.grid_affected[idx]
        return DependencyMaps(self.dependency[idx], self.affected[idx], self.keypoints, self.scores,
                              tuple(self.layers[i] for i in idx), gd, ga, self.stride)


def _attention(model: nn.Module, x: torch.Tensor, include_mhsa: bool) -> tuple[torch.Tensor, list, list[str]]:
    if not hasattr(model, "forward_with_attention"):
        raise PoseReproError(f"{type(model).__name__} has no encoder attention to explain; use a TransPose or "
                             "BTranspose model")
    n_mhsa = 0
    if include_mhsa:
        backbone = getattr(model, "backbone", None)
        if not hasattr(backbone, "mhsa_modules"):
            raise PoseReproError(f"{type(model).__name__} has no MHSA blocks in its backbone; MHSA dependency "
                                 "areas are for BTranspose models")
        n_mhsa = len(backbone.mhsa_modules())
        heatmaps, attns = model.forward_with_attention(x, include_mhsa=True)
    else:
        heatmaps, attns = model.forward_with_attention(x)
    if not attns:
        raise PoseReproError("the model returned no attention maps")
    names = [f"MHSA {i + 1}" for i in range(n_mhsa)] + [f"encoder {i + 1}" for i in range(len(attns) - n_mhsa)]
    return heatmaps, attns, names


@torch.no_grad()
def dependency_areas(
    model: nn.Module, image: torch.Tensor, threshold: float = 0.0, include_mhsa: bool = False
) -> DependencyMaps:
    """Attention-based dependency / affected areas of the predicted keypoints of one crop ``image (3, H, W)``.

    The model must offer ``forward_with_attention`` (TransPose, BTranspose). Keypoints are the heatmap argmax
    (×heatmap stride, +half a pixel, as the official visualisation); values ≤ ``threshold`` are set to 0 in the
    upsampled maps. ``include_mhsa`` (BTranspose) adds the backbone MHSA blocks' maps before the encoder's.
    """
    model.eval()
    x = image[None]
    heatmaps, attns, names = _attention(model, x, include_mhsa)
    h_in, w_in = x.shape[-2:]
    hh, hw = heatmaps.shape[-2:]
    coords, scores = decode(heatmaps.float().numpy(), "argmax")
    kp = (coords[0] + 0.5) * np.array([w_in / hw, h_in / hh])
    stride = int(getattr(model, "backbone_stride", 8))
    gh, gw = h_in // stride, w_in // stride
    fy = np.clip((kp[:, 1] / stride).astype(int), 0, gh - 1)
    fx = np.clip((kp[:, 0] / stride).astype(int), 0, gw - 1)
    idx = torch.as_tensor(fy * gw + fx)
    dep, aff, gdep, gaff = [], [], [], []
    for name, a in zip(names, attns):  # (1, L, L)
        a = a[0].float()
        if a.shape[-1] != gh * gw:
            raise PoseReproError(f"{name} attends over {a.shape[-1]} tokens, not the {gh}x{gw} grid of stride "
                                 f"{stride}")
        rows = a[idx].reshape(-1, 1, gh, gw)
        cols = a[:, idx].t().reshape(-1, 1, gh, gw)
        gdep.append(rows[:, 0])
        gaff.append(cols[:, 0])
        dep.append(F.interpolate(rows, size=(h_in, w_in), mode="bilinear", align_corners=False)[:, 0])
        aff.append(F.interpolate(cols, size=(h_in, w_in), mode="bilinear", align_corners=False)[:, 0])
    d = torch.stack(dep).numpy()
    f = torch.stack(aff).numpy()
    if threshold > 0:
        d = np.where(d > threshold, d, 0.0)
        f = np.where(f > threshold, f, 0.0)
    return DependencyMaps(d, f, kp.astype(np.float32), scores[0], tuple(names), torch.stack(gdep).numpy(),
                          torch.stack(gaff).numpy(), stride)


def _draw_pose(ax, crop_rgb: np.ndarray, kp: np.ndarray, skeleton: Sequence[tuple[int, int]]) -> None:  # noqa: ANN001
    ax.imshow(crop_rgb)
    for a, b in skeleton:
        if a < len(kp) and b < len(kp):
            ax.plot([kp[a, 0], kp[b, 0]], [kp[a, 1], kp[b, 1]], "-", color="yellow", lw=0.8)
    ax.scatter(kp[:, 0], kp[:, 1], s=6, c="red")


def render_dependency_grid(
    crop_rgb: np.ndarray, runs: Sequence[tuple[str, DependencyMaps]], joint_names: Sequence[str], out: str | Path,
    joints: Sequence[int] | None = None, kind: str = "dependency", caption: str = "",
    skeleton: Sequence[tuple[int, int]] = (), dpi: int = 100,
) -> Path:
    """One row per (run, layer), one column per selected joint (map over the crop, predicted keypoint as a white
    star), plus a first column with the run's predicted pose (BTranspose Fig. 3 layout). PNG, atomically."""
    plt = pyplot()
    first = runs[0][1]
    data0 = first.dependency if kind == "dependency" else first.affected
    joints = tuple(joints) if joints else tuple(range(data0.shape[1]))
    rows = [(label, maps, li) for label, maps in runs for li in range(maps.dependency.shape[0])]
    n_r, n_c = len(rows), len(joints) + 1
    fig, axes = plt.subplots(n_r, n_c, figsize=(1.3 * n_c, 1.75 * n_r + 0.3), squeeze=False)
    for ri, (label, maps, li) in enumerate(rows):
        data = maps.dependency if kind == "dependency" else maps.affected
        _draw_pose(axes[ri][0], crop_rgb, maps.keypoints, skeleton)
        layer = maps.layers[li] if li < len(maps.layers) else f"layer {li + 1}"
        axes[ri][0].set_ylabel(f"{label}\n{layer}" if label else layer, fontsize=6)
        for ci, j in enumerate(joints, start=1):
            ax = axes[ri][ci]
            ax.imshow(crop_rgb)
            ax.imshow(data[li, j], cmap="jet", alpha=0.5)
            ax.scatter([maps.keypoints[j, 0]], [maps.keypoints[j, 1]], s=30, marker="*", c="white",
                       edgecolors="black", linewidths=0.4)
            if ri == 0:
                ax.set_title(joint_name(joint_names, j), fontsize=6)
    axes[0][0].set_title("prediction", fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{kind} areas", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return save_figure(fig, out, caption, dpi)


def render_dependency_figure(
    crop_rgb: np.ndarray, maps: DependencyMaps, joint_names: tuple[str, ...], out: str | Path,
    joints: tuple[int, ...] | None = None, kind: str = "dependency", caption: str = "",
    skeleton: Sequence[tuple[int, int]] = (), dpi: int = 100,
) -> Path:
    """Grid figure of one model: one row per attention layer, one column per selected joint (PNG)."""
    return render_dependency_grid(crop_rgb, [("", maps)], joint_names, out, joints, kind, caption, skeleton,
                                  dpi)


def dependency_numbers(runs: Sequence[tuple[str, DependencyMaps]], joints: Sequence[int],
                       joint_names: Sequence[str]) -> dict:
    """The numbers behind a dependency figure: per run the predicted keypoints and scores, and per layer the
    attention rows (dependency) and columns (affected) of the selected joints on the feature grid."""
    out = []
    for label, m in runs:
        out.append({
            "run": label, "layers": list(m.layers), "stride": m.stride,
            "keypoints": m.keypoints[list(joints)], "scores": m.scores[list(joints)],
            "dependency_grid": None if m.grid_dependency is None else m.grid_dependency[:, list(joints)],
            "affected_grid": None if m.grid_affected is None else m.grid_affected[:, list(joints)],
        })
    return {"figure": "dependency", "joints": [joint_name(joint_names, j) for j in joints], "runs": out}
