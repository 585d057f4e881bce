"""COCO test-dev 2017 submission files.

test-dev has no public ground truth, so nothing here computes AP: we check a results list against the image
ids of ``image_info_test-dev2017.json`` (inside ``image_info_test2017.zip``), then write
``person_keypoints_test-dev2017_<alg>_results.json`` and its zip for upload (see :data:`SUBMIT_HELP`).
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poserepro.errors import DataError
from poserepro.io import atomic_write_bytes, atomic_write_text, read_json

SUBMIT_HELP = (
    "Upload the zip to the COCO keypoint challenge (test-dev2017) on the COCO evaluation server, hosted on "
    "CodaLab (see https://cocodataset.org/#keypoints-eval, 'Upload Results to Evaluation Server'): create an "
    "account, open the keypoints challenge, choose the test-dev phase and submit the zip. test-dev has no "
    "public ground truth, so poserepro computes no AP for it; the server reports AP/AR after evaluation."
)

_ALG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def load_image_info(path: str | Path) -> set[int]:
    """Image ids of ``image_info_test-dev2017.json`` (or any COCO image-info file); validated.

    Raises:
        DataError: missing / unreadable file, no ``images`` list, or an image without an integer ``id``.
    """
    p = Path(path)
    data = read_json(p, "image-info file", missing="run `poserepro data download coco --parts test-info`")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"{p} has no 'images' list: not a COCO image-info file")
    ids: set[int] = set()
    for i, img in enumerate(data["images"]):
        iid = img.get("id") if isinstance(img, dict) else None
        if not isinstance(iid, int) or isinstance(iid, bool):
            raise DataError(f"{p}: images[{i}] has no integer 'id'")
        ids.add(iid)
    if not ids:
        raise DataError(f"{p} lists no images")
    return ids


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _problem(r: Any, image_ids: set[int], num_keypoints: int) -> str | None:
    if not isinstance(r, dict):
        return f"is a {type(r).__name__}, not an object"
    iid = r.get("image_id")
    if not isinstance(iid, int) or isinstance(iid, bool):
        return f"has image_id {iid!r}, expected an integer"
    if iid not in image_ids:
        return f"has image_id {iid}, which is not a test-dev image"
    if r.get("category_id") != 1:
        return f"has category_id {r.get('category_id')!r}, expected 1 (person)"
    kps = r.get("keypoints")
    if not isinstance(kps, (list, tuple)) or len(kps) != 3 * num_keypoints:
        n = len(kps) if isinstance(kps, (list, tuple)) else type(kps).__name__
        return f"has {n} keypoint values, expected {3 * num_keypoints} ({num_keypoints} x [x, y, score])"
    if not all(_finite(v) for v in kps):
        return "has a non-finite keypoint value"
    if not _finite(r.get("score")):
        return f"has score {r.get('score')!r}, expected a finite number"
    if "bbox" in r:
        return "has a 'bbox' key: drop it (pycocotools' loadRes would then derive the area from the box)"
    return None


def validate_submission(
    results: Sequence[dict[str, Any]], image_ids: set[int], num_keypoints: int = 17
) -> dict[str, int]:
    """Check a keypoint results list for test-dev.

    Every entry must be ``{image_id: known id, category_id: 1, keypoints: 3*num_keypoints finite numbers,
    score: finite}`` without a ``bbox`` key.

    Returns:
        ``{"results": n, "images_covered": k, "images_total": m}``.

    Raises:
        DataError: naming the first offending index and how many entries are invalid.
    """
    if not isinstance(results, (list, tuple)):
        raise DataError(f"results must be a list of dicts, got {type(results).__name__}")
    if not results:
        raise DataError("the results list is empty: nothing to submit")
    first: tuple[int, str] | None = None
    bad = 0
    for i, r in enumerate(results):
        why = _problem(r, image_ids, num_keypoints)
        if why is not None:
            bad += 1
            if first is None:
                first = (i, why)
    if first is not None:
        raise DataError(f"{bad} of {len(results)} results are invalid; first: result {first[0]} {first[1]}")
    covered = {r["image_id"] for r in results}
    return {"results": len(results), "images_covered": len(covered), "images_total": len(image_ids)}


def write_submission(
    results: Sequence[dict[str, Any]], out_dir: str | Path, alg_name: str, image_ids: set[int]
) -> tuple[Path, Path]:
    """Validate ``results`` and write ``person_keypoints_test-dev2017_<alg_name>_results.json`` and its zip.

    Both files are written atomically (temporary file + rename) into ``out_dir``.

    Returns:
        ``(json_path, zip_path)``.
    """
    if not _ALG.match(alg_name or ""):
        raise DataError(f"algorithm name {alg_name!r} must use only letters, digits, '.', '_' or '-'")
    validate_submission(results, image_ids)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"person_keypoints_test-dev2017_{alg_name}_results"
    json_path, zip_path = out / f"{stem}.json", out / f"{stem}.zip"
    clean = [
        {
            "image_id": int(r["image_id"]),
            "category_id": 1,
            "keypoints": [float(v) for v in r["keypoints"]],
            "score": float(r["score"]),
        }
        for r in results
    ]
    text = json.dumps(clean)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(json_path.name, text)
    atomic_write_text(json_path, text)
    atomic_write_bytes(zip_path, buf.getvalue())
    return json_path, zip_path
