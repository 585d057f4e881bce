"""Coordinate-regression losses (TFPose): L1 on normalised joints summed over decoder layers, plus the auxiliary
heatmap MSE.
"""

from __future__ import annotations

import torch

from .heatmap import JointsMSELoss


def coord_l1(pred: torch.Tensor, target: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """Mean per-joint L1 distance ``|Δx| + |Δy|`` over labelled joints.

    Args:
        pred, target: ``(B, K, 2)`` normalised ``(x/w, y/h)``.
        vis: ``(B, K)`` 0/1 weights.

    Returns:
        Scalar ``Σ vis·(|Δx|+|Δy|) / max(Σ vis, 1)``.
    """
    w = vis.float()
    err = (pred.float() - target.float()).abs().sum(-1)
    return (err * w).sum() / w.sum().clamp(min=1.0)


def tfpose_loss(
    layer_coords: list[torch.Tensor], target: torch.Tensor, vis: torch.Tensor,
    heatmaps: torch.Tensor | None = None, heatmap_targets: torch.Tensor | None = None,
    heatmap_weights: torch.Tensor | None = None, aux_weight: float = 50.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """TFPose objective ``L = Σ_d L1(ŷ_d, y) + λ·MSE(Ĥ, H)`` (paper eq. 5–7).

    Args:
        layer_coords: ``[(B, K, 2)]`` predictions of every decoder layer (first to last).
        target: ``(B, K, 2)`` normalised joints; ``vis``: ``(B, K)``.
        heatmaps: ``(B, K, h, w)`` auxiliary predictions (``None`` when the auxiliary head is off).
        heatmap_targets, heatmap_weights: UDP targets ``(B, K, h, w)`` and weights ``(B, K)``.
        aux_weight: ``λ`` (50).

    Returns:
        ``(total, {"loss_reg": …, "loss_reg_d{i}": …, "loss_aux": …})`` (parts as floats for logging).
    """
    parts: dict[str, float] = {}
    reg = target.new_zeros((), dtype=torch.float32)
    for i, c in enumerate(layer_coords):
        li = coord_l1(c, target, vis)
        parts[f"loss_reg_d{i + 1}"] = float(li.detach())
        reg = reg + li
    parts["loss_reg"] = float(reg.detach())
    total = reg
    if heatmaps is not None and heatmap_targets is not None:
        w = heatmap_weights if heatmap_weights is not None else vis
        aux = JointsMSELoss()(heatmaps.float(), heatmap_targets.float(), w.float())
        parts["loss_aux"] = float(aux.detach())
        total = total + aux_weight * aux
    return total, parts
