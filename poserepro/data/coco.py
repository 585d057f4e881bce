"""Top-down COCO-format keypoint data: person records from GT or detector boxes, affine crops, augmentation,
heatmap targets.

Works on any COCO-format keypoint file + image directory: the synthetic benchmark, the real mini fixture, real
COCO 2017. Conventions follow the HRNet lineage the papers share (FACTS §7): box → centre/scale with the
input's aspect ratio and 1.25 padding, scale ×clip(1+N·sf, 1−sf, 1+sf), rotation clip(N·rf, ±2rf) with p 0.6,
flip p 0.5, half-body p 0.3 with ≥ 8 visible joints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..codecs.heatmap import encode_gaussian, encode_udp
from ..errors import DataError
from ..geometry import affine_points, fliplr_joints, get_affine_transform, get_affine_transform_udp, warp_image
from ..io import read_json
from .boxes import box_to_center_scale, load_detections

# OpenCV's own thread pool fights PyTorch's OpenMP threads when both run in one process (a 5-10x slowdown
# of the training step on 2 cores when data loads in the main process); crops are tiny, so one thread suffices.
cv2.setNumThreads(1)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
COCO_UPPER_BODY = tuple(range(11))


@dataclass(frozen=True)
class PersonRecord:
    """One person crop to load: image, box-derived centre/scale, GT joints ``(K, 3)`` (x, y, v) if known."""

    image_path: str
    image_id: int
    center: tuple[float, float]
    scale: tuple[float, float]
    joints: np.ndarray | None      # (K, 3) image pixels + visibility (0/1/2); None for detector boxes
    score: float = 1.0
    area: float = 0.0


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_coco_structure(data: Any, path: str | Path, need_categories: bool = False,
                         ann_keys: tuple[str, ...] = ("image_id", "bbox")) -> None:
    """Check the structure of a COCO keypoint annotation file, so that a defect is one line naming the entry and
    the fix, not a ``KeyError`` deep inside a loader or pycocotools: ``images`` a list of objects with ``id``,
    ``file_name``, numeric ``width`` / ``height``; ``annotations`` a list of objects with ``ann_keys``, a 4-number
    ``bbox`` and, where given, a ``keypoints`` list of numbers in triples; ``categories`` a list if present
    (required with ``need_categories``)."""
    def bad(msg: str) -> DataError:
        return DataError(f"annotation file {path}: {msg}; fix the file or use the official person_keypoints JSON")

    if not isinstance(data, dict):
        raise DataError(f"annotation file {path} must hold a JSON object with 'images' and 'annotations' lists, "
                        f"got {type(data).__name__}")
    for key in ("images", "annotations") + (("categories",) if need_categories else ()):
        if not isinstance(data.get(key), list):
            got = "missing" if key not in data else f"a {type(data[key]).__name__}"
            raise DataError(f"annotation file {path} has no '{key}' list ({got}); is it a COCO person_keypoints "
                            "file?")
    if "categories" in data and not isinstance(data["categories"], list):
        raise bad("'categories' is not a list")
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict):
            raise bad(f"images[{i}] is not an object")
        missing = [k for k in ("id", "file_name", "width", "height") if k not in im]
        if missing:
            raise bad(f"images[{i}] (id {im.get('id')}) lacks {', '.join(missing)}")
        if not (_is_num(im["width"]) and _is_num(im["height"])) or im["width"] <= 0 or im["height"] <= 0:
            raise bad(f"images[{i}] (id {im['id']}) has width/height {im['width']!r}/{im['height']!r}, not "
                      "positive numbers")
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise bad(f"annotations[{i}] is not an object")
        missing = [k for k in ann_keys if k not in ann]
        if missing:
            raise bad(f"annotations[{i}] (id {ann.get('id')}) lacks {', '.join(missing)}")
        box = ann.get("bbox")
        if box is not None and not (isinstance(box, list) and len(box) == 4 and all(map(_is_num, box))):
            raise bad(f"annotations[{i}] (id {ann.get('id')}) has bbox {box!r}, not [x, y, w, h] numbers")
        kp = ann.get("keypoints")
        if kp is not None and not (isinstance(kp, list) and len(kp) % 3 == 0 and all(map(_is_num, kp))):
            raise bad(f"annotations[{i}] (id {ann.get('id')}) has keypoints that are not a list of numbers in "
                      "(x, y, v) triples")


def load_coco_keypoint_file(ann_file: str | Path, num_joints: int = 17) -> dict[str, Any]:
    """Read and check a COCO keypoint annotation file (images, annotations, person keypoint category)."""
    data = read_json(ann_file, "annotation file")
    check_coco_structure(data, ann_file)
    cats = [c for c in data.get("categories", []) if c.get("id") == 1]
    if cats and "keypoints" in cats[0] and len(cats[0]["keypoints"]) != num_joints:
        raise DataError(
            f"annotation file {ann_file} has {len(cats[0]['keypoints'])} keypoints per person but the model "
            f"expects {num_joints}: use a recipe / model with num_joints={len(cats[0]['keypoints'])}"
        )
    for ann in data["annotations"][:50]:
        kp = ann.get("keypoints")
        if kp is not None and len(kp) != 3 * num_joints:
            raise DataError(
                f"annotation file {ann_file} has {len(kp) // 3} keypoints per person but the model expects "
                f"{num_joints}: use a matching recipe or annotation file"
            )
    return data


def gt_person_records(
    ann_file: str | Path, image_dir: str | Path, aspect_ratio: float, padding: float = 1.25,
    num_joints: int = 17, require_keypoints: bool = True,
) -> list[PersonRecord]:
    """Person records from GT boxes (HRNet ``_load_coco_keypoint_annotation_kernal`` semantics).

    Crowd annotations and persons without labelled keypoints (when ``require_keypoints``) are skipped; boxes are
    clipped to the image and must have positive area.
    """
    data = load_coco_keypoint_file(ann_file, num_joints)
    images = {im["id"]: im for im in data["images"]}
    out: list[PersonRecord] = []
    for ann in data["annotations"]:
        if ann.get("category_id", 1) != 1 or ann.get("iscrowd", 0):
            continue
        kp = np.asarray(ann.get("keypoints", [0] * 3 * num_joints), dtype=np.float32).reshape(num_joints, 3)
        if require_keypoints and (kp[:, 2] > 0).sum() == 0:
            continue
        im = images.get(ann["image_id"])
        if im is None:
            raise DataError(f"annotation {ann.get('id')} in {ann_file} refers to unknown image {ann['image_id']}")
        x, y, w, h = ann["bbox"]
        x1, y1 = max(0.0, x), max(0.0, y)
        x2 = min(im["width"] - 1.0, x1 + max(0.0, w - 1))
        y2 = min(im["height"] - 1.0, y1 + max(0.0, h - 1))
        if ann.get("area", 1) <= 0 or x2 < x1 or y2 < y1:
            continue
        c, s = box_to_center_scale([x1, y1, x2 - x1, y2 - y1], aspect_ratio, padding)
        out.append(PersonRecord(
            str(Path(image_dir) / im["file_name"]), int(im["id"]), (float(c[0]), float(c[1])),
            (float(s[0]), float(s[1])), kp, 1.0, float(ann.get("area", 0.0)),
        ))
    return out


def det_person_records(
    ann_file: str | Path, image_dir: str | Path, det_file: str | Path, aspect_ratio: float,
    padding: float = 1.25, image_thre: float = 0.0, num_joints: int = 17,
) -> list[PersonRecord]:
    """Person records from a detector-box file (``[{image_id, bbox, score, category_id}]``)."""
    data = load_coco_keypoint_file(ann_file, num_joints)
    images = {im["id"]: im for im in data["images"]}
    dets = load_detections(det_file, image_ids=set(images), score_thr=image_thre)
    out: list[PersonRecord] = []
    for image_id in sorted(dets):
        im = images.get(image_id)
        if im is None:
            continue
        for d in dets[image_id]:
            c, s = box_to_center_scale(d["bbox"], aspect_ratio, padding)
            out.append(PersonRecord(
                str(Path(image_dir) / im["file_name"]), int(image_id), (float(c[0]), float(c[1])),
                (float(s[0]), float(s[1])), None, float(d["score"]), 0.0,
            ))
    return out


def image_only_records(
    info_file: str | Path, image_dir: str | Path, det_file: str | Path, aspect_ratio: float, padding: float = 1.25,
    image_thre: float = 0.0,
) -> list[PersonRecord]:
    """Records for an image-info file without annotations (COCO test-dev) and detector boxes."""
    data = read_json(info_file, "image-info file")
    if not isinstance(data, dict) or "images" not in data:
        raise DataError(f"image-info file {info_file} needs an 'images' list (image_info_test-dev2017.json)")
    images = {im["id"]: im for im in data["images"]}
    dets = load_detections(det_file, image_ids=set(images), score_thr=image_thre)
    out = []
    for image_id in sorted(dets):
        if image_id not in images:
            continue
        for d in dets[image_id]:
            c, s = box_to_center_scale(d["bbox"], aspect_ratio, padding)
            out.append(PersonRecord(
                str(Path(image_dir) / images[image_id]["file_name"]), int(image_id),
                (float(c[0]), float(c[1])), (float(s[0]), float(s[1])), None, float(d["score"]), 0.0,
            ))
    return out


def check_images_exist(records: list[PersonRecord], limit: int = 5) -> None:
    """Raise :class:`DataError` listing missing image files (checks each distinct path once)."""
    missing = sorted({r.image_path for r in records if not Path(r.image_path).is_file()})
    if missing:
        shown = ", ".join(missing[:limit]) + (f" and {len(missing) - limit} more" if len(missing) > limit else "")
        raise DataError(f"{len(missing)} image file(s) missing: {shown}; check the image directory")


def read_image(path: str, rgb: bool = True) -> np.ndarray:
    """Decode an image to ``(H, W, 3)`` uint8 (RGB when ``rgb``), ignoring EXIF orientation like COCO tools."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e.strerror or e}") from None
    if truncated_image(data):
        raise DataError(f"image {path} is truncated (it ends before its end-of-image marker): re-download or "
                        "re-extract it (`poserepro data verify` checks a dataset's files)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise DataError(f"cannot decode image {path}: the file is missing or corrupt")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if rgb else img


def truncated_image(data: bytes) -> bool:
    """Whether a JPEG or PNG file stops before its end marker (JPEG ``FFD9``, PNG ``IEND``). OpenCV decodes such
    a file "successfully", filling the missing part with grey and printing only a libjpeg warning."""
    tail = data[-64:].rstrip(b"\x00\r\n ")
    if data[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in tail[-32:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in tail[-16:]
    return False


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 → ``(3, H, W)`` float32 normalised with ImageNet mean/std."""
    x = (img.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


@dataclass(frozen=True)
class AugmentCfg:
    """Training augmentation parameters (FACTS §7)."""

    flip_prob: float = 0.5
    scale_factor: float = 0.35
    rot_factor: float = 45.0
    rot_prob: float = 0.6
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8


def half_body_center_scale(
    joints: np.ndarray, upper_ids: tuple[int, ...], aspect_ratio: float, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray] | None:
    """HRNet half-body augmentation: a box around the upper or lower visible joints, ×1.5."""
    vis = joints[:, 2] > 0
    upper = [i for i in range(len(joints)) if vis[i] and i in upper_ids]
    lower = [i for i in range(len(joints)) if vis[i] and i not in upper_ids]
    pick = upper if (rng.random() < 0.5 and len(upper) > 2) else lower
    pick = pick if len(pick) >= 2 else upper
    if len(pick) < 2:
        return None
    pts = joints[pick, :2]
    center = pts.mean(axis=0)
    lt, rb = pts.min(axis=0), pts.max(axis=0)
    w, h = rb[0] - lt[0], rb[1] - lt[1]
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    scale = np.array([w / 200.0, h / 200.0], dtype=np.float32) * 1.5
    return center.astype(np.float32), scale


@dataclass(frozen=True)
class AugParams:
    """The augmentation of one sample: the (possibly half-body) centre/scale *before* flipping, rotation, flip."""

    center: np.ndarray   # (2,) float32, unflipped image coordinates
    scale: np.ndarray    # (2,) float32
    rotation: float
    flip: bool


def draw_augmentation(
    joints: np.ndarray, center: np.ndarray, scale: np.ndarray, rng: np.random.Generator, aug: AugmentCfg,
    flip_pairs: tuple[tuple[int, int], ...], upper_ids: tuple[int, ...], aspect_ratio: float,
) -> AugParams:
    """Draw half-body, scale, rotation and flip in :class:`~poserepro.data.coco.TopDownDataset`'s order.

    ``joints``: (K, 3) image pixels + visibility. Consumes ``rng`` exactly as ``TopDownDataset.__getitem__``.
    """
    c, s = center.astype(np.float32), scale.astype(np.float32)
    if (joints[:, 2] > 0).sum() > aug.half_body_min_joints and rng.random() < aug.half_body_prob:
        hb = half_body_center_scale(joints, upper_ids, aspect_ratio, rng)
        if hb is not None:
            c, s = hb
    sf, rf = aug.scale_factor, aug.rot_factor
    s = s * float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
    rot_draw = float(np.clip(rng.standard_normal() * rf, -rf * 2, rf * 2))
    r = rot_draw if rng.random() <= aug.rot_prob else 0.0
    flip = bool(flip_pairs) and bool(rng.random() <= aug.flip_prob)
    return AugParams(np.asarray(c, np.float32), np.asarray(s, np.float32), r, flip)


class TopDownDataset(Dataset):
    """Affine person crops with heatmap targets.

    ``__getitem__`` returns a dict: ``image (3, H, W)`` float, ``heatmaps (K, h, w)``, ``target_weight (K,)``,
    ``joints (K, 2)`` in crop pixels, ``joints_vis (K,)``, ``center (2,)``, ``scale (2,)``, ``score``,
    ``image_id``, ``index``. ``convention`` selects the crop geometry (``"hrnet"`` or DarkPose's ``"dark"``,
    which TransPose and BTranspose use); ``target="udp"`` uses UDP crops and targets. Augmentation randomness
    is drawn from ``default_rng((seed, epoch, index))`` so a run is reproducible whatever the number of loader
    workers.
    """

    def __init__(
        self,
        records: list[PersonRecord],
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float = 2.0,
        train: bool = False,
        augment: AugmentCfg | None = None,
        flip_pairs: tuple[tuple[int, int], ...] = (),
        num_joints: int = 17,
        color_rgb: bool = True,
        target: str = "gaussian",
        seed: int = 0,
        upper_body_ids: tuple[int, ...] = COCO_UPPER_BODY,
        with_targets: bool = True,
        convention: str = "hrnet",
    ) -> None:
        self.records = records
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = sigma
        self.train = train
        self.aug = augment or AugmentCfg()
        self.flip_pairs = flip_pairs
        self.num_joints = num_joints
        self.color_rgb = color_rgb
        self.target = target
        self.seed = seed
        self.epoch = 0
        self.upper_body_ids = upper_body_ids
        self.with_targets = with_targets
        self.convention = convention
        self.aspect_ratio = self.input_size[0] / self.input_size[1]

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        img = read_image(rec.image_path, self.color_rgb)
        joints = (
            rec.joints.copy() if rec.joints is not None else np.zeros((self.num_joints, 3), np.float32)
        )
        c = np.array(rec.center, dtype=np.float32)
        s = np.array(rec.scale, dtype=np.float32)
        r = 0.0
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            p = draw_augmentation(joints, c, s, rng, self.aug, self.flip_pairs, self.upper_body_ids,
                                  self.aspect_ratio)
            c, s, r = p.center.copy(), p.scale, p.rotation
            if p.flip:
                img = img[:, ::-1]
                xy, vis = fliplr_joints(joints[:, :2], joints[:, 2], img.shape[1], self.flip_pairs)
                joints = np.concatenate([xy, vis[:, None]], axis=1).astype(np.float32)
                c[0] = img.shape[1] - c[0] - 1
        if self.target == "udp":
            mat = get_affine_transform_udp(c, s, r, self.input_size)
        else:
            mat = get_affine_transform(c, s, r, self.input_size, convention=self.convention)
        crop = warp_image(np.ascontiguousarray(img), mat, self.input_size)
        vis = (joints[:, 2] > 0).astype(np.float32)
        pts = affine_points(joints[:, :2], mat).astype(np.float32)
        out: dict[str, Any] = {
            "image": to_tensor(crop),
            "joints": torch.from_numpy(pts),
            "joints_vis": torch.from_numpy(vis),
            "center": torch.from_numpy(c.astype(np.float32)),
            "scale": torch.from_numpy(s.astype(np.float32)),
            "rotation": torch.tensor(r, dtype=torch.float32),
            "score": torch.tensor(rec.score, dtype=torch.float32),
            "image_id": torch.tensor(rec.image_id, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }
        if self.with_targets:
            if self.target == "udp":
                hm, tw = encode_udp(pts, vis, self.input_size, self.heatmap_size, self.sigma)
            else:
                hm, tw = encode_gaussian(pts, vis, self.input_size, self.heatmap_size, self.sigma,
                                         convention=self.convention)
            out["heatmaps"] = torch.from_numpy(hm)
            out["target_weight"] = torch.from_numpy(tw.astype(np.float32))
        return out
