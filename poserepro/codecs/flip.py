"""Flip-test helpers: bring the outputs for a horizontally flipped input back to the original frame."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _flip_perm(num_keypoints: int, flip_pairs: Sequence[tuple[int, int]]) -> list[int]:
    perm = list(range(num_keypoints))
    for a, b in flip_pairs:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise ValueError(f"flip pair ({a}, {b}) out of range for {num_keypoints} keypoints")
        perm[a], perm[b] = b, a
    return perm


def flip_heatmaps_back(
    heatmaps: torch.Tensor, flip_pairs: Sequence[tuple[int, int]], shift: bool = False
) -> torch.Tensor:
    """Mirror heatmaps predicted for a flipped input and swap the left/right channels.

    Args:
        heatmaps: (N, K, h, w).
        flip_pairs: left/right index pairs.
        shift: also move the maps one pixel to the right (HRNet ``TEST.SHIFT_HEATMAP``: column 0 is kept,
            column ``i`` takes column ``i - 1``). TransPose does not shift (default ``False``).

    Returns:
        New (N, K, h, w) tensor.
    """
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must be (N, K, h, w), got shape {tuple(heatmaps.shape)}")
    perm = _flip_perm(heatmaps.shape[1], flip_pairs)
    out = heatmaps.flip(-1)[:, perm]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


def flip_coords_back(
    coords: torch.Tensor, scores: torch.Tensor | None, flip_pairs: Sequence[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Undo a horizontal flip on normalised coordinates (regression models such as PRTR): ``x -> 1 - x``
    (no pixel shift) and swap the left/right joints (scores are swapped too).

    Args:
        coords: (N, K, 2) with x, y normalised to [0, 1] of the input width / height.
        scores: (N, K) or ``None``.
        flip_pairs: left/right index pairs.

    Returns:
        ``(coords, scores)``: new (N, K, 2) tensor and (N, K) tensor or ``None``.
    """
    if coords.dim() != 3 or coords.shape[-1] < 2:
        raise ValueError(f"coords must be (N, K, 2), got shape {tuple(coords.shape)}")
    perm = _flip_perm(coords.shape[1], flip_pairs)
    out = coords[:, perm].clone()
    out[..., 0] = 1.0 - out[..., 0]
    new_scores = scores[:, perm] if scores is not None else None
    return out, new_scores
