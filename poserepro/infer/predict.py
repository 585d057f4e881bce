"""Keypoints for a batch of images through the model family's own data and read-out (the evaluation path).

Top-down families get person records (box → centre / scale with the recipe's aspect ratio and padding) that
:func:`~poserepro.data.splits.make_dataset` crops with the recipe's affine convention and codec, exactly as
``poserepro eval`` does; their ``predict`` decodes, flip-merges and maps back, then COCO rescoring and OKS-NMS
(rescoring only for layouts without OKS sigmas, e.g. MPII). Whole-image families (end-to-end PRTR) see the whole
images and need no boxes.
"""

from __future__ import annotations

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
from ..data.whole_image import WholeImageDataset
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


def _predict_whole_images(model: nn.Module, recipe: Recipe, frames: Sequence[Frame],
                          device: torch.device) -> list[dict]:
    """Whole-image family: a COCO image list of the frames (absolute paths) read by its own dataset."""
    with tempfile.TemporaryDirectory(prefix="poserepro-infer-") as tmp:
        info = Path(tmp) / "images.json"
        atomic_write_json(info, {"images": [{"id": f.image_id, "file_name": str(Path(f.path).resolve()),
                                             "width": f.size[0], "height": f.size[1]} for f in frames],
                                 "annotations": []})
        d = recipe.data
        ds = WholeImageDataset(info, Path(tmp), d.input_size, train=False, num_joints=d.num_joints,
                               color_rgb=d.color_rgb)
        loader = DataLoader(ds, batch_size=recipe.eval.batch_size, shuffle=False, num_workers=0,
                            collate_fn=ds.collate)
        return family_of(model).predict(model, loader, recipe, False, device).results or []
