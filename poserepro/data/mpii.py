"""MPII annotations in the HRNet-style JSON conversion (annotation loading only).

The conversion used by HRNet, TransPose and PRTR (``annot/{train,valid,test}.json``, re-published by mmpose
as ``mpii_annotations.tar``) is a list of person entries::

    {"image": "005808361.jpg", "center": [966.0, 340.0], "scale": 4.718488,
     "joints": [[x, y], ...16], "joints_vis": [0|1, ...16]}

``scale`` is the person height / 200. Joint order (0-based index): r-ankle, r-knee, r-hip, l-hip, l-knee,
l-ankle, pelvis, thorax, upper-neck, head-top, r-wrist, r-elbow, r-shoulder, l-shoulder, l-elbow, l-wrist.

Coordinates are **1-based** (MATLAB): the JSON copies the official ``mpii_human_pose_v1_u12_1.mat``, and
HRNet's ``MPIIDataset`` subtracts 1 from both the joints and the centre when loading ("MPII uses matlab
format, index is based 1"); its evaluation adds 1 back to the predictions before comparing with
``gt_valid.mat`` (see :mod:`poserepro.evaluation.mpii`). Unlabelled joints are stored as ``(-1, -1)`` with
``joints_vis = 0``; like HRNet we shift every joint uniformly, so those become ``(-2, -2)`` and must be
ignored through ``joints_vis``.

HRNet also moves the centre down by ``15 * scale`` pixels and enlarges the scale by 1.25 "to avoid
cropping limbs" (only when ``center[0] != -1``); this is what the papers' numbers were obtained with, so
``hrnet_adjust=True`` is the default.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from poserepro.errors import DataError
from poserepro.io import read_json
from poserepro.keypoints import MPII_FLIP_PAIRS, MPII_KEYPOINTS

__all__ = ["MPII_FLIP_PAIRS", "MPII_KEYPOINTS", "MPII_NUM_JOINTS", "load_mpii_annotations"]

MPII_NUM_JOINTS = 16


def _bad(path: Path, index: int, what: str) -> DataError:
    return DataError(
        f"{path}: entry {index} {what}; fix the annotation file (HRNet-style MPII JSON expected)"
    )


def load_mpii_annotations(
    json_path: str | Path,
    *,
    hrnet_adjust: bool = True,
    zero_based: bool = True,
    require_joints: bool = True,
) -> list[dict[str, Any]]:
    """Load and validate an HRNet-style MPII JSON file.

    Args:
        json_path: path to ``train.json`` / ``valid.json`` / ``test.json`` (or a file of the same layout).
        hrnet_adjust: apply HRNet's ``center[1] += 15 * scale; scale *= 1.25`` (skipped where
            ``center[0] == -1``, as HRNet does).
        zero_based: subtract 1 from joints and centre (the file is 1-based MATLAB indexing).
        require_joints: if False, entries without ``joints`` (the test split) get zeros and visibility 0.

    Returns:
        One dict per person: ``image`` (str, file name below ``images/``), ``center`` (float64 (2,)),
        ``scale`` (float64 (2,), ``[s, s]`` in units of 200 px, after the adjustment), ``joints``
        (float64 (16, 2), pixel x/y), ``joints_vis`` (float64 (16,), 1 = labelled), ``index`` (int, position
        in the file).

    Raises:
        DataError: missing / unreadable file, not a list, missing keys, wrong joint count or non-finite
            values.
    """
    path = Path(json_path)
    raw = read_json(path, "MPII annotation file", missing="get the HRNet-style annot/*.json with "
                    "`poserepro data download mpii --parts json`")
    if not isinstance(raw, list):
        raise DataError(f"{path} must hold a list of person entries, got {type(raw).__name__}")

    out: list[dict[str, Any]] = []
    for i, a in enumerate(raw):
        if not isinstance(a, dict):
            raise _bad(path, i, f"is a {type(a).__name__}, not an object")
        needed = ["image", "center", "scale"] + (["joints", "joints_vis"] if require_joints else [])
        missing = [k for k in needed if k not in a]
        if missing:
            raise _bad(path, i, f"lacks {', '.join(repr(k) for k in missing)}")
        if not isinstance(a["image"], str) or not a["image"]:
            raise _bad(path, i, "has no image file name")
        try:
            center = np.asarray(a["center"], dtype=np.float64).reshape(-1)
            scale_value = float(a["scale"])
        except (TypeError, ValueError):
            raise _bad(path, i, "has a non-numeric center or scale") from None
        if center.shape != (2,) or not np.all(np.isfinite(center)):
            raise _bad(path, i, f"has center {a['center']!r}, expected two finite numbers")
        if not math.isfinite(scale_value) or scale_value <= 0:
            raise _bad(path, i, f"has scale {a['scale']!r}, expected a positive number")

        if "joints" in a:
            try:
                joints = np.asarray(a["joints"], dtype=np.float64)
                vis = np.asarray(a.get("joints_vis", np.ones(len(joints))), dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise _bad(path, i, "has non-numeric joints") from None
            if joints.ndim != 2 or joints.shape[1] < 2:
                raise _bad(path, i, f"has joints of shape {joints.shape}, expected ({MPII_NUM_JOINTS}, 2)")
            if joints.shape[0] != MPII_NUM_JOINTS:
                raise _bad(path, i, f"has {joints.shape[0]} joints, expected {MPII_NUM_JOINTS}")
            joints = joints[:, :2].copy()
            if vis.shape != (MPII_NUM_JOINTS,):
                raise _bad(path, i, f"has {vis.size} joints_vis values, expected {MPII_NUM_JOINTS}")
            if not np.all(np.isfinite(joints)) or not np.all(np.isfinite(vis)):
                raise _bad(path, i, "has non-finite joint values")
            vis = (vis > 0).astype(np.float64)
        else:
            joints = np.zeros((MPII_NUM_JOINTS, 2), dtype=np.float64)
            vis = np.zeros(MPII_NUM_JOINTS, dtype=np.float64)

        scale = np.array([scale_value, scale_value], dtype=np.float64)
        if hrnet_adjust and center[0] != -1:
            center[1] = center[1] + 15.0 * scale[1]
            scale = scale * 1.25
        if zero_based:
            center = center - 1.0
            joints = joints - 1.0
        out.append(
            {
                "image": a["image"],
                "center": center,
                "scale": scale,
                "joints": joints,
                "joints_vis": vis,
                "index": i,
            }
        )
    return out
