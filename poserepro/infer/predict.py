"""Keypoints for a batch of images through the model family's own data and read-out (the evaluation path).

Top-down families get person records (box → centre / scale with the recipe's aspect ratio and padding) that
:func:`~poserepro.data.splits.make_dataset` crops with the recipe's affine convention and codec, exactly as
``poserepro eval`` does; their ``predict`` decodes, flip-merges and maps back, then COCO rescoring and OKS-NMS
(rescoring only for layouts without OKS sigmas, e.g. MPII). Whole-image families (end-to-end PRTR) see the whole
images and need no boxes.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.boxes import box_to_center_scale
from ..data.coco import PersonRecord
from ..data.splits import make_dataset
from ..evaluation.postprocess import rescore_and_nms
from ..families import family_of
from ..io import atomic_write_json
from ..recipes import Recipe


@dataclass(frozen=True)
class Frame:
    """One image to run on: a file OpenCV reads, its results id and size ``(width, height)``."""

    path: Path
    image_id: int
    size: tuple[int, int]


def whole_frame_box(size: tuple[int, int]) -> dict:
    """``--whole-image``: the frame itself as the one person box (score 1)."""
    return {"bbox": [0.0, 0.0, float(size[0]), float(size[1])], "score": 1.0}


#: crop padding of a ``--whole-image`` box: the frame already is the crop (the recipe's 1.25 would add a border)
WHOLE_IMAGE_PADDING = 1.0


def person_records_for(recipe: Recipe, frames: Sequence[Frame], boxes: dict[int, list[dict]],
                       padding: float | None = None) -> list[PersonRecord]:
    """One record per box of each frame (``boxes``: image id → ``[{"bbox", "score"}]``)."""
    d = recipe.data
    aspect = d.input_size[0] / d.input_size[1]
    pad = d.bbox_padding if padding is None else padding
    out = []
    for f in frames:
        for b in boxes.get(f.image_id, []):
            c, s = box_to_center_scale(b["bbox"], aspect, pad)
            out.append(PersonRecord(str(f.path), f.image_id, (float(c[0]), float(c[1])), (float(s[0]), float(s[1])),
                                    None, float(b["score"]), 0.0))
    return out


@torch.no_grad()
def predict_frames(
    model: nn.Module, recipe: Recipe, frames: Sequence[Frame], boxes: dict[int, list[dict]] | None,
    flip: bool, device: torch.device, padding: float | None = None,
) -> list[dict]:
    """COCO keypoint results ``{"image_id", "category_id", "keypoints", "score"}`` of ``frames``.

    ``boxes`` (image id → person boxes) is required by top-down families and ignored by whole-image ones.
    """
    family = family_of(model)
    model.to(device).eval()
    if not frames:
        return []
    if family.whole_image:
        return _predict_whole_images(model, recipe, frames, device)
    if boxes is None:
        raise ValueError("a top-down model needs person boxes")
    records = person_records_for(recipe, frames, boxes, padding)
    if not records:
        return []
    dataset = make_dataset(recipe, records, train=False)
    loader = DataLoader(dataset, batch_size=recipe.eval.batch_size, shuffle=False, num_workers=0,
                        collate_fn=getattr(dataset, "collate", None))
    pred = family.predict(model, loader, recipe, flip, device)
    if pred.results is not None:
        return pred.results
    crops = pred.crops or {}
    return rescore_and_nms(crops["preds"], crops["centers"], crops["scales"], crops["scores"], crops["image_ids"],
                           in_vis_thre=recipe.eval.in_vis_thre, sigmas=None, nms=False)


def _whole_image_data(model: nn.Module, recipe: Recipe, frames: Sequence[Frame], tmp: Path) -> DataLoader:
    """The frames through the whole-image family's own ``eval_data`` (its resize, padding and collate): a COCO
    image list of the frames (absolute paths) stands in for the split's annotation file. The synthetic / MPII
    dataset kinds become ``coco`` here so that resolving the split's files generates or checks nothing."""
    info = tmp / "images.json"
    atomic_write_json(info, {"images": [{"id": f.image_id, "file_name": str(Path(f.path).resolve()),
                                         "width": f.size[0], "height": f.size[1]} for f in frames],
                             "annotations": [], "categories": [{"id": 1, "name": "person"}]})
    rec = recipe
    if recipe.data.dataset != "coco":
        rec = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, dataset="coco"))
    data = family_of(model).eval_data(rec, "val", ann_file=info, image_dir=tmp)
    return DataLoader(data.dataset, batch_size=recipe.eval.batch_size, shuffle=False, num_workers=0,
                      collate_fn=getattr(data.dataset, "collate", None))


def _predict_whole_images(model: nn.Module, recipe: Recipe, frames: Sequence[Frame],
                          device: torch.device) -> list[dict]:
    """Whole-image family (end-to-end PRTR): its own read-out on the whole frames."""
    with tempfile.TemporaryDirectory(prefix="poserepro-infer-") as tmp:
        loader = _whole_image_data(model, recipe, frames, Path(tmp))
        return family_of(model).predict(model, loader, recipe, False, device).results or []


@torch.no_grad()
def detect_boxes(detector: nn.Module, recipe: Recipe, frames: Sequence[Frame], device: torch.device,
                 score_thr: float = 0.5) -> dict[int, list[dict]]:
    """Person boxes of ``frames`` from a detector model: any model of a whole-image family whose ``predict`` gives
    COCO detection results (``{"image_id", "bbox", "score"}``), e.g. PRTR's DETR person detector. Returns
    image id → ``[{"bbox", "score"}]`` with ``score >= score_thr``, best first."""
    from ..errors import PoseReproError

    family = family_of(detector)
    if not family.whole_image:
        raise PoseReproError(f"{type(detector).__name__} is not a person detector: --detector takes a model that "
                             "reads whole images and returns boxes (e.g. a prtr_detector_* run)")
    detector.to(device).eval()
    with tempfile.TemporaryDirectory(prefix="poserepro-detect-") as tmp:
        loader = _whole_image_data(detector, recipe, frames, Path(tmp))
        results = family.predict(detector, loader, recipe, False, device).results or []
    if results and "bbox" not in results[0]:
        raise PoseReproError(f"{type(detector).__name__} returns keypoints, not boxes: it is not a person detector "
                             "(end-to-end PRTR needs no --detector; give it no boxes)")
    out: dict[int, list[dict]] = {}
    for r in sorted(results, key=lambda r: -float(r["score"])):
        x, y, w, h = (float(v) for v in r["bbox"])
        if float(r["score"]) >= score_thr and w > 0 and h > 0:
            out.setdefault(int(r["image_id"]), []).append({"bbox": [x, y, w, h], "score": float(r["score"])})
    return out
