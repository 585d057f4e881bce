"""Simulated person detector for the val split (HRNet-style box file for top-down evaluation).

True boxes are jittered, sometimes missed (more often for hard people) or duplicated with a lower score, and
false positives away from every person are added; each image has its own random stream.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import DET_CODE, SynthConfig, rng_for


def _iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two ``[x, y, w, h]`` boxes (0 when both are empty)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def make_detections(
    cfg: SynthConfig, images: list[dict[str, Any]], anns_per_image: list[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """HRNet-style person detections for val: jittered true boxes, misses, duplicates, false positives."""
    w, h = float(cfg.image_size[0]), float(cfg.image_size[1])
    dets: list[dict[str, Any]] = []

    def clip_box(x: float, y: float, bw: float, bh: float) -> list[float] | None:
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(w, x + bw), min(h, y + bh)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]

    for index, (im, anns) in enumerate(zip(images, anns_per_image)):
        rng = rng_for(cfg.seed, DET_CODE, index)
        mine: list[tuple[float, list[float]]] = []
        for ann in anns:
            x, y, bw, bh = ann["bbox"]
            hard = ann["num_keypoints"] < 5 or ann["area"] < 200
            if rng.random() < (0.15 if hard else 0.03):
                continue  # missed
            for dup in range(2):
                if dup == 1 and rng.random() >= 0.12:
                    break
                jit = 0.06 if dup == 0 else 0.15
                cx = x + bw / 2 + rng.normal(0.0, jit) * bw
                cy = y + bh / 2 + rng.normal(0.0, jit) * bh
                nw = bw * math.exp(rng.normal(0.0, jit * 1.2))
                nh = bh * math.exp(rng.normal(0.0, jit * 1.2))
                score = 0.6 + 0.4 * float(rng.beta(4.0, 1.5)) - (0.1 * rng.random() if hard else 0.0)
                if dup == 1:
                    score *= rng.uniform(0.3, 0.75)
                box = clip_box(cx - nw / 2, cy - nh / 2, nw, nh)
                if box is not None:
                    mine.append((float(np.clip(score, 0.0, 1.0)), box))
        for _ in range(int(rng.poisson(0.8))):
            for _try in range(5):
                bw = rng.uniform(0.08, 0.45) * w
                bh = min(h, bw * rng.uniform(1.2, 3.0))
                box = clip_box(rng.uniform(0, w - bw), rng.uniform(0, max(h - bh, 1.0)), bw, bh)
                if box is not None and all(_iou(box, a["bbox"]) < 0.3 for a in anns):
                    score = rng.uniform(0.02, 0.5) if rng.random() < 0.85 else rng.uniform(0.5, 0.85)
                    mine.append((float(score), box))
                    break
        mine.sort(key=lambda t: -t[0])
        for score, box in mine:
            dets.append({"image_id": im["id"], "category_id": 1, "bbox": box, "score": round(score, 4)})
    return dets
