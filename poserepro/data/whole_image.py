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

#: per-image targets: ``{"boxes": (n, 4) cxcywh normalised, "keypoints": (n, K, 3) normalised x, y, v}``
Targets = list[dict[str, torch.Tensor]]


class WholeImageDataset(Dataset):
    """COCO-format keypoint images for end-to-end training / evaluation (the top-down loaders crop persons).

    Each item is the whole image resized (not padded) to ``input_size`` and its persons in normalised
    coordinates: ``{"image": (3, h, w), "boxes": (n, 4) cxcywh, "keypoints": (n, K, 3) x, y, v, "image_id": int,
    "orig_size": (2,) (width, height)}``. Crowd annotations and persons without a box are skipped. With ``train``
    the image is mirrored with probability ``flip_prob`` (the joints of ``flip_pairs`` swapped).
    """

    def __init__(
        self, ann_file: str | Path, image_dir: str | Path, input_size: Sequence[int], train: bool = False,
        num_joints: int = 17, flip_pairs: Sequence[tuple[int, int]] = (), flip_prob: float = 0.5,
        color_rgb: bool = True, seed: int = 0,
    ) -> None:
        data = read_json(ann_file, "annotation file")
        self.image_dir = Path(image_dir)
        self.images = sorted(data["images"], key=lambda im: im["id"])
        self.anns: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for a in data.get("annotations", []):
            if not a.get("iscrowd", 0) and a["bbox"][2] > 0 and a["bbox"][3] > 0 and a["image_id"] in self.anns:
                self.anns[a["image_id"]].append(a)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.train = train
        self.num_joints = num_joints
        self.flip_prob = flip_prob
        self.color_rgb = color_rgb
        self.flip_pairs = tuple((int(a), int(b)) for a, b in flip_pairs)
        self.seed = seed
        self.epoch = 0

    @staticmethod
    def collate(items: list[dict]) -> dict:
        """Batch items for the training loop: ``{"image", "targets", "image_id", "orig_size"}``."""
        images, targets, ids, sizes = collate_whole_images(items)
        return {"image": images, "targets": targets, "image_id": ids, "orig_size": sizes}

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on ``(seed, epoch, index)`` only: the same with any number of workers."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        info = self.images[index]
        img = read_image(str(self.image_dir / info["file_name"]), rgb=self.color_rgb)
        h0, w0 = img.shape[:2]
        img = cv2.resize(img, self.input_size, interpolation=cv2.INTER_LINEAR)
        anns = self.anns[info["id"]]
        boxes = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([boxes[:, :2] + boxes[:, 2:] / 2, boxes[:, 2:]], axis=1) / np.array(
            [w0, h0, w0, h0], dtype=np.float32)
        kps = np.array([a.get("keypoints", [0] * 3 * self.num_joints) for a in anns], dtype=np.float32)
        kps = kps.reshape(-1, self.num_joints, 3)
        kps[..., 0] /= w0
        kps[..., 1] /= h0
        rng = np.random.default_rng((self.seed, self.epoch, index))
        if self.train and rng.random() < self.flip_prob:
            img = img[:, ::-1]
            boxes[:, 0] = 1 - boxes[:, 0]
            kps[..., 0] = np.where(kps[..., 2] > 0, 1 - kps[..., 0], 0)
            perm = list(range(self.num_joints))
            for a, b in self.flip_pairs:
                perm[a], perm[b] = b, a
            kps = kps[:, perm]
        return {"image": to_tensor(np.ascontiguousarray(img)), "boxes": torch.from_numpy(boxes),
                "keypoints": torch.from_numpy(np.ascontiguousarray(kps)), "image_id": int(info["id"]),
                "orig_size": torch.tensor([w0, h0], dtype=torch.float32)}


def collate_whole_images(items: list[dict]) -> tuple[torch.Tensor, Targets, list[int], torch.Tensor]:
    """Batch :class:`WholeImageDataset` items → ``(images (B, 3, h, w), targets, image_ids, orig_sizes (B, 2))``."""
    images = torch.stack([it["image"] for it in items])
    targets = [{"boxes": it["boxes"], "keypoints": it["keypoints"]} for it in items]
    return images, targets, [it["image_id"] for it in items], torch.stack([it["orig_size"] for it in items])
