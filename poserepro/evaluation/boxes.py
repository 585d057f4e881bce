"""COCO person box AP (``COCOeval(iouType="bbox")``, pycocotools) of a person detector, on the standard
annotations or on PRTR's pruned ones (paper §4.1: persons without labelled keypoints removed; 67.0 AP pruned,
50.2 standard on val2017 for PRTR's fine-tuned DETR)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

from ..io import read_json
from .coco import _validate_annotations

#: COCOeval's bbox summary, in its order
BOX_STATS = ("AP", "AP50", "AP75", "APS", "APM", "APL", "AR1", "AR10", "AR", "ARS", "ARM", "ARL")


def pruned_annotations(data: dict, min_keypoints: int = 1) -> dict:
    """``data`` without the non-crowd persons that have fewer than ``min_keypoints`` labelled keypoints (crowd
    regions stay: COCOeval ignores detections on them)."""
    anns = [a for a in data["annotations"]
            if a.get("iscrowd", 0) or int(a.get("num_keypoints", 0)) >= min_keypoints]
    return {**data, "annotations": anns}


def evaluate_boxes(ann_file: str | Path, results: Sequence[dict], min_keypoints: int = 0,
                   quiet: bool = True) -> dict[str, float]:
    """COCO box AP of person detections ``[{"image_id", "category_id": 1, "bbox": [x, y, w, h], "score"}]``.

    Args:
        ann_file: a COCO ``person_keypoints`` file.
        results: the detections (an empty list scores 0).
        min_keypoints: 0 = the standard annotations; 1 = PRTR's pruned ones (:func:`pruned_annotations`).

    Returns:
        the twelve COCOeval numbers under :data:`BOX_STATS`.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    p = Path(ann_file)
    data = read_json(p, "annotation file")
    _validate_annotations(data, p)
    if min_keypoints > 0:
        data = pruned_annotations(data, min_keypoints)
    if not results:
        return dict.fromkeys(BOX_STATS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes([dict(r) for r in results]), "bbox")
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(BOX_STATS, ev.stats)}
