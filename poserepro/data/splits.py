"""From a recipe to datasets: where the files are, GT vs detector boxes, synthetic generation on demand.

Datasets: COCO-format keypoint files (real COCO, the mini fixtures, the synthetic benchmark) and MPII in the
HRNet-style JSON layout (``annot/{train,valid,test}.json`` + ``images/`` + ``annot/gt_valid.mat``).
``data.pipeline: fast`` swaps the training dataset for :class:`~poserepro.data.fast_pipeline.FastTopDownDataset`
(decode once, batched warps and targets on the device).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError
from ..recipes import DataCfg, Recipe
from .coco import (
    AugmentCfg,
    PersonRecord,
    TopDownDataset,
    check_images_exist,
    det_person_records,
    gt_person_records,
    image_only_records,
)


@dataclass(frozen=True)
class SplitFiles:
    """Files of one split: annotation (or image-info) file, image directory, optional detector boxes."""

    ann_file: Path
    image_dir: Path
    det_file: Path | None
    has_gt: bool = True
    gt_file: Path | None = None       # MPII: the gt_valid.mat-style file PCKh is computed against


#: DataCfg defaults (COCO paths) replaced by the MPII layout when ``dataset: mpii`` leaves them unset.
_MPII_DEFAULTS = {
    "train_ann": ("annotations/person_keypoints_train2017.json", "annot/train.json"),
    "val_ann": ("annotations/person_keypoints_val2017.json", "annot/valid.json"),
    "test_info": ("annotations/image_info_test-dev2017.json", "annot/test.json"),
    "train_images": ("train2017", "images"),
    "val_images": ("val2017", "images"),
    "test_images": ("test2017", "images"),
}


def _mpii_path(cfg: DataCfg, name: str) -> str:
    coco_default, mpii_default = _MPII_DEFAULTS[name]
    value = getattr(cfg, name)
    return mpii_default if value == coco_default else value


def _mpii_split_files(cfg: DataCfg, split: str) -> SplitFiles:
    root = Path(cfg.root)
    if split == "train":
        return SplitFiles(root / _mpii_path(cfg, "train_ann"), root / _mpii_path(cfg, "train_images"), None)
    if split == "val":
        ann = root / _mpii_path(cfg, "val_ann")
        return SplitFiles(ann, root / _mpii_path(cfg, "val_images"), None, True, ann.parent / "gt_valid.mat")
    if split in ("test", "test-dev"):
        return SplitFiles(root / _mpii_path(cfg, "test_info"), root / _mpii_path(cfg, "test_images"), None, False)
    raise DataError(f"unknown MPII split {split!r}: use train, val or test")


def ensure_synthetic(cfg: DataCfg) -> Path:
    """Generate the synthetic benchmark at ``cfg.root`` unless it is already there with the same config."""
    import dataclasses
    import json

    from ..errors import RecipeError
    from .synthetic import GENERATOR_VERSION, SynthConfig, synthesize

    root = Path(cfg.root)
    knobs = {f.name for f in dataclasses.fields(SynthConfig)} - {"num_train", "num_val", "seed"}
    bad = sorted(set(cfg.synth_difficulty) - knobs)
    if bad:
        raise RecipeError(f"data.synth_difficulty has unknown key(s) {bad}; valid: {sorted(knobs)}")
    want = SynthConfig(num_train=cfg.synth_images, num_val=cfg.synth_val_images, seed=cfg.synth_seed,
                       **cfg.synth_difficulty)
    marker = root / "synth_config.json"
    if marker.is_file():
        try:
            have = json.loads(marker.read_text())
        except json.JSONDecodeError:
            have = {}
        wanted = json.loads(json.dumps({**dataclasses.asdict(want), "generator_version": GENERATOR_VERSION}))
        if all(have.get(k) == v for k, v in wanted.items()):
            return root
    synthesize(root, want)
    return root


def split_files(cfg: DataCfg, split: str) -> SplitFiles:
    """Resolve the files of ``split`` (``train`` | ``val`` | ``test-dev``) for the recipe's dataset."""
    root = Path(cfg.root)
    if cfg.dataset == "mpii":
        return _mpii_split_files(cfg, split)
    if cfg.dataset == "synthetic":
        if split == "test-dev":
            raise DataError("the synthetic benchmark has no test-dev split: use --split val")
        if split not in ("train", "val"):
            raise DataError(f"unknown split {split!r}: the synthetic benchmark has train and val")
        ensure_synthetic(cfg)
        det = root / "detections" / "person_detections_val.json" if split == "val" else None
        return SplitFiles(root / "annotations" / f"person_keypoints_{split}.json", root / "images" / split, det)
    if split == "train":
        return SplitFiles(root / cfg.train_ann, root / cfg.train_images, None)
    if split == "val":
        det = _resolve(root, cfg.det_file)
        return SplitFiles(root / cfg.val_ann, root / cfg.val_images, det)
    if split == "test-dev":
        return SplitFiles(root / cfg.test_info, root / cfg.test_images, _resolve(root, cfg.test_det_file), False)
    raise DataError(f"unknown split {split!r}: use train, val or test-dev")


def _resolve(root: Path, p: str | None) -> Path | None:
    if p is None:
        return None
    q = Path(p)
    return q if q.is_absolute() or q.exists() else root / q


def person_records(
    recipe: Recipe, split: str, use_gt_boxes: bool | None = None, det_file: str | Path | None = None,
    ann_file: str | Path | None = None, image_dir: str | Path | None = None,
) -> tuple[list[PersonRecord], SplitFiles]:
    """Person records of a split: GT boxes for training; for evaluation GT boxes or a detector file.

    MPII always uses the annotated centre/scale (no detector boxes exist for it).
    """
    d = recipe.data
    if d.dataset == "mpii":
        return mpii_person_records(recipe, split, det_file, ann_file, image_dir)
    files = split_files(d, split) if ann_file is None else SplitFiles(
        Path(ann_file), Path(image_dir) if image_dir else Path(ann_file).parent / "images", None)
    if det_file is not None:
        files = SplitFiles(files.ann_file, files.image_dir, Path(det_file), files.has_gt)
    aspect = d.input_size[0] / d.input_size[1]
    gt = recipe.eval.use_gt_boxes if use_gt_boxes is None else use_gt_boxes
    if split == "train":
        gt = True
    if not files.has_gt:
        if files.det_file is None:
            raise DataError("test-dev has no GT boxes: pass --det-file with person detections for test-dev")
        recs = image_only_records(files.ann_file, files.image_dir, files.det_file, aspect, d.bbox_padding,
                                  recipe.eval.image_thre)
    elif gt:
        recs = gt_person_records(files.ann_file, files.image_dir, aspect, d.bbox_padding, d.num_joints)
    else:
        if files.det_file is None:
            raise DataError(f"no detector-box file for split {split!r}: pass --det-file FILE or --gt-boxes")
        if not Path(files.det_file).is_file():
            raise DataError(
                f"detector-box file {files.det_file} does not exist: download it (see `poserepro data download "
                "coco --parts dets`) and pass --det-file, or evaluate with --gt-boxes"
            )
        recs = det_person_records(files.ann_file, files.image_dir, files.det_file, aspect, d.bbox_padding,
                                  recipe.eval.image_thre, d.num_joints)
    limit = d.max_train_samples if split == "train" else d.max_val_samples
    if limit is not None:
        recs = recs[:limit]
    if not recs:
        raise DataError(f"split {split!r} has no persons to {'train' if split == 'train' else 'evaluate'} on "
                        f"({files.ann_file})")
    check_images_exist(recs)
    return recs, files


def mpii_person_records(
    recipe: Recipe, split: str, det_file: str | Path | None = None, ann_file: str | Path | None = None,
    image_dir: str | Path | None = None,
) -> tuple[list[PersonRecord], SplitFiles]:
    """MPII person records from the HRNet-style JSON (HRNet centre/scale adjustment, 0-based pixels).

    ``image_id`` is the person's position in the JSON file (the order ``gt_valid.mat`` follows), joints are
    ``(16, 3)`` with visibility 0/1. ``ann_file`` / ``image_dir`` override the split's files (then
    ``gt_valid.mat`` is looked up next to ``ann_file``).
    """
    from .mpii import MPII_NUM_JOINTS, load_mpii_annotations

    d = recipe.data
    if det_file is not None:
        raise DataError("MPII has no detector boxes: evaluate with the annotated person centres (drop --det-file)")
    if d.num_joints != MPII_NUM_JOINTS:
        raise DataError(f"MPII has {MPII_NUM_JOINTS} joints but the recipe says data.num_joints={d.num_joints}: "
                        f"set data.num_joints={MPII_NUM_JOINTS} (and model.args.num_joints)")
    files = _mpii_split_files(d, split)
    if ann_file is not None:
        ann = Path(ann_file)
        files = SplitFiles(ann, Path(image_dir) if image_dir else ann.parent.parent / "images", None,
                           files.has_gt, ann.parent / "gt_valid.mat" if files.has_gt else None)
    entries = load_mpii_annotations(files.ann_file, require_joints=files.has_gt)
    recs = []
    for e in entries:
        joints = np.concatenate([e["joints"], e["joints_vis"][:, None]], axis=1).astype(np.float32)
        recs.append(PersonRecord(
            str(files.image_dir / e["image"]), int(e["index"]), (float(e["center"][0]), float(e["center"][1])),
            (float(e["scale"][0]), float(e["scale"][1])), joints if files.has_gt else None, 1.0, 0.0,
        ))
    limit = d.max_train_samples if split == "train" else d.max_val_samples
    if limit is not None:
        recs = recs[:limit]
    if not recs:
        raise DataError(f"MPII split {split!r} has no persons ({files.ann_file})")
    check_images_exist(recs)
    return recs, files


def make_dataset(recipe: Recipe, records: list[PersonRecord], train: bool) -> Dataset:
    """The dataset of a split: :class:`TopDownDataset`, or for training with ``data.pipeline: fast`` a
    :class:`~poserepro.data.fast_pipeline.FastTopDownDataset` (batch it with its ``collate`` and finish each
    device batch with its ``transform``)."""
    d = recipe.data
    spec = d.keypoint_spec()
    aug = AugmentCfg(d.flip_prob, d.scale_factor, d.rot_factor, d.rot_prob, d.half_body_prob,
                     d.half_body_min_joints)
    upper = spec.upper_body
    if train and d.pipeline == "fast":
        from .fast_pipeline import FastTopDownDataset

        return FastTopDownDataset(
            records, d.input_size, d.heatmap_size, d.sigma, train=True, augment=aug, flip_pairs=spec.flip_pairs,
            num_joints=d.num_joints, color_rgb=d.color_rgb, target=d.target, seed=recipe.train.seed,
            upper_body_ids=upper, with_targets=True, convention=d.affine,
            warp="grid" if recipe.train.device.startswith("cuda") else "cv2",
        )
    return TopDownDataset(
        records, d.input_size, d.heatmap_size, d.sigma, train=train, augment=aug, flip_pairs=spec.flip_pairs,
        num_joints=d.num_joints, color_rgb=d.color_rgb, target=d.target, seed=recipe.train.seed,
        upper_body_ids=upper, with_targets=train, convention=d.affine,
    )
