"""A person detector over a split → a COCO detection file (``[{image_id, category_id: 1, bbox, score}]``) that the
two-stage models read as their boxes (``eval --det-file``), checked by the same validation as every box file
(:func:`poserepro.data.boxes.load_detections`), and, where the split has ground truth, its COCO box AP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.boxes import load_detections
from ..errors import PoseReproError
from ..families import ProgressFn, family_of
from ..recipes import Recipe
from .build import resolve_device, with_device


@dataclass
class DetectResult:
    """The written file, its counts, and the box metrics (empty without ground truth, e.g. test-dev)."""

    dets_file: Path
    num_images: int
    num_boxes: int
    metrics: dict[str, float]
    ann_file: Path
    seconds: float


def detect(
    model: nn.Module, recipe: Recipe, out: str | Path, split: str = "val", device: str | None = None,
    ann_file: str | Path | None = None, image_dir: str | Path | None = None, top_k: int | None = None,
    progress: ProgressFn | None = None,
) -> DetectResult:
    """Run the person detector ``model`` on ``split`` and write its COCO detection file to ``out``.

    ``top_k``: keep each image's most confident queries only (``None``: every query, as DETR's evaluation).

    Raises:
        PoseReproError: ``model`` is not a person detector.
        DataError: the written file fails :func:`~poserepro.data.boxes.load_detections` (it never should).
    """
    t0 = time.perf_counter()
    family = family_of(model)
    if not family.detector:
        raise PoseReproError(f"{type(model).__name__} is not a person detector ({type(family).__name__}); "
                             "detect runs person detectors (prtr_detector_*)")
    recipe = with_device(recipe) if device is None else recipe
    dev = torch.device(resolve_device(device) if device is not None else recipe.train.device)
    data = family.eval_data(recipe, split, ann_file=ann_file, image_dir=image_dir)
    loader = DataLoader(data.dataset, batch_size=recipe.eval.batch_size, shuffle=False,
                        num_workers=recipe.data.workers, collate_fn=getattr(data.dataset, "collate", None))
    model.to(dev)
    with torch.inference_mode():
        results = family.predict(model, loader, recipe, False, dev, progress).results or []
    if top_k is not None:
        results = _top_k(results, top_k)
    path = family.write_results(Path(out), results)
    image_ids = [int(im["id"]) for im in data.dataset.images]  # type: ignore[attr-defined]
    load_detections(path, image_ids)  # the validation `eval --det-file` applies
    metrics = family.score(data.ann_file, results, recipe) if data.has_gt else {}
    return DetectResult(path, len(image_ids), len(results), metrics, data.ann_file, time.perf_counter() - t0)


def _top_k(results: list[dict], k: int) -> list[dict]:
    """The ``k`` highest-scoring detections of every image (file order otherwise kept)."""
    by_image: dict[int, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    keep = {id(r) for rs in by_image.values() for r in sorted(rs, key=lambda r: -r["score"])[:k]}
    return [r for r in results if id(r) in keep]
