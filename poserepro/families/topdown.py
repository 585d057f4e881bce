"""Top-down families: person crops in, per-crop keypoints out, mapped back through each crop's affine, then
COCO rescoring + OKS-NMS (or, on MPII, the per-person predictions PCKh scores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.splits import make_dataset, person_records
from ..evaluation.postprocess import rescore_and_nms
from ..recipes import Recipe
from .base import EvalData, ModelFamily, Predictions, ProgressFn


class TopDownFamily(ModelFamily):
    """Crops from ``person_records`` / ``make_dataset``; subclasses give :meth:`readout` and :meth:`criterion`."""

    def train_dataset(self, recipe: Recipe) -> Dataset:
        records, _ = person_records(recipe, "train")
        return make_dataset(recipe, records, train=True)

    def eval_data(self, recipe: Recipe, split: str, use_gt_boxes: bool | None = None,
                  det_file: str | Path | None = None, ann_file: str | Path | None = None,
                  image_dir: str | Path | None = None) -> EvalData:
        records, files = person_records(recipe, split, use_gt_boxes, det_file, ann_file, image_dir)
        return EvalData(make_dataset(recipe, records, train=False), files.ann_file, files.has_gt, files, len(records))

    def readout(self, model: nn.Module, outputs: Any, flipped: Any, batch: dict[str, Any],
                recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
        """``(keypoints (B, K, 2) in image pixels, scores (B, K))`` of one batch of crops."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, model: nn.Module, loader: DataLoader, recipe: Recipe, flip: bool, device: torch.device,
                progress: ProgressFn | None = None) -> Predictions:
        model.eval()
        out: dict[str, list[np.ndarray]] = {k: [] for k in ("preds", "centers", "scales", "scores", "image_ids")}
        total = len(loader)
        for step, batch in enumerate(loader):
            images = batch["image"].to(device)
            outputs = model(images)
            flipped = model(images.flip(3)) if flip else None
            img_pts, maxvals = self.readout(model, outputs, flipped, batch, recipe)
            out["preds"].append(np.concatenate([img_pts, maxvals[..., None]], axis=-1))
            out["centers"].append(batch["center"].numpy())
            out["scales"].append(batch["scale"].numpy())
            out["scores"].append(batch["score"].numpy())
            out["image_ids"].append(batch["image_id"].numpy())
            if progress:
                progress({"step": step + 1, "steps": total})
        crops = {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in out.items()}
        if recipe.data.dataset == "mpii":  # PCKh scores every annotated person: no rescoring, no NMS
            return Predictions(None, crops)
        results = rescore_and_nms(
            crops["preds"], crops["centers"], crops["scales"], crops["scores"], crops["image_ids"],
            in_vis_thre=recipe.eval.in_vis_thre, oks_thre=recipe.eval.oks_thre,
            sigmas=recipe.data.keypoint_spec().sigmas, nms=recipe.eval.nms,
        )
        return Predictions(results, crops)
