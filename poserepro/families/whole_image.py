"""Whole-image families (end-to-end PRTR): whole images in, COCO results out; no person boxes, no flip test.

The model trains with ``model(images, targets)`` (its detector's matched queries pick the persons whose crops
the keypoint Transformer sees) and owns its loss (``model.loss(outputs, targets)``); the read-out is
:func:`poserepro.codecs.whole_image.predict_image_results`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..codecs.whole_image import predict_image_results
from ..data.splits import split_files
from ..data.whole_image import WholeImageDataset
from ..recipes import Recipe
from .base import Criterion, EvalData, ModelFamily, Predictions, ProgressFn, register_family


def whole_image_dataset(recipe: Recipe, split: str, train: bool, ann_file: str | Path | None = None,
                        image_dir: str | Path | None = None) -> WholeImageDataset:
    """The recipe's ``split`` as whole images (resized to ``data.input_size``, or DETR's multi-scale resize with
    ``data.detr_resize=detr``); its ``collate`` makes the loop's batch dicts (padded images + mask)."""
    files = split_files(recipe.data, split)
    return WholeImageDataset(
        ann_file or files.ann_file, image_dir or files.image_dir, recipe.data.input_size, train=train,
        num_joints=recipe.data.num_joints, flip_pairs=recipe.data.keypoint_spec().flip_pairs,
        flip_prob=recipe.data.flip_prob, color_rgb=recipe.data.color_rgb, seed=recipe.train.seed,
        min_keypoints=recipe.data.min_keypoints, resize=recipe.data.detr_resize, scales=recipe.data.detr_scales,
        max_size=recipe.data.detr_max_size,
    )


class WholeImageInputs(ModelFamily):
    """Families whose models see whole images (end-to-end PRTR, the person detector): the splits as
    :func:`whole_image_dataset`, the split's annotation file as ground truth."""

    whole_image = True

    def train_dataset(self, recipe: Recipe) -> WholeImageDataset:
        return whole_image_dataset(recipe, "train", train=True)

    def eval_data(self, recipe: Recipe, split: str, use_gt_boxes: bool | None = None,
                  det_file: str | Path | None = None, ann_file: str | Path | None = None,
                  image_dir: str | Path | None = None) -> EvalData:
        files = split_files(recipe.data, split)
        ds = whole_image_dataset(recipe, split, train=False, ann_file=ann_file, image_dir=image_dir)
        gt = Path(ann_file) if ann_file else files.ann_file
        return EvalData(ds, gt, files.has_gt if ann_file is None else True, files, len(ds))

    def criterion(self, recipe: Recipe, model: nn.Module, device: torch.device) -> Criterion:
        """The model owns its loss (matching included): ``model.loss(outputs, targets)``."""
        return lambda outputs, batch: model.loss(outputs, batch["targets"])

    def image_results(self, model: nn.Module, images: torch.Tensor, mask: torch.Tensor | None,
                      batch: dict[str, Any], recipe: Recipe) -> list[dict]:
        """COCO result dicts of one batch of whole images (padding ``mask`` or ``None``)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, model: nn.Module, loader: DataLoader, recipe: Recipe, flip: bool, device: torch.device,
                progress: ProgressFn | None = None) -> Predictions:
        model.eval()
        results: list[dict] = []
        for step, batch in enumerate(loader):
            mask = batch["mask"].to(device) if "mask" in batch else None
            results += self.image_results(model, batch["image"].to(device), mask, batch, recipe)
            if progress:
                progress({"step": step + 1, "steps": len(loader)})
        return Predictions(results)


@register_family
class WholeImageFamily(WholeImageInputs):
    """``output_type = "e2e"``."""

    output_types = ("e2e",)
    whole_image = True
    not_exportable = (
        "end-to-end PRTR crops each image's most confident detector queries with indices that depend on the data "
        "(top-k over queries, then per-person grid_sample on the gathered boxes); a fixed graph would bake in one "
        "image's person count. Export its detector and keypoint halves separately instead (not implemented)")

    def forward(self, model: nn.Module, batch: dict[str, Any], train: bool) -> Any:
        mask = batch.get("mask")
        return model(batch["image"], batch["targets"], mask=mask) if train else model(batch["image"], mask=mask)

    def image_results(self, model: nn.Module, images: torch.Tensor, mask: torch.Tensor | None,
                      batch: dict[str, Any], recipe: Recipe) -> list[dict]:
        return predict_image_results(model, images, batch["image_id"], batch["orig_size"],
                                     in_vis_thre=recipe.eval.in_vis_thre, mask=mask)

    def results_tag(self, use_gt_boxes: bool | None, flip: bool) -> str:
        return "e2e"
