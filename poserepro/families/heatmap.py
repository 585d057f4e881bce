"""Heatmap models (TransPose, BTranspose, SimpleBaseline): Gaussian / UDP targets, joints MSE or Sinkhorn loss,
flip-merged heatmaps decoded (standard, DARK or UDP) and mapped back to the image."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..codecs.flip import flip_heatmaps_back
from ..codecs.heatmap import decode, heatmap_to_image
from ..losses.heatmap import JointsMSELoss
from ..recipes import Recipe
from .base import Criterion, register_family
from .topdown import TopDownFamily


@register_family
class HeatmapFamily(TopDownFamily):
    """``model(images) -> (B, K, h, w)`` heatmaps; targets come with the crops (``batch['heatmaps']``)."""

    not_exportable = None  # one tensor out: exported as ``heatmaps``

    output_types = ("heatmap",)
    heatmap_output = True

    def criterion(self, recipe: Recipe, model: nn.Module, device: torch.device) -> Criterion:
        if recipe.train.loss == "sinkhorn":
            from ..losses.sinkhorn import SinkhornLoss

            fn: nn.Module = SinkhornLoss(recipe.train.sinkhorn_eps, recipe.train.sinkhorn_iters)
        else:
            fn = JointsMSELoss()
        fn = fn.to(device)

        def loss(outputs: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
            value = fn(outputs.float(), batch["heatmaps"], batch["target_weight"])
            return value, {"loss_heatmap": float(value.detach())}

        return loss

    def readout(self, model: nn.Module, outputs: Any, flipped: Any, batch: dict[str, Any],
                recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
        hm = outputs.float()
        if flipped is not None:
            pairs = recipe.data.keypoint_spec().flip_pairs
            hm = (hm + flip_heatmaps_back(flipped.float(), pairs, shift=recipe.eval.flip_shift)) / 2
        coords, maxvals = decode(hm.cpu().numpy(), recipe.eval.decode, recipe.eval.blur_kernel)
        hh, hw = hm.shape[-2:]
        img_pts = heatmap_to_image(coords, batch["center"].numpy(), batch["scale"].numpy(), (hw, hh),
                                   udp=recipe.eval.decode == "udp", convention=recipe.data.affine)
        return img_pts, maxvals
