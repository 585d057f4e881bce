"""The person-detection family (PRTR's detector, paper §4.1): whole images in, COCO person boxes out.

Training: DETR's set criterion (Hungarian matching ``1·class + 5·L1 + 2·GIoU``; CE with no-object weight 0.1 +
5·L1 + 2·GIoU on every decoder layer) on the persons of each image; persons with fewer than ``data.min_keypoints``
labelled keypoints are dropped from the targets (the detector recipes: 1, the paper's "skipped person annotations
without visible keypoints"). Read-out: DETR's post-processing (person probability, boxes in original pixels) →
COCO detection results; metrics: COCO box AP (``iouType="bbox"``) on the standard annotations (``AP``, ...; the
paper's 50.2) and, with ``data.min_keypoints``, on the pruned ones (``AP_kpt``, ...; the paper's 67.0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..evaluation.boxes import evaluate_boxes
from ..io import atomic_write_text
from ..models.person_detr import box_results
from ..recipes import Recipe
from .base import register_family
from .whole_image import WholeImageInputs


@register_family
class DetectionFamily(WholeImageInputs):
    """``output_type = "detection"``."""

    output_types = ("detection",)
    whole_image = True
    detector = True

    def forward(self, model: nn.Module, batch: dict[str, Any], train: bool) -> Any:
        return model(batch["image"], mask=batch.get("mask"))

    def image_results(self, model: nn.Module, images: torch.Tensor, mask: torch.Tensor | None,
                      batch: dict[str, Any], recipe: Recipe) -> list[dict]:
        return box_results(model(images, mask=mask), batch["image_id"], batch["orig_size"])

    def write_results(self, path: Path, results: list[dict]) -> Path:
        atomic_write_text(path, json.dumps(results))
        return path

    def score(self, ann_file: Path, results: list[dict], recipe: Recipe) -> dict[str, float]:
        metrics = evaluate_boxes(ann_file, results)
        if recipe.data.min_keypoints > 0:
            pruned = evaluate_boxes(ann_file, results, min_keypoints=recipe.data.min_keypoints)
            metrics.update({f"{k}_kpt": v for k, v in pruned.items()})
        return metrics

    def results_tag(self, use_gt_boxes: bool | None, flip: bool) -> str:
        return "boxes"
