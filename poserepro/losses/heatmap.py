"""Heatmap losses."""

from __future__ import annotations

import torch
from torch import nn


class JointsMSELoss(nn.Module):
    """HRNet / TransPose joints MSE: ``0.5 · mean((w·(pred − gt))²)`` averaged over joints.

    ``pred``, ``target``: ``(B, K, h, w)``; ``target_weight``: ``(B, K)`` (0 for unlabelled joints).
    """

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        if self.use_target_weight:
            w = target_weight[..., None, None]
            pred, target = pred * w, target * w
        return 0.5 * (pred - target).pow(2).mean()
