"""Files of a synthetic dataset: the folder layout, the COCO keypoint files, the detection file and the config.

Every file is written atomically; ``synth_config.json`` is written last and marks a complete dataset, so
:func:`remove_marker` drops a stale one before a new run starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...errors import DataError
from ...io import atomic_write_bytes
from .config import GENERATOR_VERSION, PERSON_CATEGORY, SPLITS, VAL_ID_OFFSET, SynthConfig

#: Name of the config file that marks a complete dataset.
MARKER_NAME = "synth_config.json"


def dump_json(obj: Any) -> bytes:
    """Deterministic compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


def prepare_dirs(root: Path) -> dict[str, Path]:
    """Create the dataset folders under ``root`` (keys ``ann``, ``det``, ``train``, ``val``) and probe writing."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        dirs = {
            "ann": root / "annotations",
            "det": root / "detections",
            **{s: root / "images" / s for s in SPLITS},
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        probe = root / f".write_probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataError(
            f"cannot write the synthetic dataset to {root}: {e.strerror or e}; pick a writable out_dir"
        ) from None
    return dirs


def remove_marker(root: Path) -> Path:
    """Delete ``root/synth_config.json`` if present (the dataset is incomplete until this run ends); return it."""
    marker = root / MARKER_NAME
    try:
        marker.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        msg = f"cannot replace {marker}: {e.strerror or e}; remove it or pick another out_dir"
        raise DataError(msg) from None
    return marker


def image_records(split: str, count: int, width: int, height: int) -> list[dict[str, Any]]:
    """The COCO ``images`` entries of ``split``: ids from 1 (train) or ``VAL_ID_OFFSET + 1`` (val)."""
    offset = 0 if split == "train" else VAL_ID_OFFSET
    records = []
    for index in range(count):
        image_id = offset + index + 1
        records.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": width, "height": height})
    return records


def write_annotations(
    path: Path,
    split: str,
    seed: int,
    images: list[dict[str, Any]],
    anns_per_image: list[list[dict[str, Any]]],
) -> int:
    """Write the COCO keypoint file of ``split`` to ``path``; return the number of person annotations."""
    ann_id = 0 if split == "train" else VAL_ID_OFFSET
    annotations: list[dict[str, Any]] = []
    for im, anns in zip(images, anns_per_image):
        for a in anns:
            ann_id += 1
            head = {"id": ann_id, "image_id": im["id"], "category_id": 1}
            annotations.append({**head, **a, "iscrowd": 0, "segmentation": []})
    coco = {
        "info": {
            "description": "poserepro procedural synthetic 2-D pose benchmark",
            "version": str(GENERATOR_VERSION),
            "split": split,
            "seed": int(seed),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [PERSON_CATEGORY],
    }
    atomic_write_bytes(path, dump_json(coco))
    return len(annotations)


def write_detections(path: Path, detections: list[dict[str, Any]]) -> None:
    """Write the detector-style box list (COCO results format) to ``path``."""
    atomic_write_bytes(path, dump_json(detections))


def write_config(marker: Path, config: SynthConfig) -> None:
    """Write the config plus ``generator_version`` as sorted, indented JSON: the completion marker."""
    cfg_json = {**asdict(config), "generator_version": GENERATOR_VERSION}
    cfg_text = json.dumps(cfg_json, indent=2, sort_keys=True, default=lambda o: o.item()) + "\n"
    atomic_write_bytes(marker, cfg_text.encode())
