"""Person boxes for ``poserepro infer --boxes FILE``, matched to the inputs.

Two formats are read:

* a COCO detection-results list ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`` (what
  ``eval --det-file`` reads and detectors write), matched by ``image_id`` to the images' ids
  (:mod:`poserepro.infer.sources`: the number in the file name, e.g. ``000000000785.jpg`` → 785) or, for a
  video, to the frame index (0-based);
* a COCO annotation file ``{"images": [...], "annotations": [...]}``: its ``images`` give the ids of the input
  images by file name (base name), its person annotations' boxes are used with score 1.

Only person boxes (category 1) with positive width and height and a score ``>= score_thr`` are kept. A file none
of whose images is among the inputs is an error (it is for other images); inputs without a box are reported by
the caller as skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..data.boxes import PERSON_CATEGORY_ID, load_detections
from ..errors import DataError
from ..io import read_json


@dataclass
class BoxFile:
    """Boxes by image id (``[{"bbox", "score"}]``), and for an annotation file the ids of its file names."""

    path: Path
    by_id: dict[int, list[dict]]
    ids_by_name: dict[str, int] | None = None


def load_box_file(path: str | Path, score_thr: float = 0.0) -> BoxFile:
    """Read ``path`` (a detection list or a COCO annotation file); malformed content is a one-line DataError."""
    p = Path(path)
    data = read_json(p, "box file", missing="pass a COCO detection JSON (or annotation file) with --boxes")
    if isinstance(data, list):
        return BoxFile(p, load_detections(p, score_thr=score_thr))
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise DataError(f"box file {p} is neither a detection list [{{image_id, category_id, bbox, score}}] nor a "
                        "COCO annotation file with 'images' and 'annotations'")
    names: dict[str, int] = {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "file_name" not in im or not _is_int(im.get("id")):
            raise DataError(f"box file {p}: images entry {i} needs an integer 'id' and a 'file_name'")
        names[Path(str(im["file_name"])).name] = int(im["id"])
    by_id: dict[int, list[dict]] = {}
    for i, a in enumerate(data["annotations"]):
        box = a.get("bbox") if isinstance(a, dict) else None
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise DataError(f"box file {p}: annotation {i} needs a bbox of 4 finite numbers [x, y, w, h]")
        if not _is_int(a.get("image_id")):
            raise DataError(f"box file {p}: annotation {i} needs an integer 'image_id'")
        if a.get("category_id", 1) != PERSON_CATEGORY_ID or a.get("iscrowd", 0) or box[2] <= 0 or box[3] <= 0:
            continue
        by_id.setdefault(int(a["image_id"]), []).append({"bbox": [float(v) for v in box], "score": 1.0})
    return BoxFile(p, by_id, names)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_matches(boxes: BoxFile, input_ids: list[int], what: str) -> None:
    """Raise :class:`DataError` when no box of ``boxes`` belongs to any of ``input_ids`` (``what``: "images")."""
    if not boxes.by_id:
        raise DataError(f"box file {boxes.path} holds no usable person box (category_id 1, width and height > 0, "
                        "score >= --box-thr, not crowd): check its boxes are [x, y, w, h] and --box-thr")
    if input_ids and not set(boxes.by_id) & set(input_ids):
        sample = ", ".join(str(k) for k in sorted(boxes.by_id)[:3]) or "none"
        mine = ", ".join(str(k) for k in input_ids[:3])
        raise DataError(f"box file {boxes.path} has boxes for image ids {sample}... but none for the {len(input_ids)} "
                        f"{what} given (ids {mine}...): is it for other images? (ids are the numbers in the file "
                        "names, or positions 1..N; see `poserepro infer --help`)")
