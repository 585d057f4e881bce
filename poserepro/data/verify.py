"""Check a dataset tree under ``root/<name>/`` (what ``poserepro data verify`` prints).

Statuses: ``ok`` (content checked and, for archives with known checksums, the archive hash verified),
``unverified`` (content looks right but no archive hash backs it: extracted by hand, linked with ``--from``
from an extracted folder, or an archive without a published checksum such as MPII's), ``missing`` and
``corrupt`` (wrong image count, unreadable / malformed annotation file, images referenced by an annotation
file absent, or a stale marker).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poserepro.data.datasets_catalog import COCO_IMAGE_COUNTS, CatalogEntry, get_entries
from poserepro.data.download import manifest_path, marker_path, read_marker
from poserepro.errors import DataError, PoseReproError
from poserepro.io import read_json

STATUSES = ("ok", "missing", "corrupt", "unverified")
_IMAGE_EXT = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Row:
    """One line of the verify table."""

    part: str
    status: str
    detail: str


def _count_images(folder: Path) -> int:
    n = 0
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.lower().endswith(_IMAGE_EXT):
                n += 1
    return n


def _marker_state(ds_root: Path, entry: CatalogEntry) -> tuple[str, str]:
    """('ok' | 'unverified' | 'corrupt', detail) from the part's verified marker."""
    marker = read_marker(marker_path(ds_root, entry))
    if marker is None:
        return "unverified", "no verified marker (not fetched by `poserepro data download`)"
    sha = marker.get("sha256")
    if sha is None:
        return "unverified", f"linked from {marker.get('source', 'an extracted folder')}; no archive hash"
    if entry.sha256:
        if sha != entry.sha256:
            return "corrupt", f"marker sha256 {sha} differs from the catalog's {entry.sha256}: re-download"
        return "ok", "archive sha256 verified"
    return "unverified", f"no published checksum; sha256 {sha[:12]}... recorded in {manifest_path(ds_root)}"


def _pick(items: list[Any], sample: int, seed: int) -> tuple[list[Any], bool]:
    """All items when at most ``sample``, else a seeded random sample (returns (items, sampled))."""
    if len(items) <= sample:
        return items, False
    return random.Random(seed).sample(items, sample), True


def _check_refs(names: list[str], folder: Path, sample: int, seed: int) -> tuple[bool, str]:
    """Check that the referenced image files exist in ``folder``."""
    if not folder.is_dir():
        return True, f"images not checked ({folder.name}/ missing)"
    chosen, sampled = _pick(sorted(set(names)), sample, seed)
    absent = [n for n in chosen if not (folder / n).is_file()]
    how = f"{len(chosen)} sampled of {len(set(names))}" if sampled else f"all {len(chosen)}"
    if absent:
        return False, f"{len(absent)} of {how} referenced images missing in {folder.name}/ (e.g. {absent[0]})"
    return True, f"{how} referenced images present"


def _load_json(path: Path) -> tuple[Any, str | None]:
    try:
        return read_json(path, path.name), None
    except DataError as err:
        return None, str(err)


def _combine(content_ok: bool, content_detail: str, marker: tuple[str, str]) -> tuple[str, str]:
    if not content_ok:
        return "corrupt", content_detail
    status, mdetail = marker
    return status, f"{content_detail}; {mdetail}"


# ---------------------------------------------------------------------------------------------- COCO
def _verify_coco(root: Path, counts: dict[str, int], sample: int, seed: int) -> list[Row]:
    ds = root / "coco"
    entries = get_entries("coco")
    rows: list[Row] = []
    for part, split in (("train", "train2017"), ("val", "val2017"), ("test", "test2017")):
        folder = ds / split
        if not folder.is_dir():
            rows.append(Row(split, "missing", f"run `poserepro data download coco --parts {part}`"))
            continue
        n, want = _count_images(folder), counts[split]
        ok = n == want
        detail = f"{n} images" if ok else f"{n} of {want} images"
        status, detail = _combine(ok, detail, _marker_state(ds, entries[part]))
        rows.append(Row(split, status, detail))

    ann_marker = _marker_state(ds, entries["annotations"])
    for split in ("train2017", "val2017"):
        name = f"person_keypoints_{split}.json"
        path = ds / "annotations" / name
        if not path.is_file():
            rows.append(
                Row(
                    f"annotations/{name}", "missing", "run `poserepro data download coco --parts annotations`"
                )
            )
            continue
        data, err = _load_json(path)
        if err is None and not (
            isinstance(data, dict) and {"images", "annotations", "categories"} <= set(data)
        ):
            err = "lacks images / annotations / categories"
        if err is None and not any(
            isinstance(c, dict) and c.get("name") == "person" and len(c.get("keypoints", [])) == 17
            for c in data["categories"]
        ):
            err = "has no 'person' category with 17 keypoints"
        if err is not None:
            rows.append(Row(f"annotations/{name}", "corrupt", err))
            continue
        files = [im.get("file_name", "") for im in data["images"] if isinstance(im, dict)]
        ok, ref = _check_refs(files, ds / split, sample, seed)
        detail = f"{len(data['images'])} images, {len(data['annotations'])} annotations; {ref}"
        status, detail = _combine(ok, detail, ann_marker)
        rows.append(Row(f"annotations/{name}", status, detail))

    info = ds / "annotations" / "image_info_test-dev2017.json"
    label = "annotations/image_info_test-dev2017.json"
    if not info.is_file():
        rows.append(Row(label, "missing", "run `poserepro data download coco --parts test-info`"))
    else:
        data, err = _load_json(info)
        if err is None and not (isinstance(data, dict) and isinstance(data.get("images"), list)):
            err = "has no 'images' list"
        if err is not None:
            rows.append(Row(label, "corrupt", err))
        else:
            files = [im.get("file_name", "") for im in data["images"] if isinstance(im, dict)]
            ok, ref = _check_refs(files, ds / "test2017", sample, seed)
            status, detail = _combine(
                ok, f"{len(files)} test-dev images; {ref}", _marker_state(ds, entries["test-info"])
            )
            rows.append(Row(label, status, detail))
    return rows


# ---------------------------------------------------------------------------------------------- MPII
def _verify_mpii(root: Path, sample: int, seed: int) -> list[Row]:
    from poserepro.data.mpii import load_mpii_annotations
    from poserepro.data.mpii_gt import load_gt_valid

    ds = root / "mpii"
    entries = get_entries("mpii")
    rows: list[Row] = []
    images = ds / "images"
    if not images.is_dir():
        rows.append(Row("images", "missing", "run `poserepro data download mpii --parts images`"))
    else:
        n = _count_images(images)
        status, detail = _combine(
            n > 0, f"{n} images" if n else "no images", _marker_state(ds, entries["images"])
        )
        rows.append(Row("images", status, detail))

    official = ds / "annot" / "mpii_human_pose_v1_u12_2"
    if not official.is_dir():
        rows.append(
            Row("annot (official .mat)", "missing", "run `poserepro data download mpii --parts annotations`")
        )
    else:
        mats = sorted(p.name for p in official.glob("*.mat"))
        status, detail = _combine(
            bool(mats), ", ".join(mats) or "no .mat file", _marker_state(ds, entries["annotations"])
        )
        rows.append(Row("annot (official .mat)", status, detail))

    valid_len: int | None = None
    for split in ("train", "valid"):
        path = ds / "annot" / f"{split}.json"
        label = f"annot/{split}.json"
        if not path.is_file():
            rows.append(
                Row(
                    label,
                    "missing",
                    "HRNet-style JSON: `poserepro data download mpii --parts json` says where",
                )
            )
            continue
        try:
            annots = load_mpii_annotations(path, hrnet_adjust=False)
        except PoseReproError as err:
            rows.append(Row(label, "corrupt", str(err)))
            continue
        if split == "valid":
            valid_len = len(annots)
        ok, ref = _check_refs([a["image"] for a in annots], images, sample, seed)
        rows.append(Row(label, "ok" if ok else "corrupt", f"{len(annots)} persons; {ref}" if ok else ref))

    gt_path = ds / "annot" / "gt_valid.mat"
    if not gt_path.is_file():
        rows.append(Row("annot/gt_valid.mat", "missing", "needed for PCKh; comes with the HRNet-style JSON"))
    else:
        try:
            gt = load_gt_valid(gt_path)
        except PoseReproError as err:
            rows.append(Row("annot/gt_valid.mat", "corrupt", str(err)))
        else:
            if valid_len is not None and valid_len != gt.num_persons:
                rows.append(
                    Row(
                        "annot/gt_valid.mat",
                        "corrupt",
                        f"{gt.num_persons} persons but valid.json has {valid_len}",
                    )
                )
            else:
                rows.append(Row("annot/gt_valid.mat", "ok", f"{gt.num_persons} persons with head boxes"))
    return rows


def verify_dataset(
    name: str,
    root: str | Path,
    *,
    expected_counts: dict[str, int] | None = None,
    sample: int = 1000,
    seed: int = 0,
) -> list[Row]:
    """Check ``root/<name>/`` and return one :class:`Row` per folder / annotation file.

    Args:
        name: ``"coco"`` or ``"mpii"``.
        root: data root (the folder that contains ``coco/`` / ``mpii/``).
        expected_counts: override of the COCO image counts (``{"val2017": 5000, ...}``), for small trees.
        sample: annotation files referencing at most this many images are checked fully, larger ones by a
            seeded random sample of this size.
        seed: seed of that sample.
    """
    get_entries(name)  # UnknownNameError for a bad name
    root = Path(root)
    if name == "coco":
        counts = {**COCO_IMAGE_COUNTS, **(expected_counts or {})}
        return _verify_coco(root, counts, sample, seed)
    return _verify_mpii(root, sample, seed)
