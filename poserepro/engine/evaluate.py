"""One evaluation routine for every model family: the family's data and read-out, then the dataset's metric
(COCO keypoint AP from a results JSON, or MPII PCKh from an HRNet-style ``pred.mat``)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import DataError
from ..families import EvalData, ProgressFn, family_of
from ..models.fold import fold_batchnorm
from ..recipes import Recipe
from .build import resolve_device, to_channels_last, with_device

#: the metric validation during training follows, per dataset, and its name in ``log.jsonl``
VAL_METRIC = {"mpii": ("PCKh@0.5/Mean", "val/PCKh")}
VAL_METRIC_DEFAULT = ("AP", "val/AP")


@dataclass
class EvalResult:
    """Metrics (empty for splits without ground truth), results file and counts."""

    metrics: dict[str, float]
    results_file: Path
    num_crops: int
    num_results: int
    ann_file: Path
    seconds: float


def evaluate(
    model: nn.Module, recipe: Recipe, out_dir: str | Path, split: str = "val", use_gt_boxes: bool | None = None,
    det_file: str | Path | None = None, flip: bool | None = None, device: str | None = None,
    ann_file: str | Path | None = None, image_dir: str | Path | None = None, progress: ProgressFn | None = None,
    results_name: str | None = None,
) -> EvalResult:
    """Evaluate ``model`` on a split; writes the results file (COCO JSON or MPII ``.mat``) into ``out_dir``.

    Whole-image families (end-to-end PRTR) see whole images: boxes, detector files and flip test do not apply.
    """
    t0 = time.perf_counter()
    recipe = with_device(recipe) if device is None else recipe
    dev = torch.device(resolve_device(device) if device is not None else recipe.train.device)
    family = family_of(model)
    flip = (recipe.eval.flip if flip is None else flip) and not family.whole_image
    data = family.eval_data(recipe, split, use_gt_boxes, det_file, ann_file, image_dir)
    loader = DataLoader(data.dataset, batch_size=recipe.eval.batch_size, shuffle=False,
                        num_workers=recipe.data.workers, collate_fn=getattr(data.dataset, "collate", None))
    model = inference_copy(model, recipe, dev)
    pred = family.predict(model, loader, recipe, flip, dev, progress)
    if recipe.data.dataset == "mpii":
        if pred.crops is None:
            raise DataError("MPII PCKh needs per-person predictions; this model family gives whole-image results")
        return _evaluate_mpii(pred.crops, data, split, flip, out_dir, results_name, t0)
    results = pred.results or []
    name = results_name or f"results_{split}_{family.results_tag(use_gt_boxes, flip)}.json"
    res_path = Path(out_dir) / name
    family.write_results(res_path, results)
    metrics: dict[str, float] = {}
    if data.has_gt:
        metrics = family.score(data.ann_file, results, recipe)
    return EvalResult(metrics, res_path, data.num_inputs, len(results), data.ann_file, time.perf_counter() - t0)


def inference_copy(model: nn.Module, recipe: Recipe, device: torch.device) -> nn.Module:
    """The network as evaluation runs it, on ``device``: an eval-only copy with ``eval.fold_batchnorm`` (BatchNorm
    folded into its convolutions: same outputs up to float rounding, one pass fewer per feature map) and
    ``eval.channels_last`` convolutions (with the BatchNorm folded, the faster layout on this CPU for the ResNet-50
    and BTranspose forwards measured; BTranspose trains NCHW to avoid channels-last BatchNorm). The trained model
    is left as it is (layout included); with both switches off it is returned itself."""
    model.to(device)
    ev = recipe.eval
    if not ev.fold_batchnorm and not ev.channels_last:
        return model
    model = fold_batchnorm(model)[0] if ev.fold_batchnorm else copy.deepcopy(model).eval()
    if ev.channels_last:
        to_channels_last(model)
    return model


def _evaluate_mpii(crops: dict[str, np.ndarray], data: EvalData, split: str, flip: bool, out_dir: str | Path,
                   results_name: str | None, t0: float) -> EvalResult:
    """MPII: predictions (annotated person centres, no rescoring/NMS) → HRNet-style ``pred.mat`` → PCKh
    (``PCKh@0.5/Head`` … ``PCKh@0.5/Mean``, ``PCKh@0.1/…``, fractions) when ``gt_valid.mat`` is there."""
    from ..evaluation.mpii import pckh_metrics, save_predictions

    files = data.files
    preds = crops["preds"][..., :2]
    name = results_name or f"pred_mpii_{split}{'_flip' if flip else ''}.mat"
    res_path = save_predictions(Path(out_dir) / name, preds)
    metrics: dict[str, float] = {}
    if files.has_gt and files.gt_file is not None:
        metrics = pckh_metrics(preds, crops["image_ids"], files.gt_file)
    return EvalResult(metrics, res_path, len(preds), len(preds), files.gt_file or files.ann_file,
                      time.perf_counter() - t0)


def val_metric(recipe: Recipe) -> tuple[str, str]:
    """``(metric key in EvalResult.metrics, its name in log.jsonl)`` that validation during training follows."""
    return VAL_METRIC.get(recipe.data.dataset, VAL_METRIC_DEFAULT)
