"""Whole images and their persons, for end-to-end models (end-to-end PRTR): no person crops."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..io import read_json
from .coco import read_image, to_tensor

#: DETR's training scales of the shorter side (``detr/datasets/coco.py``: 480, 512, ..., 800)
DETR_SCALES: tuple[int, ...] = tuple(range(480, 801, 32))
#: per-image targets: ``{"boxes": (n, 4) cxcywh normalised, "keypoints": (n, K, 3) normalised x, y, v}``
Targets = list[dict[str, torch.Tensor]]


class WholeImageDataset(Dataset):
    """COCO-format keypoint images for end-to-end training / evaluation (the top-down loaders crop persons).

    Each item is the whole image and its persons in coordinates normalised to it: ``{"image": (3, h, w), "boxes":
    (n, 4) cxcywh, "keypoints": (n, K, 3) x, y, v, "image_id": int, "orig_size": (2,) (width, height)}``. Crowd
    annotations, persons without a box and persons with fewer than ``min_keypoints`` labelled keypoints (PRTR's
    detector: 1, "people without any visible keypoints" skipped, paper §4.1) are dropped. With ``train`` the image
    is mirrored with probability ``flip_prob`` (the joints of ``flip_pairs`` swapped).

    ``resize="fixed"``: the image is resized (not padded) to ``input_size``. ``resize="detr"`` (DETR's
    ``make_coco_transforms``): training draws, with equal probability, either a resize of the shorter side to one
    of ``scales`` (the longer side at most ``max_size``) or a resize to 400 / 500 / 600, a random crop of 384-600
    px per side, then the multi-scale resize; evaluation resizes the shorter side to ``max(scales)``. Images then
    differ in size: :meth:`collate` pads them (bottom / right) and gives the padding mask.
    """

    def __init__(
        self, ann_file: str | Path, image_dir: str | Path, input_size: Sequence[int], train: bool = False,
        num_joints: int = 17, flip_pairs: Sequence[tuple[int, int]] = (), flip_prob: float = 0.5,
        color_rgb: bool = True, seed: int = 0, min_keypoints: int = 0, resize: str = "fixed",
        scales: Sequence[int] = DETR_SCALES, max_size: int = 1333,
    ) -> None:
        if resize not in ("fixed", "detr"):
            raise ValueError(f"resize must be 'fixed' or 'detr', got {resize!r}")
        data = read_json(ann_file, "annotation file")
        self.image_dir = Path(image_dir)
        self.images = sorted(data["images"], key=lambda im: im["id"])
        self.anns: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for a in data.get("annotations", []):
            if not a.get("iscrowd", 0) and a["bbox"][2] > 0 and a["bbox"][3] > 0 and a["image_id"] in self.anns \
                    and labelled_keypoints(a) >= min_keypoints:
                self.anns[a["image_id"]].append(a)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.train = train
        self.num_joints = num_joints
        self.flip_prob = flip_prob
        self.color_rgb = color_rgb
        self.flip_pairs = tuple((int(a), int(b)) for a, b in flip_pairs)
        self.seed = seed
        self.epoch = 0
        self.resize = resize
        self.scales = tuple(int(v) for v in scales)
        self.max_size = int(max_size)

    @staticmethod
    def collate(items: list[dict]) -> dict:
        """Batch items for the training loop: ``{"image", "targets", "image_id", "orig_size", "mask"}``."""
        images, targets, ids, sizes, mask = collate_whole_images(items)
        return {"image": images, "targets": targets, "image_id": ids, "orig_size": sizes, "mask": mask}

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on ``(seed, epoch, index)`` only: the same with any number of workers."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        info = self.images[index]
        img = read_image(str(self.image_dir / info["file_name"]), rgb=self.color_rgb)
        h0, w0 = img.shape[:2]
        anns = self.anns[info["id"]]
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)  # xywh pixels
        kps = np.array([a.get("keypoints", [0] * 3 * self.num_joints) for a in anns], dtype=np.float32)
        kps = kps.reshape(-1, self.num_joints, 3)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        flip = self.train and rng.random() < self.flip_prob
        if self.resize == "fixed":  # resize, normalise, then flip in normalised coordinates
            img = cv2.resize(img, self.input_size, interpolation=cv2.INTER_LINEAR)
            boxes, kps = _normalise(boxes, kps, w0, h0)
            if flip:
                img, boxes, kps = self._flip(img, boxes, kps, 1.0, centred=True)
        else:  # DETR: flip, then resize (and crop) in pixels, then normalise by the result's size
            if flip:
                img, boxes, kps = self._flip(img, boxes, kps, float(w0), centred=False)
            if self.train:
                img, boxes, kps, (w, h) = detr_train_transform(img, boxes, kps, rng, self.scales, self.max_size)
            else:
                img, (w, h) = resize_shorter(img, max(self.scales), self.max_size), (w0, h0)
            boxes, kps = _normalise(boxes, kps, w, h)
        return {"image": to_tensor(np.ascontiguousarray(img)), "boxes": torch.from_numpy(boxes),
                "keypoints": torch.from_numpy(np.ascontiguousarray(kps)), "image_id": int(info["id"]),
                "orig_size": torch.tensor([w0, h0], dtype=torch.float32)}

    def _flip(self, img: np.ndarray, boxes: np.ndarray, kps: np.ndarray, width: float, centred: bool):
        """Mirror the image, boxes (``cxcywh`` with ``centred``, else ``xywh``) and joints of an image ``width``
        wide (1 for normalised coordinates)."""
        img = img[:, ::-1]
        boxes = boxes.copy()
        boxes[:, 0] = width - boxes[:, 0] - (0 if centred else boxes[:, 2])
        kps = kps.copy()
        kps[..., 0] = np.where(kps[..., 2] > 0, width - kps[..., 0], 0)
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return img, boxes, kps[:, perm]


def _normalise(boxes: np.ndarray, kps: np.ndarray, w: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ``xywh`` boxes → ``cxcywh`` and joints ``x, y``, both normalised by the image size ``(w, h)``."""
    boxes = np.concatenate([boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2:]], axis=1) / np.array(
        [w, h, w, h], dtype=np.float32)
    kps = kps.copy()
    kps[..., 0] /= w
    kps[..., 1] /= h
    return boxes.astype(np.float32), kps


def labelled_keypoints(ann: dict) -> int:
    """Labelled keypoints of a COCO person (``num_keypoints``, else the count of visibility flags above 0)."""
    if "num_keypoints" in ann:
        return int(ann["num_keypoints"])
    kp = ann.get("keypoints") or []
    return sum(1 for v in kp[2::3] if v > 0)


def detr_size(w: int, h: int, size: int, max_size: int | None) -> tuple[int, int]:
    """DETR's ``get_size_with_aspect_ratio``: ``(w, h)`` with the shorter side ``size``, the longer at most
    ``max_size``."""
    if max_size is not None:
        lo, hi = float(min(w, h)), float(max(w, h))
        if hi / lo * size > max_size:
            size = int(round(max_size * lo / hi))
    if (w <= h and w == size) or (h <= w and h == size):
        return w, h
    if w < h:
        return size, int(size * h / w)
    return int(size * w / h), size


def resize_shorter(img: np.ndarray, size: int, max_size: int | None) -> np.ndarray:
    """The image with its shorter side resized to ``size`` (longer side at most ``max_size``)."""
    h, w = img.shape[:2]
    ow, oh = detr_size(w, h, size, max_size)
    if (ow, oh) == (w, h):
        return np.ascontiguousarray(img)
    return cv2.resize(np.ascontiguousarray(img), (ow, oh), interpolation=cv2.INTER_LINEAR)


def _rescale(img: np.ndarray, boxes: np.ndarray, kps: np.ndarray, size: int, max_size: int | None):
    h, w = img.shape[:2]
    out = resize_shorter(img, size, max_size)
    sy, sx = out.shape[0] / h, out.shape[1] / w
    boxes = boxes * np.array([sx, sy, sx, sy], dtype=np.float32)
    kps = kps.copy()
    kps[..., 0] *= sx
    kps[..., 1] *= sy
    return out, boxes, kps


def _random_crop(img: np.ndarray, boxes: np.ndarray, kps: np.ndarray, rng: np.random.Generator,
                 lo: int = 384, hi: int = 600):
    """DETR's ``RandomSizeCrop(384, 600)``: a random region, boxes clipped to it (empty ones dropped), keypoints
    outside it unlabelled."""
    h, w = img.shape[:2]
    cw = int(rng.integers(min(lo, w), min(w, hi) + 1))
    ch = int(rng.integers(min(lo, h), min(h, hi) + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    img = img[y0:y0 + ch, x0:x0 + cw]
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1) - np.array([x0, y0, x0, y0])
    xyxy = np.clip(xyxy, 0, np.array([cw, ch, cw, ch], dtype=np.float32))
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)[keep].astype(np.float32)
    kps = kps[keep].copy()
    kps[..., 0] -= x0
    kps[..., 1] -= y0
    out = (kps[..., 0] < 0) | (kps[..., 1] < 0) | (kps[..., 0] >= cw) | (kps[..., 1] >= ch)
    kps[out] = 0
    return img, boxes, kps


def detr_train_transform(img: np.ndarray, boxes: np.ndarray, kps: np.ndarray, rng: np.random.Generator,
                         scales: Sequence[int], max_size: int):
    """DETR's training transform after the flip: ``RandomSelect(RandomResize(scales, max_size), [RandomResize(400,
    500, 600), RandomSizeCrop(384, 600), RandomResize(scales, max_size)])`` on pixel ``xywh`` boxes and keypoints.
    Returns ``(image, boxes, keypoints, (w, h) of the result)``."""
    if rng.random() >= 0.5:
        img, boxes, kps = _rescale(img, boxes, kps, int(rng.choice([400, 500, 600])), None)
        img, boxes, kps = _random_crop(img, boxes, kps, rng)
    img, boxes, kps = _rescale(img, boxes, kps, int(rng.choice(list(scales))), max_size)
    return img, boxes, kps, (img.shape[1], img.shape[0])


def pad_batch(images: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """DETR's ``NestedTensor``: images ``(3, h_i, w_i)`` zero-padded (bottom / right) to the largest →
    ``(images (B, 3, H, W), mask (B, H, W))``, the mask ``True`` on padding."""
    hs = max(int(im.shape[1]) for im in images)
    ws = max(int(im.shape[2]) for im in images)
    out = images[0].new_zeros((len(images), images[0].shape[0], hs, ws))
    mask = torch.ones((len(images), hs, ws), dtype=torch.bool)
    for i, im in enumerate(images):
        out[i, :, : im.shape[1], : im.shape[2]] = im
        mask[i, : im.shape[1], : im.shape[2]] = False
    return out, mask


def collate_whole_images(
    items: list[dict],
) -> tuple[torch.Tensor, Targets, list[int], torch.Tensor, torch.Tensor]:
    """Batch :class:`WholeImageDataset` items → ``(images (B, 3, H, W), targets, image_ids, orig_sizes (B, 2),
    mask (B, H, W))`` (:func:`pad_batch`; the mask is all ``False`` when the images have one size)."""
    images, mask = pad_batch([it["image"] for it in items])
    targets = [{"boxes": it["boxes"], "keypoints": it["keypoints"]} for it in items]
    return images, targets, [it["image_id"] for it in items], torch.stack([it["orig_size"] for it in items]), mask
