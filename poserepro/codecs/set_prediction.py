"""Set-prediction read-out (PRTR): from ``Q`` (class, coordinate) predictions to one location per joint type.

Joint probabilities are a softmax over the ``K`` joint logits with the background logit **dropped before** the
softmax (PRTR's ``TEST.INCLUDE_BG_LOGIT=False``), or, when ``include_bg_logit``, the softmax over all ``K+1``
classes. The Hungarian algorithm then assigns one distinct query to every joint type maximising the summed
probability; that probability is the joint's score.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .matching import readout_keypoints
from .regression import denormalize_joints, flip_average


def joint_probabilities(logits: torch.Tensor, include_bg_logit: bool = False) -> torch.Tensor:
    """``(B, Q, K+1)`` logits (background last) → ``(B, Q, K)`` joint probabilities."""
    if include_bg_logit:
        return logits.float().softmax(-1)[..., :-1]
    return logits[..., :-1].float().softmax(-1)


def set_readout(
    logits: torch.Tensor, coords: torch.Tensor, include_bg_logit: bool = False, fixed: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hungarian read-out of ``K`` joints.

    Args:
        logits: ``(B, Q, K+1)``; coords: ``(B, Q, 2)`` normalised.
        include_bg_logit: keep the background logit in the softmax (ablation, −0.9 to −1.5 AP in the paper).
        fixed: class-specific queries (query ``i`` is joint ``i``).

    Returns:
        ``(coords (B, K, 2) normalised, scores (B, K))``.
    """
    prob = joint_probabilities(logits, include_bg_logit)

    idx = readout_keypoints(prob, fixed)  # (B, K)
    out = coords.gather(1, idx[..., None].expand(-1, -1, coords.shape[-1]))
    scores = prob.gather(1, idx[:, None, :]).squeeze(1)  # scores[b, k] = prob[b, idx[b, k], k]
    return out, scores


def decode_set(
    outputs: dict[str, torch.Tensor], input_size: Sequence[int], flip_pairs: Sequence[tuple[int, int]],
    flip_outputs: dict[str, torch.Tensor] | None = None, include_bg_logit: bool = False, fixed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PRTR decoding: read-out (+ flip averaging) → ``(coords (B, K, 2) crop pixels, scores (B, K))``."""
    coords, scores = set_readout(outputs["pred_logits"], outputs["pred_coords"], include_bg_logit, fixed)
    if flip_outputs is not None:
        fc, fs = set_readout(flip_outputs["pred_logits"], flip_outputs["pred_coords"], include_bg_logit, fixed)
        coords, scores = flip_average(coords, scores, fc, fs, flip_pairs)
    return denormalize_joints(coords.float(), input_size), scores
