"""Read-out of end-to-end PRTR (detector + keypoint Transformer on its boxes) to COCO keypoint results, and its
two halves for diagnostics (keypoints on given boxes, the detector's boxes).

The functions take the model duck-typed: ``model(images)``, ``model.detect``, ``model.keypoints``,
``model.crop_to_image`` and ``model.include_bg_logit`` (see :class:`poserepro.models.prtr_e2e.PRTREndToEnd`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .set_prediction import set_readout


@torch.no_grad()
def predict_image_results(
    model: Any, images: torch.Tensor, image_ids: Sequence[int], orig_sizes: torch.Tensor | Sequence,
    in_vis_thre: float = 0.2, score_threshold: float | None = None, mask: torch.Tensor | None = None,
) -> list[dict]:
    """COCO keypoint results for whole images, without a separate detector.

    Args:
        model: an end-to-end PRTR.
        images: ``(B, 3, H, W)`` the images resized (not padded) to the model's input.
        image_ids: COCO image ids, length ``B``.
        orig_sizes: ``(B, 2)`` original ``(width, height)``: normalised predictions are scaled by them.
        in_vis_thre: joints above this score enter the rescoring mean.
        score_threshold: drop persons whose rescored score is not above it (``None`` keeps all).
        mask: ``(B, H, W)`` ``True`` on the padding of a padded batch (``None``: images of one size).

    Returns:
        ``[{"image_id", "category_id": 1, "keypoints": [x, y, s] × K, "score"}]``, at most ``eval_persons``
        per image.
    """
    was_training = model.training
    model.eval()
    out = model(images) if mask is None else model(images, mask=mask)
    model.train(was_training)
    kpt = out.get("kpt")
    if kpt is None:
        return []
    b_idx, q_idx = out["kpt_batch"], out["kpt_query"]
    det_prob = out["pred_logits"].float().softmax(-1)[b_idx, q_idx, 0]
    return _keypoint_results(model, kpt, out["kpt_boxes"], b_idx, image_ids, orig_sizes, in_vis_thre, det_prob,
                             score_threshold, clamp=True)


def _keypoint_results(
    model: Any, kpt: dict, boxes: torch.Tensor, b_idx: torch.Tensor, image_ids: Sequence[int],
    orig_sizes: torch.Tensor | Sequence, in_vis_thre: float, person_prob: torch.Tensor | None = None,
    score_threshold: float | None = None, clamp: bool = False,
) -> list[dict]:
    """COCO keypoint results from the keypoint Transformer's outputs on ``boxes (N, 4)`` of images ``b_idx (N,)``:
    Hungarian read-out, crop → image (clamped to it with ``clamp``) → original pixels; a person's score is the
    mean of its joint scores above ``in_vis_thre``, times ``person_prob (N,)`` when given."""
    coords, scores = set_readout(kpt["pred_logits"], kpt["pred_coords"], model.include_bg_logit)
    xy = model.crop_to_image(coords.float(), boxes.float())
    if clamp:
        xy = xy.clamp(0, 1)
    sizes = torch.as_tensor(orig_sizes, dtype=torch.float32, device=xy.device).reshape(-1, 2)
    xy = xy * sizes[b_idx][:, None, :]
    results = []
    for n in range(xy.shape[0]):
        s = scores[n].float()
        good = s > in_vis_thre
        score = float(s[good].mean()) if bool(good.any()) else 0.0
        if person_prob is not None:
            score = float(person_prob[n]) * score
        if score_threshold is not None and score <= score_threshold:
            continue
        kps = torch.cat([xy[n], s[:, None]], dim=1).reshape(-1).tolist()
        results.append({"image_id": int(image_ids[int(b_idx[n])]), "category_id": 1,
                        "keypoints": [float(v) for v in kps], "score": score})
    return results


@torch.no_grad()
def predict_with_boxes(
    model: Any, images: torch.Tensor, boxes: Sequence[torch.Tensor], image_ids: Sequence[int],
    orig_sizes: torch.Tensor | Sequence, in_vis_thre: float = 0.2,
) -> tuple[list[dict], list[dict]]:
    """Diagnostics: the keypoint Transformer on *given* boxes, and the detector's boxes as COCO box results.

    Args:
        model: an end-to-end PRTR.
        images: ``(B, 3, H, W)`` resized whole images.
        boxes: per image ``(n_i, 4)`` cxcywh normalised boxes to crop (e.g. the ground truth: an oracle detector).
        image_ids, orig_sizes, in_vis_thre: as :func:`predict_image_results`.

    Returns:
        ``(keypoint_results, box_results)``: keypoint results for the given boxes, scored by the mean joint score
        above ``in_vis_thre``; and ``[{"image_id", "category_id": 1, "bbox": [x, y, w, h], "score"}]`` for every
        person query, in original pixels.
    """
    was_training = model.training
    model.eval()
    feats, det = model.detect(images)
    model.train(was_training)
    sizes = torch.as_tensor(orig_sizes, dtype=torch.float32, device=images.device).reshape(-1, 2)
    prob = det["pred_logits"].float().softmax(-1)[..., 0]
    box_results = []
    for b in range(images.shape[0]):
        w0, h0 = sizes[b].tolist()
        for q in range(prob.shape[1]):
            cx, cy, w, h = det["pred_boxes"][b, q].float().tolist()
            box_results.append({"image_id": int(image_ids[b]), "category_id": 1, "score": float(prob[b, q]),
                                "bbox": [(cx - w / 2) * w0, (cy - h / 2) * h0, w * w0, h * h0]})
    b_idx = torch.cat([torch.full((len(bx),), b, dtype=torch.int64) for b, bx in enumerate(boxes)]).to(images.device)
    if not len(b_idx):
        return [], box_results
    given = torch.cat([bx.reshape(-1, 4) for bx in boxes]).to(images.device).float()
    kpt = model.keypoints(feats, b_idx, given.to(feats[0].dtype))
    return _keypoint_results(model, kpt, given, b_idx, image_ids, sizes, in_vis_thre), box_results
