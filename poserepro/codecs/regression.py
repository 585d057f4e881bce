"""Coordinate codec for regression models (TFPose, PRTR).

Targets are joints normalised to the input crop, ``(x / w, y / h)`` with ``(w, h)`` the input size; predictions
go back to crop pixels by the inverse scaling and to the image through the inverse affine of the crop
(:func:`poserepro.geometry.get_affine_transform` with ``inv=True``, HRNet convention, pixel_std 200).
The flip test mirrors normalised coordinates ``x → 1 − x`` (no pixel shift), swaps left/right joints and averages
(:func:`flip_average`). :func:`encode_udp_batch` is a torch UDP heatmap encoder for TFPose's auxiliary loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..geometry import affine_points, get_affine_transform
from .flip import flip_coords_back


def normalize_joints(joints: torch.Tensor, input_size: Sequence[int]) -> torch.Tensor:
    """Crop pixels ``(..., 2)`` → normalised ``(x / w, y / h)``; ``input_size = (w, h)``."""
    scale = torch.tensor([float(input_size[0]), float(input_size[1])], dtype=torch.float32, device=joints.device)
    return joints[..., :2].float() / scale


def denormalize_joints(coords: torch.Tensor, input_size: Sequence[int]) -> torch.Tensor:
    """Normalised ``(..., 2)`` → crop pixels (``x·w, y·h``); ``input_size = (w, h)``."""
    scale = torch.tensor([float(input_size[0]), float(input_size[1])], dtype=coords.dtype, device=coords.device)
    return coords * scale


def flip_average(
    coords: torch.Tensor, scores: torch.Tensor, flip_coords: torch.Tensor, flip_scores: torch.Tensor,
    flip_pairs: Sequence[tuple[int, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge predictions for an image and its horizontal mirror.

    Args:
        coords, flip_coords: ``(B, K, 2)`` normalised predictions for the input and for the flipped input.
        scores, flip_scores: ``(B, K)``.
        flip_pairs: left/right pairs.

    Returns:
        ``((coords + unflip(flip_coords)) / 2, (scores + unflip(flip_scores)) / 2)`` where ``unflip`` is
        ``x → 1 − x`` with left/right swapped.
    """
    back, back_scores = flip_coords_back(flip_coords, flip_scores, flip_pairs)
    assert back_scores is not None
    return (coords + back) / 2, (scores + back_scores) / 2


def crop_to_image(
    coords: np.ndarray, centers: np.ndarray, scales: np.ndarray, input_size: Sequence[int]
) -> np.ndarray:
    """Crop-pixel coordinates ``(N, K, 2)`` → image pixels through the inverse affine of each crop.

    ``centers (N, 2)`` and ``scales (N, 2)`` (box size / 200) describe the crops; ``input_size = (w, h)``.
    """
    out = np.zeros_like(np.asarray(coords, dtype=np.float64))
    for i in range(out.shape[0]):
        inv = get_affine_transform(centers[i], scales[i], 0.0, input_size, inv=True)
        out[i] = affine_points(coords[i], inv)
    return out


def encode_udp_batch(
    joints: torch.Tensor, joints_vis: torch.Tensor, input_size: Sequence[int], heatmap_size: Sequence[int],
    sigma: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """UDP Gaussian heatmaps in torch (same numbers as :func:`poserepro.codecs.heatmap.encode_udp`).

    The stride is ``(input − 1) / (heatmap − 1)`` per axis; the Gaussian is centred at the sub-pixel location and
    cut to the ``(6σ + 1)`` window around the rounded location; a joint gets weight 0 when unlabelled or when that
    window misses the map.

    Args:
        joints: ``(N, K, 2)`` crop pixels; ``joints_vis``: ``(N, K)``.
        input_size, heatmap_size: ``(w, h)``.

    Returns:
        ``heatmaps (N, K, h, w)`` and ``weights (N, K)``, float32 on ``joints.device``.
    """
    dev = joints.device
    dtype = torch.float32 if dev.type == "mps" else torch.float64
    iw, ih = float(input_size[0]), float(input_size[1])
    hw, hh = int(heatmap_size[0]), int(heatmap_size[1])
    stride = torch.tensor([(iw - 1.0) / (hw - 1.0), (ih - 1.0) / (hh - 1.0)], dtype=dtype, device=dev)
    mu = joints[..., :2].to(dtype) / stride
    mu_int = torch.trunc(mu + 0.5)
    tmp = 3 * sigma
    ul, br = mu_int - tmp, mu_int + tmp + 1
    outside = (ul[..., 0] >= hw) | (ul[..., 1] >= hh) | (br[..., 0] < 0) | (br[..., 1] < 0)
    weight = ((joints_vis.to(dtype) > 0.5) & ~outside).to(dtype)
    x = torch.arange(hw, dtype=dtype, device=dev)
    y = torch.arange(hh, dtype=dtype, device=dev)
    gx = torch.exp(-((x - mu[..., 0:1]) ** 2) / (2 * sigma**2)) * ((x - mu_int[..., 0:1]).abs() <= tmp)
    gy = torch.exp(-((y - mu[..., 1:2]) ** 2) / (2 * sigma**2)) * ((y - mu_int[..., 1:2]).abs() <= tmp)
    heatmaps = gy[..., :, None] * gx[..., None, :] * weight[..., None, None]
    return heatmaps.to(torch.float32), weight.to(torch.float32)
