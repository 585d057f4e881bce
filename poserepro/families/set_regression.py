"""Models that decode themselves (two-stage PRTR's keypoint set prediction, TFPose's regression): the model
owns its loss (``model.loss(outputs, batch)``) and its crop read-out (``model.decode(outputs, flipped)``, in
crop-input pixels); the family maps the crop coordinates back to the image."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..geometry import affine_points, get_affine_transform
from ..recipes import Recipe
from .base import Criterion, register_family
from .topdown import TopDownFamily


@register_family
class SelfDecodingFamily(TopDownFamily):
    """``output_type`` ``"set"`` (PRTR) or ``"regression"`` (TFPose)."""

    output_types = ("set", "regression")
    not_exportable = None

    def export_outputs(self, model: nn.Module) -> tuple[str, ...]:
        """PRTR: ``pred_logits (B, Q, K+1)``, ``pred_coords (B, Q, 2)``; TFPose: ``coords (B, K, 2)``."""
        return ("pred_logits", "pred_coords") if model.output_type == "set" else ("coords",)

    def criterion(self, recipe: Recipe, model: nn.Module, device: torch.device) -> Criterion:
        return lambda outputs, batch: model.loss(outputs, batch)

    def readout(self, model: nn.Module, outputs: Any, flipped: Any, batch: dict[str, Any],
                recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
        c, maxvals = model.decode(outputs, flipped)
        coords = c.detach().float().cpu().numpy()
        centers, scales = batch["center"].numpy(), batch["scale"].numpy()
        img_pts = np.zeros_like(coords)
        for i in range(coords.shape[0]):
            inv = get_affine_transform(centers[i], scales[i], 0.0, tuple(recipe.data.input_size), inv=True,
                                       convention=recipe.data.affine)
            img_pts[i] = affine_points(coords[i], inv)
        return img_pts, maxvals.detach().float().cpu().numpy()
