"""Person boxes: box -> (centre, scale) and COCO detection-file loading (HRNet conventions).

``scale`` is the box size in units of ``PIXEL_STD`` = 200 pixels, as in the HRNet code base that TransPose,
BTranspose and PRTR descend from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from poserepro.errors import DataError
from poserepro.io import read_json

PIXEL_STD: float = 200.0
PERSON_CATEGORY_ID: int = 1


def box_to_center_scale(
    box_xywh: Sequence[float], aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """Convert a box to the (centre, scale) pair used by top-down pipelines.

    The centre is the box centre. The box is enlarged along its short side until ``w / h == aspect_ratio``
    (``aspect_ratio`` = input width / input height, e.g. 192 / 256), then ``scale = (w, h) / 200 * padding``.

    Args:
        box_xywh: ``(x, y, w, h)`` in image pixels.
        aspect_ratio: model input width / height.
        padding: enlargement factor (1.25 in HRNet / TransPose).

    Returns:
        ``center`` (2,) and ``scale`` (2,), both float32.
    """
    x, y, w, h = (float(v) for v in box_xywh[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], dtype=np.float32) * np.float32(padding)
    return center, scale.astype(np.float32)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_detections(
    path: str | Path, image_ids: Iterable[int] | None = None, score_thr: float = 0.0
) -> dict[int, list[dict]]:
    """Read a COCO detection-results JSON (a list of ``{image_id, category_id, bbox, score}``).

    Only person boxes (category 1) with ``score >= score_thr`` are kept (HRNet's ``IMAGE_THRE``); boxes
    with ``w <= 0`` or ``h <= 0`` are skipped (they cannot be cropped). When ``image_ids`` is given, boxes
    of images not in it are dropped, and a file none of whose image ids are known is an error (it belongs to
    another split). Use :func:`check_detections` to count known / unknown images beforehand.

    Args:
        path: the JSON file.
        image_ids: image ids of the annotation file, or ``None`` to keep every image.
        score_thr: minimum box score.

    Returns:
        ``{image_id: [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]}`` with python
        scalars, boxes in file order.

    Raises:
        DataError: missing file, malformed JSON, wrong structure (names the file and the entry index), an
        empty list, or no image id in common with ``image_ids``.
    """
    p = Path(path)
    data = read_json(p, "detection file", missing="pass a COCO detection results file, or use GT boxes")
    if not isinstance(data, list):
        raise DataError(
            f"detection file {p} must hold a JSON list of {{image_id, category_id, bbox, score}} objects, "
            f"got {type(data).__name__}"
        )
    if not data:
        raise DataError(f"detection file {p} holds no detections")
    out: dict[int, list[dict]] = {}
    for i, d in enumerate(data):
        if not isinstance(d, dict):
            raise DataError(f"detection file {p}: entry {i} is not an object")
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in d]
        if missing:
            raise DataError(f"detection file {p}: entry {i} lacks key(s) {', '.join(missing)}")
        bbox = d["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise DataError(f"detection file {p}: entry {i} bbox must be 4 finite numbers [x, y, w, h]")
        if not _is_number(d["score"]):
            raise DataError(f"detection file {p}: entry {i} score must be a finite number")
        if not isinstance(d["image_id"], int) or isinstance(d["image_id"], bool):
            raise DataError(f"detection file {p}: entry {i} image_id must be an integer")
        if d["category_id"] != PERSON_CATEGORY_ID:
            continue
        score = float(d["score"])
        if score < score_thr:
            continue
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            continue
        img = int(d["image_id"])
        out.setdefault(img, []).append(
            {"image_id": img, "category_id": PERSON_CATEGORY_ID, "bbox": [x, y, w, h], "score": score}
        )
    if image_ids is not None:
        ids = set(image_ids)
        known, unknown = check_detections(out, ids)
        if out and known == 0:
            sample = ", ".join(str(k) for k in sorted(out)[:3])
            raise DataError(
                f"detection file {p}: none of its {unknown} image ids (e.g. {sample}) are in the annotation "
                "file; is it for another split?"
            )
        out = {k: v for k, v in out.items() if k in ids}
    return out


def check_detections(dets: dict[int, list[dict]], image_ids: Iterable[int]) -> tuple[int, int]:
    """Count the images of ``dets`` that are / are not in ``image_ids``.

    Returns:
        ``(known, unknown)`` numbers of distinct image ids.
    """
    ids = set(image_ids)
    known = sum(1 for k in dets if k in ids)
    return known, len(dets) - known
