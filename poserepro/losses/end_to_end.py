"""End-to-end PRTR's loss: DETR's person-detection set loss plus the keypoint set loss of the persons the
detector's matched queries pick, computed in the crop frame of the *predicted* box (paper §4.1): the L1 target is
the ground truth mapped with the detached box, the prediction is mapped to the image with the live box and back
with the detached one (same value, gradient to the box)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

BoxMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def end_to_end_loss(
    outputs: dict, targets: list[dict[str, torch.Tensor]], det_criterion: nn.Module, kpt_criterion: nn.Module,
    kpt_weight: float, image_to_crop: BoxMap, crop_to_image: BoxMap,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Detection loss + ``kpt_weight`` × keypoint set loss (see the module docstring) → ``(total, parts)``."""
    det_total, det_parts = det_criterion(outputs, targets)
    parts = {f"det_{k}": float(v.detach()) for k, v in det_parts.items()}
    total = det_total
    kpt = outputs.get("kpt")
    if kpt is not None:
        boxes = outputs["kpt_boxes"]
        fixed_boxes = boxes.detach()
        gt = torch.stack([
            targets[int(b)]["keypoints"][int(t)].to(boxes.device)
            for b, t in zip(outputs["kpt_batch"], outputs["kpt_target"])
        ])  # (N, K, 3)
        tgt = image_to_crop(gt[..., :2].float(), fixed_boxes)
        inside = ((tgt >= 0) & (tgt <= 1)).all(-1)
        weights = (gt[..., 2] > 0).float() * inside.float()

        def through_box(o: dict) -> dict:
            live = image_to_crop(crop_to_image(o["pred_coords"], boxes), fixed_boxes)
            return {"pred_logits": o["pred_logits"], "pred_coords": live}

        k_out = through_box(kpt)
        k_out["aux_outputs"] = [through_box(a) for a in kpt.get("aux_outputs", [])]
        kpt_total, kpt_parts = kpt_criterion(k_out, tgt, weights)
        total = total + kpt_weight * kpt_total
        parts.update({f"kpt_{k}": float(v.detach()) for k, v in kpt_parts.items()})
    parts["loss"] = float(total.detach())
    return total, parts
