"""Hungarian matchers (``scipy.optimize.linear_sum_assignment``) and box utilities.

* :func:`match_keypoints` — PRTR: every ground-truth joint type ``i`` of a person is assigned one query ``q`` by
  minimising ``C[i, q] = cost_coord·|ŷ_q − y_i|₁ − cost_class·p_q(i)`` (softmax over all ``K+1`` classes).
* :func:`readout_keypoints` — PRTR inference: joint type ``i`` → query by minimising ``−p_q(i)`` only.
* :func:`match_boxes` — DETR: ``C = cost_class·(−p_q(c)) + cost_bbox·|b_q − b_t|₁ + cost_giou·(−GIoU)``.

All matchers run without gradients and return, per image, a pair of int64 index tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

MatchIndices = list[tuple[torch.Tensor, torch.Tensor]]


def _solve(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of the minimum-cost assignment of a ``(R, C)`` cost matrix (``R <= C``: every row)."""
    c = cost.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(c).all():
        c = np.nan_to_num(c, nan=1e6, posinf=1e6, neginf=-1e6)
    rows, cols = linear_sum_assignment(c)
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


@torch.no_grad()
def keypoint_cost(
    logits: torch.Tensor, coords: torch.Tensor, targets: torch.Tensor, cost_class: float = 1.0,
    cost_coord: float = 5.0,
) -> torch.Tensor:
    """PRTR matching cost, ``(B, K, Q)``.

    Args:
        logits: ``(B, Q, K+1)`` class logits (background last).
        coords: ``(B, Q, 2)`` predicted normalised ``(x, y)``.
        targets: ``(B, K, 2)`` ground-truth normalised joints (every joint type is matched; visibility is
            ignored here, as in the official code).
    """
    k = targets.shape[1]
    prob = logits.float().softmax(-1)[..., :k]  # (B, Q, K)
    l1 = torch.cdist(coords.float(), targets.float(), p=1)  # (B, Q, K)
    return (cost_coord * l1 - cost_class * prob).transpose(1, 2)


@torch.no_grad()
def match_keypoints(
    logits: torch.Tensor, coords: torch.Tensor, targets: torch.Tensor, cost_class: float = 1.0,
    cost_coord: float = 5.0, fixed: bool = False,
) -> MatchIndices:
    """Assign a query to each of the ``K`` joint types of every image (PRTR training).

    Args:
        logits, coords, targets: see :func:`keypoint_cost`.
        fixed: class-specific queries (ablation "17 (Fixed)"): query ``i`` always predicts joint ``i``.

    Returns:
        ``[(joint_idx (K,), query_idx (K,))]`` per image, sorted by joint index.
    """
    b, q = coords.shape[:2]
    k = targets.shape[1]
    if fixed:
        if q < k:
            raise ValueError(f"class-fixed queries need at least {k} queries, got {q}")
        idx = torch.arange(k, dtype=torch.int64)
        return [(idx, idx.clone()) for _ in range(b)]
    cost = keypoint_cost(logits, coords, targets, cost_class, cost_coord)
    return [_solve(c) for c in cost]


@torch.no_grad()
def readout_keypoints(
    prob: torch.Tensor, fixed: bool = False
) -> torch.Tensor:
    """Inference read-out: the query of every joint type maximising the total probability.

    Args:
        prob: ``(B, Q, K)`` joint probabilities (background already removed or renormalised by the caller).
        fixed: class-specific queries (query ``i`` ↔ joint ``i``).

    Returns:
        ``(B, K)`` int64 query index per joint.
    """
    b, q, k = prob.shape
    if fixed:
        return torch.arange(k, dtype=torch.int64).expand(b, k).clone()
    out = torch.empty(b, k, dtype=torch.int64)
    for i, p in enumerate(prob):
        rows, cols = _solve(-p.transpose(0, 1))
        out[i, rows] = cols
    return out.to(prob.device)


# ------------------------------------------------------------------------------------------------ boxes


def box_cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` ``(cx, cy, w, h)`` → ``(x0, y0, x1, y1)``."""
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xyxy_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` ``(x0, y0, x1, y1)`` → ``(cx, cy, w, h)``."""
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and union of ``xyxy`` boxes ``a (N, 4)``, ``b (M, 4)`` → ``(N, M)`` each."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / union.clamp(min=1e-12), union


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU of ``xyxy`` boxes ``a (N, 4)``, ``b (M, 4)`` → ``(N, M)`` in ``[-1, 1]``."""
    iou, union = box_iou(a, b)
    lt = torch.min(a[:, None, :2], b[None, :, :2])
    rb = torch.max(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    hull = wh[..., 0] * wh[..., 1]
    return iou - (hull - union) / hull.clamp(min=1e-12)


@torch.no_grad()
def match_boxes(
    logits: torch.Tensor, boxes: torch.Tensor, targets: list[dict[str, torch.Tensor]], cost_class: float = 1.0,
    cost_bbox: float = 5.0, cost_giou: float = 2.0,
) -> MatchIndices:
    """DETR matching of predicted boxes to ground-truth objects, per image.

    Args:
        logits: ``(B, Q, C+1)`` (no-object last).
        boxes: ``(B, Q, 4)`` normalised ``(cx, cy, w, h)``.
        targets: per image ``{"boxes": (n, 4) cxcywh normalised, "labels": (n,) int64}`` (``labels`` optional:
            defaults to class 0, e.g. "person").

    Returns:
        ``[(query_idx (n,), target_idx (n,))]`` per image (``n`` = number of targets of that image).
    """
    out = []
    prob = logits.float().softmax(-1)
    for i, t in enumerate(targets):
        tb = t["boxes"].to(boxes.device, torch.float32)
        if tb.numel() == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            out.append((empty, empty.clone()))
            continue
        labels = t.get("labels")
        if labels is None:
            labels = torch.zeros(tb.shape[0], dtype=torch.int64, device=boxes.device)
        c_class = -prob[i][:, labels.to(boxes.device)]
        c_bbox = torch.cdist(boxes[i].float(), tb, p=1)
        c_giou = -generalized_box_iou(box_cxcywh_to_xyxy(boxes[i].float()), box_cxcywh_to_xyxy(tb))
        cost = cost_class * c_class + cost_bbox * c_bbox + cost_giou * c_giou  # (Q, n)
        tgt, qry = _solve(cost.transpose(0, 1))
        order = torch.argsort(qry)
        out.append((qry[order], tgt[order]))
    return out
