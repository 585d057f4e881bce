"""What DINO pretrains on: an image folder, COCO person crops, or the embedded synthetic benchmark's persons.

* ``folder``: every image file below ``root`` (the ``ImageFolder`` layout ``root/<class>/<image>``; the class
  folders are ignored). ImageNet train is the paper's choice; it has no public URL (`poserepro data list`).
* ``coco_persons``: the person boxes of a COCO keypoint file (GT boxes, enlarged by ``bbox_padding`` to the global
  crop's aspect ratio), each cut out as its own image.
* ``synthetic``: ``coco_persons`` over the embedded synthetic benchmark at ``root`` (generated on demand).

A sample is the list of multi-crop views of one image; its random stream is seeded by (seed, epoch, index), so a
run is the same whatever the number of loader workers, and a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.boxes import box_to_center_scale
from ..data.coco import gt_person_records, read_image
from ..data.splits import ensure_synthetic
from ..errors import DataError
from ..io import read_json
from ..recipes import DataCfg
from .augment import MultiCropAugment, eval_view
from .recipe import DinoDataCfg

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PIXEL_STD = 200.0


@dataclass(frozen=True)
class Source:
    """One image to draw views from: a file, and optionally a person region ``(cx, cy, w, h)`` in it."""

    path: str
    region: tuple[float, float, float, float] | None = None


def load_source(src: Source) -> np.ndarray:
    """The RGB pixels of ``src``: the whole image, or its person region (outside the image: black)."""
    img = read_image(src.path, rgb=True)
    if src.region is None:
        return img
    cx, cy, w, h = src.region
    out_w, out_h = max(int(round(w)), 1), max(int(round(h)), 1)
    m = np.array([[1.0, 0.0, -(cx - w / 2)], [0.0, 1.0, -(cy - h / 2)]], dtype=np.float64)
    return cv2.warpAffine(img, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def folder_sources(root: str | Path) -> list[Source]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist (ImageNet has no public URL: see `poserepro data "
                        "list`; or use data.source=synthetic / coco_persons)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"image folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    return [Source(str(p)) for p in files]


def person_sources(ann_file: str | Path, image_dir: str | Path, aspect: float, padding: float) -> list[Source]:
    recs = gt_person_records(ann_file, image_dir, aspect, padding)
    return [Source(r.image_path, (r.center[0], r.center[1], r.scale[0] * PIXEL_STD, r.scale[1] * PIXEL_STD))
            for r in recs]


def synthetic_root(root: str, images: int, val_images: int, seed: int) -> Path:
    """The synthetic benchmark at ``root`` with that size (generated unless already there)."""
    return ensure_synthetic(DataCfg(dataset="synthetic", root=root, synth_images=images,
                                    synth_val_images=val_images, synth_seed=seed))


def build_sources(cfg: DinoDataCfg) -> list[Source]:
    aspect = cfg.global_size[0] / cfg.global_size[1]
    if cfg.source == "folder":
        out = folder_sources(cfg.root)
    elif cfg.source == "coco_persons":
        root = Path(cfg.root)
        out = person_sources(root / cfg.ann_file, root / cfg.images, aspect, cfg.bbox_padding)
    else:
        root = synthetic_root(cfg.root, cfg.synth_images, cfg.synth_val_images, cfg.synth_seed)
        out = person_sources(root / "annotations" / "person_keypoints_train.json", root / "images" / "train",
                             aspect, cfg.bbox_padding)
    if not out:
        raise DataError(f"data.source={cfg.source} at {cfg.root}: no images / persons found")
    return out[: cfg.max_samples] if cfg.max_samples else out


class MultiCropDataset(Dataset):
    """``[i] -> list of crops (3, h, w)`` (2 global, then the local ones); ``set_epoch`` picks the stream."""

    def __init__(self, sources: list[Source], augment: MultiCropAugment, seed: int = 0) -> None:
        self.sources = sources
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return self.augment(load_source(self.sources[i]), rng)


def multicrop_dataset(cfg: DinoDataCfg, seed: int) -> MultiCropDataset:
    aug = MultiCropAugment(tuple(cfg.global_size), tuple(cfg.global_scale), cfg.local_crops, tuple(cfg.local_size),
                           tuple(cfg.local_scale))
    return MultiCropDataset(build_sources(cfg), aug, seed)


# ----------------------------------------------------------------------------------------- the labelled probe set
def labelled_persons(ann_file: str | Path, image_dir: str | Path, label: str, aspect: float,
                     padding: float = 1.25) -> tuple[list[Source], list[str]]:
    """Person regions of a synthetic annotation file and their ``synth[label]`` (persons with keypoints)."""
    data = read_json(ann_file, "annotation file")
    images = {im["id"]: im for im in data["images"]}
    out: list[Source] = []
    labels: list[str] = []
    for a in data["annotations"]:
        synth = a.get("synth")
        if synth is None:
            raise DataError(f"{ann_file} has no per-person labels (a synthetic set of generator version < 3): "
                            "delete it so that it is generated again")
        if a.get("num_keypoints", 0) == 0 or a.get("area", 0) <= 0:
            continue
        c, s = box_to_center_scale(a["bbox"], aspect, padding)
        out.append(Source(str(Path(image_dir) / images[a["image_id"]]["file_name"]),
                          (float(c[0]), float(c[1]), float(s[0]) * PIXEL_STD, float(s[1]) * PIXEL_STD)))
        labels.append(str(synth[label]))
    return out, labels


class ViewDataset(Dataset):
    """``[i] -> (view (3, h, w), label index)``: the un-augmented probe view of a person."""

    def __init__(self, sources: list[Source], labels: list[int], size: tuple[int, int]) -> None:
        self.sources, self.labels, self.size = sources, labels, size

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return eval_view(load_source(self.sources[i]), self.size), self.labels[i]
