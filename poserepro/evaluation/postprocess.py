"""Top-down post-processing of the HRNet lineage: person rescoring and OKS-NMS, then COCO result dicts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from poserepro.keypoints import COCO_SIGMAS

PIXEL_STD: float = 200.0


def oks_iou(
    g: np.ndarray,
    d: np.ndarray,
    area_g: float,
    area_d: np.ndarray,
    sigmas: np.ndarray | Sequence[float] | None = COCO_SIGMAS,
    in_vis_thre: float | None = None,
) -> np.ndarray:
    """OKS between one pose and M others, as HRNet's NMS computes it.

    ``e = d^2 / (2 sigma)^2 / (mean of the two areas + eps) / 2``; OKS = mean of ``exp(-e)`` over all joints
    (or, with ``in_vis_thre``, over the joints whose score exceeds it in both poses; 0 when none do).
    Note: HRNet's own code, through a Python ``and`` between two lists, effectively tests only ``d``'s
    scores; the official evaluation never passes ``in_vis_thre``, so this does not affect its numbers.

    Args:
        g: (K, 3) reference pose ``(x, y, score)`` (a flat (3K,) array is accepted too).
        d: (M, K, 3) other poses (or (M, 3K)).
        area_g: reference area (pixels²). area_d: (M,) areas.
        sigmas: (K,) OKS sigmas (``None``: the COCO ones).
        in_vis_thre: optional joint-score threshold.

    Returns:
        (M,) OKS values.
    """
    s = np.asarray(COCO_SIGMAS if sigmas is None else sigmas, dtype=np.float64)
    k = s.shape[0]
    gg = np.asarray(g, dtype=np.float64).reshape(k, 3)
    dd = np.asarray(d, dtype=np.float64).reshape(-1, k, 3)
    ad = np.asarray(area_d, dtype=np.float64).reshape(-1)
    if dd.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    var = (s * 2) ** 2
    d2 = (dd[..., 0] - gg[None, :, 0]) ** 2 + (dd[..., 1] - gg[None, :, 1]) ** 2
    e = d2 / var[None, :] / ((float(area_g) + ad[:, None]) / 2 + np.spacing(1)) / 2
    if in_vis_thre is None:
        return np.exp(-e).mean(axis=1)
    mask = (gg[None, :, 2] > in_vis_thre) & (dd[..., 2] > in_vis_thre)
    cnt = mask.sum(axis=1)
    tot = (np.exp(-e) * mask).sum(axis=1)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0)


def oks_nms(
    kpts_db: list[dict],
    thresh: float,
    sigmas: np.ndarray | Sequence[float] | None = COCO_SIGMAS,
    in_vis_thre: float | None = None,
) -> list[int]:
    """Greedy OKS non-maximum suppression (HRNet ``oks_nms``).

    Poses are visited by decreasing score; every remaining pose whose OKS with the kept one is ``> thresh``
    is removed.

    Args:
        kpts_db: dicts with ``keypoints`` ((K, 3) or (3K,)), ``score`` and ``area`` (pixels²; if absent it is
            computed from ``scale`` (2,) as ``scale[0] * scale[1] * 200**2``).
        thresh: OKS threshold (0.9 in TransPose / HRNet).
        sigmas: (K,) OKS sigmas (``None``: the COCO ones). in_vis_thre: see :func:`oks_iou`.

    Returns:
        Indices into ``kpts_db`` of the kept poses, highest score first.
    """
    if len(kpts_db) == 0:
        return []
    if sigmas is None:
        sigmas = COCO_SIGMAS
    k = np.asarray(sigmas).shape[0]
    scores = np.array([float(p["score"]) for p in kpts_db], dtype=np.float64)
    kpts = np.stack([np.asarray(p["keypoints"], dtype=np.float64).reshape(k, 3) for p in kpts_db])
    areas = np.array(
        [
            float(p["area"]) if "area" in p else float(np.prod(np.asarray(p["scale"], dtype=np.float64) * PIXEL_STD))
            for p in kpts_db
        ],
        dtype=np.float64,
    )
    order = np.argsort(scores, kind="stable")[::-1]
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        ovr = oks_iou(kpts[i], kpts[order[1:]], areas[i], areas[order[1:]], sigmas, in_vis_thre)
        order = order[1:][ovr <= thresh]
    return keep


def rescore_and_nms(
    preds: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    box_scores: np.ndarray,
    image_ids: np.ndarray | Sequence[int],
    in_vis_thre: float = 0.2,
    oks_thre: float = 0.9,
    sigmas: np.ndarray | Sequence[float] | None = COCO_SIGMAS,
    nms: bool = True,
) -> list[dict]:
    """Rescore persons and apply per-image OKS-NMS (HRNet / TransPose ``evaluate``), returning COCO results.

    Score = box score × mean of the joint scores that exceed ``in_vis_thre`` (0 when none does). Then, per
    image, :func:`oks_nms` at ``oks_thre`` over all joints with area = ``scale[0] * scale[1] * 200**2``
    (``in_vis_thre`` is *not* passed to the NMS, as in the official code). If NMS keeps nothing, every pose
    is kept.

    Args:
        preds: (N, K, 3) image coordinates + joint score (maxval); an empty array gives ``[]``.
        centers: (N, 2). scales: (N, 2) (/200). box_scores: (N,). image_ids: (N,).
        in_vis_thre: joint-score threshold for the rescoring (0.2).
        oks_thre: NMS threshold (0.9).
        sigmas: (K,) OKS sigmas. ``None`` means the COCO sigmas when K == 17; for other layouts (MPII, which
            has no OKS sigmas and is evaluated on GT boxes) ``None`` skips the NMS.
        nms: set ``False`` to skip NMS (rescoring only).

    Returns:
        COCO keypoint results ``{"image_id", "category_id": 1, "keypoints": [x, y, s] * K, "score"}`` with
        python scalars, grouped by image (first-appearance order), kept poses by decreasing score. No
        ``bbox`` key (it would make ``loadRes`` treat them as box detections).
    """
    p = np.asarray(preds, dtype=np.float64)
    if p.size == 0:
        return []
    if p.ndim != 3 or p.shape[2] != 3:
        raise ValueError(f"preds must be (N, K, 3), got shape {p.shape}")
    n, k, _ = p.shape
    c = np.asarray(centers, dtype=np.float64).reshape(n, 2)
    s = np.asarray(scales, dtype=np.float64).reshape(n, 2)
    bs = np.asarray(box_scores, dtype=np.float64).reshape(n)
    ids = np.asarray(image_ids).reshape(n)
    if sigmas is None:
        if k == COCO_SIGMAS.shape[0]:
            sigmas = COCO_SIGMAS
        else:
            nms = False
    if nms and np.asarray(sigmas).shape[0] != k:
        raise ValueError(f"sigmas have {np.asarray(sigmas).shape[0]} entries but preds have {k} keypoints")

    jscore = p[..., 2]
    valid = jscore > in_vis_thre
    cnt = valid.sum(axis=1)
    kpt_score = np.where(cnt > 0, (jscore * valid).sum(axis=1) / np.maximum(cnt, 1), 0.0)
    score = kpt_score * bs
    area = s[:, 0] * s[:, 1] * PIXEL_STD**2

    groups: dict[int, list[int]] = {}
    for i, img in enumerate(ids.tolist()):
        groups.setdefault(int(img), []).append(i)

    results: list[dict] = []
    for img, idx in groups.items():
        kept = idx
        if nms:
            db = [{"keypoints": p[i], "score": score[i], "area": area[i], "center": c[i]} for i in idx]
            keep = oks_nms(db, oks_thre, sigmas, None)
            if keep:
                kept = [idx[j] for j in keep]
        for i in kept:
            results.append(
                {
                    "image_id": img,
                    "category_id": 1,
                    "keypoints": [float(v) for v in p[i].reshape(-1)],
                    "score": float(score[i]),
                }
            )
    return results
