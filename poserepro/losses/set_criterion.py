"""Set-prediction losses: PRTR's keypoint criterion and DETR's person-detection criterion.

Both match predictions to targets with the Hungarian matchers of :mod:`poserepro.codecs.matching` and, when the
outputs carry ``aux_outputs`` (one dict per earlier decoder layer), apply the same loss to every auxiliary output
**after re-matching it** (the matching of the last layer is not reused). Loss names of auxiliary layer ``i`` get the
suffix ``_i``; ``total`` is the weighted sum of everything.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..codecs import matching


def _with_aux(outputs: dict) -> list[tuple[str, dict]]:
    layers = [("", {k: v for k, v in outputs.items() if k != "aux_outputs"})]
    layers += [(f"_{i}", aux) for i, aux in enumerate(outputs.get("aux_outputs", []) or [])]
    return layers


class KeypointSetCriterion(nn.Module):
    """PRTR keypoint loss (FACTS §4.3).

    For each image the ``K`` joint types are matched to ``K`` of the ``Q`` queries with
    ``C = cost_coord·L1 − cost_class·p(joint)``. Then:

    * ``loss_ce``: cross-entropy over **all** queries (matched query → its joint id, the rest → background, the last
      class), background weighted ``eos_coef`` (0.1). Invisible joints still get a class target, as in the code.
    * ``loss_kpts``: L1 between matched predictions and targets times the visibility weight, averaged over
      ``B·K·2`` values and multiplied by ``K`` (the official normalisation).

    ``total = weight_ce·loss_ce + weight_kpts·loss_kpts`` summed over the last and every auxiliary layer.

    Args:
        num_joints: ``K``.
        cost_class, cost_coord: matching weights (1, 5).
        eos_coef: background class weight (0.1).
        weight_ce, weight_kpts: loss weights (1, 5).
        fixed: class-specific queries (no matching; query ``i`` ↔ joint ``i``).
    """

    def __init__(
        self, num_joints: int = 17, cost_class: float = 1.0, cost_coord: float = 5.0, eos_coef: float = 0.1,
        weight_ce: float = 1.0, weight_kpts: float = 5.0, fixed: bool = False,
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.cost_class = cost_class
        self.cost_coord = cost_coord
        self.weight_ce = weight_ce
        self.weight_kpts = weight_kpts
        self.fixed = fixed
        w = torch.ones(num_joints + 1)
        w[-1] = eos_coef
        self.register_buffer("empty_weight", w, persistent=False)

    def layer_losses(
        self, out: dict[str, torch.Tensor], targets: torch.Tensor, weights: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Losses of one decoder layer: ``out`` has ``pred_logits (B, Q, K+1)`` and ``pred_coords (B, Q, 2)``;
        ``targets (B, K, 2)`` normalised; ``weights (B, K)`` visibility."""
        logits, coords = out["pred_logits"], out["pred_coords"]
        b, q = logits.shape[:2]
        k = self.num_joints
        indices = matching.match_keypoints(logits, coords, targets, self.cost_class, self.cost_coord, self.fixed)
        batch_idx = torch.cat([torch.full_like(j, i) for i, (j, _) in enumerate(indices)]).to(logits.device)
        joint_idx = torch.cat([j for j, _ in indices]).to(logits.device)
        query_idx = torch.cat([qi for _, qi in indices]).to(logits.device)
        target_classes = torch.full((b, q), k, dtype=torch.int64, device=logits.device)
        target_classes[batch_idx, query_idx] = joint_idx
        loss_ce = F.cross_entropy(logits.float().transpose(1, 2), target_classes, self.empty_weight.to(logits.device))
        pred = coords[batch_idx, query_idx].float()
        tgt = targets[batch_idx, joint_idx].float()
        w = weights[batch_idx, joint_idx].float()[:, None]
        loss_kpts = (F.l1_loss(pred, tgt, reduction="none") * w).mean() * k
        return {"loss_ce": loss_ce, "loss_kpts": loss_kpts}

    def forward(
        self, outputs: dict, targets: torch.Tensor, weights: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``outputs`` from a PRTR forward; returns ``(total, {loss_ce, loss_kpts, loss_ce_0, ...})``."""
        losses: dict[str, torch.Tensor] = {}
        total = targets.new_zeros(())
        for suffix, out in _with_aux(outputs):
            parts = self.layer_losses(out, targets, weights)
            total = total + self.weight_ce * parts["loss_ce"] + self.weight_kpts * parts["loss_kpts"]
            losses.update({k + suffix: v for k, v in parts.items()})
        return total, losses


class DetectionSetCriterion(nn.Module):
    """DETR loss for the person detector of end-to-end PRTR (FACTS §4.1).

    Matching ``cost_class·(−p) + cost_bbox·L1 + cost_giou·(−GIoU)``; losses: CE over all queries (no-object weight
    ``eos_coef``), L1 and ``1 − GIoU`` of matched boxes normalised by the number of target boxes (at least 1);
    ``total = weight_ce·ce + weight_bbox·l1 + weight_giou·giou`` over the last and every auxiliary layer.
    """

    def __init__(
        self, num_classes: int = 1, cost_class: float = 1.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
        eos_coef: float = 0.1, weight_ce: float = 1.0, weight_bbox: float = 5.0, weight_giou: float = 2.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.costs = (cost_class, cost_bbox, cost_giou)
        self.weights = (weight_ce, weight_bbox, weight_giou)
        w = torch.ones(num_classes + 1)
        w[-1] = eos_coef
        self.register_buffer("empty_weight", w, persistent=False)

    def match(self, out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]):
        """Per-image ``(query_idx, target_idx)`` for one layer's ``pred_logits`` / ``pred_boxes``."""
        return matching.match_boxes(out["pred_logits"], out["pred_boxes"], targets, *self.costs)

    def layer_losses(
        self, out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]], indices=None
    ) -> dict[str, torch.Tensor]:
        """Losses of one layer (``pred_logits (B, Q, C+1)``, ``pred_boxes (B, Q, 4)``)."""
        logits, boxes = out["pred_logits"], out["pred_boxes"]
        indices = indices if indices is not None else self.match(out, targets)
        dev = logits.device
        b, q = logits.shape[:2]
        batch_idx = torch.cat([torch.full_like(s, i) for i, (s, _) in enumerate(indices)]).to(dev)
        query_idx = torch.cat([s for s, _ in indices]).to(dev)
        classes = torch.full((b, q), self.num_classes, dtype=torch.int64, device=dev)
        tgt_labels = [
            t.get("labels", torch.zeros(len(t["boxes"]), dtype=torch.int64))[j].to(dev)
            for t, (_, j) in zip(targets, indices)
        ]
        if query_idx.numel():
            classes[batch_idx, query_idx] = torch.cat(tgt_labels)
        loss_ce = F.cross_entropy(logits.float().transpose(1, 2), classes, self.empty_weight.to(dev))
        num = max(sum(len(t["boxes"]) for t in targets), 1)
        src = boxes[batch_idx, query_idx].float()
        tgt = torch.cat([t["boxes"][j].to(dev) for t, (_, j) in zip(targets, indices)]).float().reshape(-1, 4)
        loss_bbox = F.l1_loss(src, tgt, reduction="sum") / num
        m = matching
        giou = torch.diag(m.generalized_box_iou(m.box_cxcywh_to_xyxy(src), m.box_cxcywh_to_xyxy(tgt)))
        loss_giou = (1 - giou).sum() / num
        return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def forward(
        self, outputs: dict, targets: list[dict[str, torch.Tensor]]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``outputs`` with ``pred_logits``, ``pred_boxes`` (+ ``aux_outputs``) → ``(total, parts)``."""
        losses: dict[str, torch.Tensor] = {}
        total = outputs["pred_logits"].new_zeros((), dtype=torch.float32)
        wc, wb, wg = self.weights
        for suffix, out in _with_aux(outputs):
            parts = self.layer_losses(out, targets)
            total = total + wc * parts["loss_ce"] + wb * parts["loss_bbox"] + wg * parts["loss_giou"]
            losses.update({k + suffix: v for k, v in parts.items()})
        return total, losses
