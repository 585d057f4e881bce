"""Embedded procedural synthetic multi-person 2-D pose benchmark, written in real COCO keypoint format.

:func:`synthesize` renders ``num_train + num_val`` images of articulated "stick-and-capsule" people and
writes::

    out_dir/images/{train,val}/%012d.jpg
    out_dir/annotations/person_keypoints_{train,val}.json   # COCO keypoints (17 joints, COCO order)
    out_dir/detections/person_detections_val.json           # HRNet-style person detections for top-down eval
    out_dir/synth_config.json                               # the config; written last (= completion marker)

How a person is made
    A 3-D skeleton with human proportions (units of stature) is posed with joint angles drawn from one of a
    few pose families (standing, walking, arms raised, sitting, crouching) inside anatomical limits (elbows
    and knees bend one way only), turned about the vertical axis (mostly facing the camera, sometimes side or
    back views), projected orthographically, rolled in the image plane (mostly upright, sometimes up to
    +-60 degrees or lying), scaled and placed (possibly truncated by the image border).

    Parts are drawn far-to-near as shaded, tapered capsules (limbs), a projected box (torso) and a head disc
    with hair, face, eyes, nose and ears that are drawn only where they face the camera.  The person's *left*
    limbs always use a warm hue (red/orange/yellow) and the *right* limbs a cool hue (cyan/blue), with
    per-person random shades, so left and right are distinguishable (flip augmentation / flip test matter);
    the nose and feet also point in the facing direction.

Labels
    Each part is drawn into a layer-id map as well as into the image.  A keypoint whose pixel ends up covered
    by a part that does not own it (another person in front, its own torso in a side view, an occluder blob)
    is labelled ``v=1`` with its true coordinates, as are face points turned away from the camera; keypoints
    outside the image are ``v=0, x=y=0``; everything else is ``v=2``.  ``bbox`` and ``area`` come from the
    person's *visible* silhouette pixels (COCO uses the segmentation area as the OKS scale).  Persons with no
    visible pixel at all are not annotated; persons with pixels but no labelled keypoint are kept with
    ``num_keypoints == 0`` (COCO convention; training loaders skip them).

Difficulty knobs (all in :class:`SynthConfig`)
    ``clutter`` (background shapes, texture and limb-like distractor strokes in the limb hues),
    ``occlusion`` (how often people are placed overlapping each other, number of occluder blobs),
    ``noise`` (Gaussian noise, blur, brightness/contrast and lighting variation),
    ``pose`` (how often people are seen from the side or back, rolled in the image plane or lying),
    ``min_person_height`` / ``max_person_height`` (scale range), ``persons_per_image`` and ``jpeg_quality``.

Determinism
    Every image uses its own ``numpy.random.default_rng`` seeded from ``(seed, split, index)``, so the output
    (JSON and JPEG bytes) depends only on the config, never on ``workers``.  All files are written to a
    temporary name and moved into place with :func:`os.replace`.
"""

from __future__ import annotations

import colorsys
import functools
import json
import math
import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from ..errors import DataError
from ..keypoints import COCO_FLIP_PAIRS, COCO_KEYPOINTS

__all__ = [
    "FLIP_PAIRS",
    "KEYPOINT_NAMES",
    "PERSON_CATEGORY",
    "SKELETON",
    "VAL_ID_OFFSET",
    "SynthConfig",
    "SynthSummary",
    "synthesize",
]

#: The 17 COCO keypoint names, in COCO order (the one definition lives in :mod:`poserepro.keypoints`).
KEYPOINT_NAMES: tuple[str, ...] = COCO_KEYPOINTS

#: The standard COCO person skeleton (1-based keypoint indices), as in ``person_keypoints_val2017.json``.
SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

#: Left/right keypoint pairs (0-based), for flip augmentation and flip test.
FLIP_PAIRS: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS

#: The COCO person category entry.
PERSON_CATEGORY: dict[str, Any] = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(KEYPOINT_NAMES),
    "skeleton": [list(p) for p in SKELETON],
}

#: Val image ids and annotation ids start at ``VAL_ID_OFFSET + 1`` (train ones at 1), so merged files stay
#: unambiguous.
VAL_ID_OFFSET = 1_000_000

GENERATOR_VERSION = 2
SPLITS: tuple[str, ...] = ("train", "val")
_SPLIT_CODE = {"train": 1, "val": 2}
_DET_CODE = 7
_BANK_CODE = 99
_MAX_PERSONS = 12


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.  All difficulty knobs are floats in ``[0, 1]``.

    The defaults are the calibrated benchmark (README "Calibration"): the CI budget of the smoke TransPose-R lands
    in the middle of the AP range and longer training or bigger models score higher.  Occlusion and viewpoint
    variety are what make the set hard for a small model trained for minutes (each of them alone at 0 roughly
    doubles that AP; clutter at 0 changes nothing), so they sit below the middle of their range.
    """

    num_train: int = 2000
    num_val: int = 300
    seed: int = 0
    image_size: tuple[int, int] = (256, 256)  # (width, height) of each image
    persons_per_image: tuple[int, int] = (1, 3)  # inclusive min, max
    min_person_height: float = 0.35  # person stature as a fraction of the image height (lower bound)
    max_person_height: float = 0.95
    clutter: float = 0.5  # background clutter: shapes, textures, limb-like distractor strokes
    occlusion: float = 0.1  # persons overlapping each other, random occluder blobs
    noise: float = 0.35  # image noise / blur / lighting variation
    pose: float = 0.15  # viewpoint / in-plane rotation variety: side and back views, rolled and lying people
    jpeg_quality: int = 90


@dataclass(frozen=True)
class SynthSummary:
    """Where :func:`synthesize` put things and how much it wrote."""

    root: Path
    num_images: dict[str, int]
    num_persons: dict[str, int]
    ann_files: dict[str, Path]
    det_file: Path
    image_dirs: dict[str, Path]


# ----------------------------------------------------------------------------------------------------------
# validation and file helpers
# ----------------------------------------------------------------------------------------------------------


def _check_config(config: SynthConfig) -> None:
    """Raise :class:`DataError` with a one-line message for any unusable config value."""
    if not isinstance(config, SynthConfig):
        raise DataError(f"config must be a SynthConfig, got {type(config).__name__}")

    def _int(name: str, value: Any, lo: int, hi: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise DataError(f"SynthConfig.{name} must be an integer in [{lo}, {hi}], got {value!r}")

    def _float(name: str, value: Any, lo: float, hi: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= float(value) <= hi:
            raise DataError(f"SynthConfig.{name} must be a number in [{lo}, {hi}], got {value!r}")

    def _pair(name: str, value: Any) -> tuple[Any, Any]:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise DataError(f"SynthConfig.{name} must be a pair of integers, got {value!r}")
        return value[0], value[1]

    _int("num_train", config.num_train, 0, 10**7)
    _int("num_val", config.num_val, 1, 10**7)
    _int("seed", config.seed, 0, 2**63 - 1)
    w, h = _pair("image_size", config.image_size)
    _int("image_size[0] (width)", w, 32, 4096)
    _int("image_size[1] (height)", h, 32, 4096)
    pmin, pmax = _pair("persons_per_image", config.persons_per_image)
    _int("persons_per_image[0]", pmin, 1, _MAX_PERSONS)
    _int("persons_per_image[1]", pmax, 1, _MAX_PERSONS)
    if pmin > pmax:
        raise DataError(f"SynthConfig.persons_per_image min {pmin} is larger than max {pmax}; swap them")
    _float("min_person_height", config.min_person_height, 0.05, 2.0)
    _float("max_person_height", config.max_person_height, 0.05, 2.0)
    if config.min_person_height > config.max_person_height:
        raise DataError(
            f"SynthConfig.min_person_height {config.min_person_height} is larger than "
            f"max_person_height {config.max_person_height}"
        )
    _float("clutter", config.clutter, 0.0, 1.0)
    _float("occlusion", config.occlusion, 0.0, 1.0)
    _float("noise", config.noise, 0.0, 1.0)
    _float("pose", config.pose, 0.0, 1.0)
    _int("jpeg_quality", config.jpeg_quality, 1, 100)
    if config.num_train >= VAL_ID_OFFSET or config.num_train * pmax >= VAL_ID_OFFSET:
        raise DataError(
            f"SynthConfig.num_train * persons_per_image max must stay below {VAL_ID_OFFSET} "
            "(val ids start there); generate fewer train images"
        )


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and :func:`os.replace` (never half-written)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _dump_json(obj: Any) -> bytes:
    """Deterministic compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


# ----------------------------------------------------------------------------------------------------------
# 3-D body model
# ----------------------------------------------------------------------------------------------------------

# internal joint indices: 0..16 are the COCO keypoints, then helper points
_NOSE, _LEYE, _REYE, _LEAR, _REAR = 0, 1, 2, 3, 4
_LSHO, _RSHO, _LELB, _RELB, _LWRI, _RWRI = 5, 6, 7, 8, 9, 10
_LHIP, _RHIP, _LKNE, _RKNE, _LANK, _RANK = 11, 12, 13, 14, 15, 16
_HEAD, _NECK, _PELVIS, _LHAND, _RHAND, _LTOE, _RTOE = 17, 18, 19, 20, 21, 22, 23
_NJ = 24

_DOWN = np.array([0.0, 1.0, 0.0])
# face directions in the head frame (x = person's left, y = down, z = forward), and the minimum camera-facing
# component (z after all rotations) for the point to count as visible
_FACE_DIRS = {
    _NOSE: ((0.0, 0.28, 0.96), -0.05),
    _LEYE: ((0.36, -0.10, 0.93), 0.12),
    _REYE: ((-0.36, -0.10, 0.93), 0.12),
    _LEAR: ((0.97, 0.02, -0.22), -0.35),
    _REAR: ((-0.97, 0.02, -0.22), -0.35),
}
_FAMILIES = ("standing", "walking", "arms_raised", "sitting", "crouching")
_FAMILY_P = (0.30, 0.28, 0.17, 0.13, 0.12)


def _rx(a: float) -> np.ndarray:
    """Rotation about x; ``_rx(b) @ down`` raises a limb forward by ``b`` radians."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    """Rotation about the vertical axis (yaw); ``a = 0`` faces the camera, ``+pi/2`` faces image right."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    """Rotation in the frontal plane; ``_rz(a) @ down`` swings a limb towards ``+x`` (person's left)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def _sample_angles(rng: np.random.Generator) -> dict[str, Any]:
    """Joint angles (degrees) of one pose family, inside anatomical limits.

    ``arms[i]`` / ``legs[i]`` (i = 0 left, 1 right) are ``(abduction, forward raise, flexion, twist)``.
    """
    u = rng.uniform
    fam = _FAMILIES[int(rng.choice(len(_FAMILIES), p=_FAMILY_P))]

    def std_arm() -> list[float]:
        return [u(4, 35), u(-20, 35), u(0, 60), u(-20, 60)]

    def std_leg() -> list[float]:
        return [u(-3, 15), u(-10, 20), u(0, 20), u(-10, 10)]

    def gesture_arm() -> list[float]:
        if rng.random() < 0.25:  # hand on hip
            return [u(35, 60), u(-15, 10), u(80, 125), u(70, 100)]
        return [u(0, 120), u(-30, 120), u(0, 140), u(-30, 100)]

    lean, lateral = u(-6, 10), u(-8, 8)
    if fam == "standing":
        arms = [gesture_arm() if rng.random() < 0.3 else std_arm() for _ in range(2)]
        legs = [std_leg(), std_leg()]
    elif fam == "walking":
        ph, amp_a, amp_l = u(0, 2 * math.pi), u(15, 45), u(15, 35)
        arms, legs = [], []
        for side_sign in (1.0, -1.0):
            arms.append([u(3, 15), side_sign * amp_a * math.sin(ph), u(10, 70), u(-10, 30)])
            hb = -side_sign * amp_l * math.sin(ph)
            legs.append([u(-3, 8), hb, u(15, 55) if hb < 0 else u(0, 25), u(-8, 8)])
        lean = u(0, 12)
    elif fam == "arms_raised":
        which = int(rng.integers(3))  # 0 both, 1 left only, 2 right only
        arms = []
        for i in range(2):
            if which == 0 or which == i + 1:
                if rng.random() < 0.5:
                    arms.append([u(70, 175), u(-10, 40), u(0, 120), u(-30, 90)])
                else:
                    arms.append([u(0, 40), u(90, 180), u(0, 120), u(-30, 90)])
            else:
                arms.append(std_arm())
        wide = rng.random() < 0.3
        legs = [[u(10, 30), u(-5, 10), u(0, 15), 0.0] if wide else std_leg() for _ in range(2)]
    elif fam == "sitting":
        arms = [[u(0, 30), u(-10, 60), u(20, 110), u(-20, 60)] for _ in range(2)]
        legs = [[u(-5, 25), u(65, 110), u(60, 115), u(-10, 10)] for _ in range(2)]
        lean = u(-15, 20)
    else:  # crouching
        arms = [[u(0, 35), u(0, 90), u(10, 100), u(-20, 60)] for _ in range(2)]
        legs = [[u(0, 30), u(95, 135), u(100, 150), u(-10, 10)] for _ in range(2)]
        lean = u(20, 60)
    # anatomical limits
    for a in arms:
        a[0] = float(np.clip(a[0], -10, 178))
        a[1] = float(np.clip(a[1], -50, 180))
        a[2] = float(np.clip(a[2], 0, 150))
        a[3] = float(np.clip(a[3], -40, 110))
    for leg in legs:
        leg[0] = float(np.clip(leg[0], -15, 50))
        leg[1] = float(np.clip(leg[1], -30, 135))
        leg[2] = float(np.clip(leg[2], 0, 155))
        leg[3] = float(np.clip(leg[3], -20, 20))
    head = (
        float(np.clip(rng.normal(0, 20), -60, 60)),
        float(np.clip(rng.normal(0, 10), -30, 30)),
        float(np.clip(rng.normal(0, 8), -25, 25)),
    )
    return {"family": fam, "arms": arms, "legs": legs, "lean": lean, "lateral": lateral, "head": head}


@dataclass
class _Person:
    """A posed, projected person (pixel units)."""

    xy: np.ndarray  # (_NJ, 2) joint positions
    z: np.ndarray  # (_NJ,) depth towards the camera (larger = nearer)
    face_vis: dict[int, bool]  # face keypoint -> turned towards the camera
    torso_xy: np.ndarray  # (8, 2) projected torso box corners
    torso_z: float
    radii: dict[str, float]  # part radii in pixels
    head_r: float
    head_fwd: np.ndarray  # (3,) head forward direction in camera frame
    stature: float
    extent: np.ndarray  # (4,) x0, y0, x1, y1 of the whole figure in pixels


def _build_person(
    rng: np.random.Generator, stature_px: float, pose: float = 0.5,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Sample proportions, a pose and a viewpoint; return 3-D helper data in units of stature.

    ``pose`` (the :class:`SynthConfig` knob) sets how often the person is seen from the side or back and rolled
    in the image plane: at 0.5, 55 % near-frontal, 12 % from the back, 33 % any yaw; 80 % upright, 15 % rolled up
    to +-60 degrees, 5 % lying.  Only the thresholds move with the knob, so the random stream is the same.

    Returns ``(points3d, extra)`` where ``points3d`` is ``(_NJ + 8, 3)`` (joints then torso box corners) in
    the camera frame after yaw, and ``extra`` holds radii, face visibility and the in-plane transform params.
    """
    u = rng.uniform

    def jit(sd: float = 0.06) -> float:
        return float(math.exp(rng.normal(0.0, sd)))

    # proportions (fractions of stature), with per-person jitter (symmetric, plus a tiny asymmetry)
    tl = 0.29 * jit()  # pelvis -> shoulder line
    sw = 0.115 * u(0.85, 1.18)  # half shoulder width
    hw = 0.085 * u(0.85, 1.18)  # half hip width
    neck_len = 0.045 * jit(0.1)
    head_r = 0.066 * u(0.9, 1.12)
    ua, fa, hand = 0.175 * jit(), 0.15 * jit(), 0.06 * jit(0.1)
    th, sh, foot = 0.245 * jit(), 0.245 * jit(), 0.075 * jit(0.1)
    wj = u(0.8, 1.35)  # limb width jitter
    radii = {
        "ua0": 0.034 * wj, "ua1": 0.027 * wj, "fa0": 0.026 * wj, "fa1": 0.020 * wj,
        "th0": 0.052 * wj, "th1": 0.038 * wj, "sh0": 0.037 * wj, "sh1": 0.026 * wj,
        "hand": 0.022 * u(0.9, 1.2), "foot": 0.022 * u(0.9, 1.2), "neck": 0.03 * u(0.85, 1.2),
    }  # fmt: skip
    chest_d, hip_d = 0.06 * u(0.85, 1.25), 0.055 * u(0.85, 1.25)

    ang = _sample_angles(rng)
    d2r = math.pi / 180.0
    J = np.zeros((_NJ, 3))
    J[_LHIP] = (hw, 0.0, 0.0)
    J[_RHIP] = (-hw, 0.0, 0.0)
    rt = _rz(ang["lateral"] * d2r) @ _rx(-ang["lean"] * d2r)  # torso rotation about the pelvis
    J[_NECK] = rt @ np.array([0.0, -tl, 0.0])
    J[_LSHO] = rt @ np.array([sw, -tl + 0.012, 0.0])
    J[_RSHO] = rt @ np.array([-sw, -tl + 0.012, 0.0])

    # arms (parent frame: torso); flexion brings the forearm forward, twist swings it towards the midline
    for i, (sho, elb, wri, tip) in enumerate(((_LSHO, _LELB, _LWRI, _LHAND), (_RSHO, _RELB, _RWRI, _RHAND))):
        s = 1.0 if i == 0 else -1.0
        a, b, fl, tw = (v * d2r for v in ang["arms"][i])
        ru = rt @ _rz(s * a) @ _rx(b)
        d1 = ru @ _DOWN
        d2 = ru @ np.array([-s * math.sin(fl) * math.sin(tw), math.cos(fl), math.sin(fl) * math.cos(tw)])
        J[elb] = J[sho] + ua * jit(0.02) * d1
        J[wri] = J[elb] + fa * jit(0.02) * d2
        J[tip] = J[wri] + hand * d2

    # legs (parent frame: pelvis); knee flexion brings the shin backwards
    for i, (hip, kne, ank, toe) in enumerate(((_LHIP, _LKNE, _LANK, _LTOE), (_RHIP, _RKNE, _RANK, _RTOE))):
        s = 1.0 if i == 0 else -1.0
        a, b, fl, tw = (v * d2r for v in ang["legs"][i])
        ru = _rz(s * a) @ _rx(b)
        d1 = ru @ _DOWN
        d2 = ru @ np.array([-s * math.sin(fl) * math.sin(tw), math.cos(fl), -math.sin(fl) * math.cos(tw)])
        J[kne] = J[hip] + th * jit(0.02) * d1
        J[ank] = J[kne] + sh * jit(0.02) * d2
        ankle_flex = u(-15, 20) * d2r
        fdir = ru @ _rx(-fl) @ _rx(ankle_flex) @ _unit((0.0, 0.3, 1.0))
        J[toe] = J[ank] + foot * fdir

    # head and face
    hy, hp, hr = (v * d2r for v in ang["head"])
    rh = rt @ _ry(hy) @ _rx(hp) @ _rz(hr)
    J[_HEAD] = J[_NECK] + rt @ np.array([0.0, -(neck_len + head_r), 0.012])
    for k, (d, _) in _FACE_DIRS.items():
        J[k] = J[_HEAD] + 0.97 * head_r * (rh @ _unit(d))

    # torso box corners (shoulder line and hip line, front and back)
    corners = []
    for yy, half_w, dz in ((-tl - 0.005, sw + 0.022, chest_d), (0.03, hw + 0.04, hip_d)):
        for sx in (1.0, -1.0):
            for sz in (1.0, -1.0):
                p = np.array([sx * half_w, yy, sz * dz])
                corners.append(rt @ p if yy < 0 else p)
    pts = np.concatenate([J, np.asarray(corners)], axis=0)

    # viewpoint: mostly facing the camera, sometimes from the back, otherwise any yaw
    r = rng.random()
    p_front, p_back = 1.0 - 0.9 * pose, 0.24 * pose
    if r < p_front:
        yaw = rng.normal(0.0, 25.0)
    elif r < p_front + p_back:
        yaw = 180.0 + rng.normal(0.0, 25.0)
    else:
        yaw = u(-180.0, 180.0)
    ry = _ry(yaw * d2r)
    pts = pts @ ry.T
    face_vis = {}
    for k, (d, thr) in _FACE_DIRS.items():
        face_vis[k] = bool((ry @ rh @ _unit(d))[2] > thr)
    head_fwd = ry @ rh @ np.array([0.0, 0.0, 1.0])

    r = rng.random()
    p_upright, p_rolled = 1.0 - 0.4 * pose, 0.3 * pose
    if r < p_upright:
        roll = rng.normal(0.0, 6.0)
    elif r < p_upright + p_rolled:
        roll = u(-60.0, 60.0)
    else:
        roll = (90.0 + rng.normal(0.0, 12.0)) * (1.0 if rng.random() < 0.5 else -1.0)
    extra = {
        "radii": {k: v * stature_px for k, v in radii.items()},
        "head_r": head_r * stature_px,
        "face_vis": face_vis,
        "head_fwd": head_fwd,
        "roll": roll * d2r,
        "aspect": u(0.9, 1.1),
        "family": ang["family"],
    }
    return pts, extra


def _place_person(
    rng: np.random.Generator,
    stature_px: float,
    img_w: int,
    img_h: int,
    near: np.ndarray | None,
    others: list[np.ndarray],
    tries: int,
    pose: float = 0.5,
) -> _Person:
    """Pose, project, roll, scale and translate one person.

    ``near`` is a centre to overlap with, if any; otherwise the best of ``tries`` random positions (least
    overlap with the ``others`` extents ``[x0, y0, x1, y1]``) is used.
    """
    pts, ex = _build_person(rng, stature_px, pose)
    xy = pts[:, :2] * np.array([ex["aspect"], 1.0])
    c, s = math.cos(ex["roll"]), math.sin(ex["roll"])
    xy = xy @ np.array([[c, s], [-s, c]]) * stature_px
    z = pts[:, 2] * stature_px
    # extent of the figure (joints, head disc, torso) to place it
    lo = np.minimum(xy.min(axis=0), xy[_HEAD] - ex["head_r"])
    hi = np.maximum(xy.max(axis=0), xy[_HEAD] + ex["head_r"])
    size = hi - lo
    centre = (lo + hi) / 2
    dims = np.array([img_w, img_h], dtype=np.float64)
    # range of bbox centres that keep the figure inside the image, widened by ``slack`` (truncation)
    slack = 0.0 if rng.random() < 0.7 else rng.uniform(0.1, 0.45)
    tlo, thi = size / 2 - slack * size, dims - size / 2 + slack * size
    a, b = np.minimum(tlo, thi), np.maximum(tlo, thi)
    if near is not None:  # overlap an earlier (farther) person
        offset = np.array(
            [
                rng.uniform(0.2, 0.75) * size[0] * (1 if rng.random() < 0.5 else -1),
                rng.normal(0.0, 0.12) * size[1],
            ]
        )
        target = np.clip(near + offset, a - 0.15 * size, b + 0.15 * size)
    else:
        best = -1.0
        for _ in range(max(1, tries)):
            cand = a + rng.random(2) * (b - a)
            lo_c, hi_c = cand - size / 2, cand + size / 2
            overlap = 0.0
            for o in others:
                ov = np.clip(np.minimum(hi_c, o[2:]) - np.maximum(lo_c, o[:2]), 0.0, None)
                overlap += float(ov[0] * ov[1])
            if best < 0 or overlap < best:
                best, target = overlap, cand
    shift = target - centre
    xy = xy + shift
    return _Person(
        extent=np.concatenate([lo + shift, hi + shift]),
        xy=xy[:_NJ],
        z=z[:_NJ],
        face_vis=ex["face_vis"],
        torso_xy=xy[_NJ:],
        torso_z=float(z[[_LSHO, _RSHO, _LHIP, _RHIP]].mean()),
        radii=ex["radii"],
        head_r=ex["head_r"],
        head_fwd=ex["head_fwd"],
        stature=stature_px,
    )


# ----------------------------------------------------------------------------------------------------------
# drawing helpers
# ----------------------------------------------------------------------------------------------------------

_SHIFT = 4
_ONE = 1 << _SHIFT
_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 14, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 14, endpoint=False))], axis=1)  # fmt: skip

_SKIN = ((60, 90, 150), (80, 120, 190), (110, 160, 225), (140, 180, 235), (45, 65, 110), (95, 140, 205))
_HAIR = ((20, 20, 25), (30, 45, 70), (40, 70, 120), (15, 25, 40), (150, 170, 190), (60, 60, 60))


def _hsv(h_deg: float, s: float, v: float) -> tuple[float, float, float]:
    """HSV (hue in degrees, s and v in [0, 1]) to a BGR tuple in [0, 255]."""
    r, g, b = colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return (b * 255.0, g * 255.0, r * 255.0)


def _scale(col: tuple[float, float, float], f: float, add: float = 0.0) -> tuple[float, float, float]:
    return tuple(float(min(255.0, max(0.0, c * f + add))) for c in col)  # type: ignore[return-value]


def _warm_hue(rng: np.random.Generator) -> float:
    """Hue family of the person's LEFT side: reds / oranges / yellows."""
    return float(rng.uniform(-22.0, 48.0))


def _cool_hue(rng: np.random.Generator) -> float:
    """Hue family of the person's RIGHT side: cyans / blues."""
    return float(rng.uniform(175.0, 245.0))


def _fix(pts: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(pts, dtype=np.float64) * _ONE).astype(np.int32)


def _capsule_poly(a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    """Convex hull (fixed point) of two discs: a tapered limb."""
    pts = np.concatenate([a + max(ra, 0.7) * _CIRCLE, b + max(rb, 0.7) * _CIRCLE], axis=0)
    return cv2.convexHull(_fix(pts))


def _shaded_capsule(
    img: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    ra: float,
    rb: float,
    col: tuple[float, float, float],
    light: np.ndarray,
    layer: np.ndarray | None = None,
    layer_id: int = 0,
) -> None:
    """A tapered limb with a darker rim and an off-centre highlight (reads as a shaded cylinder)."""
    poly = _capsule_poly(a, b, ra, rb)
    cv2.fillConvexPoly(img, poly, _scale(col, 0.7), cv2.LINE_AA, _SHIFT)
    d = b - a
    n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-6)
    off = n * (0.28 if float(n @ light) >= 0 else -0.28)
    hl = _capsule_poly(a + off * ra, b + off * rb, 0.5 * ra, 0.5 * rb)
    cv2.fillConvexPoly(img, hl, _scale(col, 1.08, 12.0), cv2.LINE_AA, _SHIFT)
    if layer is not None:
        cv2.fillConvexPoly(layer, poly, int(layer_id), cv2.LINE_8, _SHIFT)


def _disc(img: np.ndarray, c: np.ndarray, r: float, col: Any, aa: bool = True) -> None:
    cv2.circle(img, tuple(int(v) for v in _fix(c)), int(round(max(r, 0.6) * _ONE)), col, -1,
               cv2.LINE_AA if aa else cv2.LINE_8, _SHIFT)  # fmt: skip


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int, channels: int = 1) -> np.ndarray:
    """Zero-mean smooth noise of shape (h, w[, channels]) with about ``cells`` blobs across the width.

    A random grid is upsampled bicubically to an intermediate size (cheap) and then bilinearly to full size.
    """
    gw = max(2, cells)
    gh = max(2, int(round(cells * h / w)))
    shape = (gh, gw) if channels == 1 else (gh, gw, channels)
    grid = rng.standard_normal(shape).astype(np.float32)
    mw, mh = min(w, 4 * gw), min(h, 4 * gh)
    if (mw, mh) != (w, h):
        grid = cv2.resize(grid, (mw, mh), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR if (mw, mh) != (w, h) else cv2.INTER_CUBIC)


def _bank_pad(w: int, h: int) -> int:
    """Margin of the white-noise bank: a full image size for small images, 64 px for big ones (memory)."""
    return min(w, h) if w * h <= 512 * 512 else 64


@functools.lru_cache(maxsize=2)
def _white_noise_bank(seed: int, w: int, h: int) -> np.ndarray:
    """A standard-normal bank a little larger than one image, made once per process; images take random crops
    of it, which is much faster than sampling fresh noise per image."""
    pad = _bank_pad(w, h)
    return _rng(seed, _BANK_CODE).standard_normal((h + pad, w + pad, 3), dtype=np.float32)


def _white_noise(rng: np.random.Generator, seed: int, w: int, h: int) -> np.ndarray:
    """Per-pixel, per-channel unit Gaussian noise of shape (h, w, 3) (a random crop of the bank)."""
    bank = _white_noise_bank(seed, w, h)
    pad = _bank_pad(w, h)
    oy, ox = int(rng.integers(0, pad + 1)), int(rng.integers(0, pad + 1))
    return bank[oy : oy + h, ox : ox + w]


# ----------------------------------------------------------------------------------------------------------
# image rendering
# ----------------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, w: int, h: int, clutter: float) -> np.ndarray:
    """Gradient + texture + random shapes + limb-like distractor strokes (amount set by ``clutter``)."""
    c0 = np.array(_hsv(rng.uniform(0, 360), rng.uniform(0, 0.6), rng.uniform(0.25, 0.9)), np.float32)
    c1 = np.array(_hsv(rng.uniform(0, 360), rng.uniform(0, 0.6), rng.uniform(0.25, 0.9)), np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    # smooth layers are built at quarter resolution and upsampled once
    lw, lh = max(8, w // 4), max(8, h // 4)
    xs = np.linspace(0.0, 1.0, lw, dtype=np.float32)
    ys = np.linspace(0.0, 1.0, lh, dtype=np.float32)
    t = math.cos(ang) * xs[None, :] + math.sin(ang) * ys[:, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    img += _smooth_noise(rng, lw, lh, 5, 3) * (4.0 + 16.0 * clutter)
    img += _smooth_noise(rng, lw, lh, 28, 1)[..., None] * (2.0 + 18.0 * clutter)
    img = cv2.resize(np.clip(img, 0, 255), (w, h), interpolation=cv2.INTER_LINEAR)
    out = (img + np.float32(0.5)).astype(np.uint8)

    diag = math.hypot(w, h)
    for _ in range(int(rng.poisson(1.0 + 12.0 * clutter))):
        col = _hsv(rng.uniform(0, 360), rng.uniform(0, 0.9), rng.uniform(0.1, 1.0))
        kind = int(rng.integers(4))
        thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
        p = rng.uniform([0, 0], [w, h])
        sz = rng.uniform(0.04, 0.3) * diag
        if kind == 0:
            q = p + rng.uniform(-sz, sz, 2)
            cv2.rectangle(out, tuple(_fix(p)), tuple(_fix(q)), col, thick, cv2.LINE_AA, _SHIFT)
        elif kind == 1:
            cv2.circle(out, tuple(_fix(p)), int(sz * 0.4 * _ONE), col, thick, cv2.LINE_AA, _SHIFT)
        elif kind == 2:
            q = p + rng.uniform(-sz, sz, 2)
            cv2.line(out, tuple(_fix(p)), tuple(_fix(q)), col, int(rng.integers(1, 5)), cv2.LINE_AA, _SHIFT)
        else:
            tri = p + rng.uniform(-sz / 2, sz / 2, (3, 2))
            cv2.fillConvexPoly(out, _fix(tri), col, cv2.LINE_AA, _SHIFT)
    # limb-like distractor strokes in the same hue families as real limbs
    light = _unit((1.0, -1.0, 0.0))[:2]
    for _ in range(int(rng.poisson(4.0 * clutter))):
        hue = _warm_hue(rng) if rng.random() < 0.5 else _cool_hue(rng)
        col = _hsv(hue, rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0))
        a = rng.uniform([0, 0], [w, h])
        r0 = rng.uniform(0.012, 0.03) * h
        ang = rng.uniform(0, 2 * np.pi)
        for _seg in range(int(rng.integers(1, 3)) + 1):
            ln = rng.uniform(0.06, 0.16) * h
            b = a + ln * np.array([math.cos(ang), math.sin(ang)])
            r1 = r0 * rng.uniform(0.7, 0.95)
            _shaded_capsule(out, a, b, r0, r1, col, light)
            a, r0 = b, r1
            ang += rng.uniform(-1.6, 1.6)
    # head-like discs
    for _ in range(int(rng.poisson(0.8 * clutter))):
        col = tuple(float(c) for c in np.array(_SKIN[int(rng.integers(len(_SKIN)))]) * rng.uniform(0.85, 1.1))
        _disc(out, rng.uniform([0, 0], [w, h]), rng.uniform(0.02, 0.05) * h, col)
    return out


def _draw_person(
    img: np.ndarray,
    layer: np.ndarray,
    owners: list[int],
    person: _Person,
    pid: int,
    light: np.ndarray,
    rng: np.random.Generator,
) -> dict[int, list[int]]:
    """Draw ``person`` far-to-near into ``img`` and its part ids into ``layer``.

    Returns, for every COCO keypoint, the layer ids of the parts that own it (a keypoint covered by any other
    layer counts as occluded).
    """
    P, R = person.xy, person.radii
    left_hue, right_hue = _warm_hue(rng), _cool_hue(rng)
    cols = {}
    for side, hue in (("L", left_hue), ("R", right_hue)):
        sat, val = rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
        cols[side + "arm"] = _hsv(hue, sat, val)
        fhue = hue + rng.uniform(-10, 10)
        cols[side + "farm"] = _hsv(fhue, sat * rng.uniform(0.8, 1.0), val * rng.uniform(0.8, 1.1))
        leg_hue = hue + rng.uniform(-15, 15)
        cols[side + "leg"] = _hsv(leg_hue, rng.uniform(0.55, 1.0), rng.uniform(0.5, 0.95))
        shue = leg_hue + rng.uniform(-8, 8)
        cols[side + "shin"] = _hsv(shue, rng.uniform(0.55, 1.0), rng.uniform(0.5, 0.95))
    torso_col = _hsv(rng.uniform(0, 360), rng.uniform(0.05, 0.55), rng.uniform(0.3, 0.95))
    skin_base = np.array(_SKIN[int(rng.integers(len(_SKIN)))], dtype=np.float64)
    skin = tuple(float(c) for c in np.clip(skin_base * rng.uniform(0.9, 1.1), 0, 255))
    hair = _HAIR[int(rng.integers(len(_HAIR)))]
    shoe = _hsv(rng.uniform(0, 360), rng.uniform(0, 0.5), rng.uniform(0.1, 0.4))

    # parts: (depth, kind, payload, owned keypoints)
    parts: list[tuple[float, str, tuple[Any, ...], tuple[int, ...]]] = []

    def limb(j0: int, j1: int, r0: float, r1: float, col: Any, own: tuple[int, ...], bias: float) -> None:
        depth = float(person.z[j0] + person.z[j1]) / 2 + bias * person.stature
        parts.append((depth, "limb", (j0, j1, r0, r1, col), own))

    for side, (sho, elb, wri, tip, hip, kne, ank, toe) in (
        ("L", (_LSHO, _LELB, _LWRI, _LHAND, _LHIP, _LKNE, _LANK, _LTOE)),
        ("R", (_RSHO, _RELB, _RWRI, _RHAND, _RHIP, _RKNE, _RANK, _RTOE)),
    ):
        limb(sho, elb, R["ua0"], R["ua1"], cols[side + "arm"], (sho, elb), 0.004)
        limb(elb, wri, R["fa0"], R["fa1"], cols[side + "farm"], (elb, wri), 0.005)
        limb(wri, tip, R["hand"], R["hand"] * 0.9, skin, (wri,), 0.006)
        limb(hip, kne, R["th0"], R["th1"], cols[side + "leg"], (hip, kne), 0.004)
        limb(kne, ank, R["sh0"], R["sh1"], cols[side + "shin"], (kne, ank), 0.005)
        limb(ank, toe, R["foot"], R["foot"] * 0.85, shoe, (ank,), 0.006)
    parts.append((person.torso_z, "torso", (), (_LSHO, _RSHO, _LHIP, _RHIP)))
    neck_depth = float(person.z[_NECK] + person.z[_HEAD]) / 2 - 0.002 * person.stature
    neck = (_NECK, _HEAD, R["neck"], R["neck"], _scale(skin, 0.85))
    parts.append((neck_depth, "limb", neck, (_LSHO, _RSHO)))
    head_depth = float(person.z[_HEAD]) + 0.003 * person.stature
    parts.append((head_depth, "head", (), (_NOSE, _LEYE, _REYE, _LEAR, _REAR)))

    order = sorted(range(len(parts)), key=lambda i: parts[i][0])
    own: dict[int, list[int]] = {k: [] for k in range(17)}
    for i in order:
        _, kind, payload, owned = parts[i]
        lid = len(owners)
        owners.append(pid)
        for k in owned:
            own[k].append(lid)
        if kind == "limb":
            j0, j1, r0, r1, col = payload
            _shaded_capsule(img, P[j0], P[j1], r0, r1, col, light, layer, lid)
        elif kind == "torso":
            hull = cv2.convexHull(_fix(person.torso_xy))
            cv2.fillConvexPoly(img, hull, _scale(torso_col, 0.8), cv2.LINE_AA, _SHIFT)
            cv2.fillConvexPoly(layer, hull, lid, cv2.LINE_8, _SHIFT)
            # a lighter inner panel (shirt front / back) for some shading
            ctr = person.torso_xy.mean(axis=0)
            inner = ctr + 0.7 * (person.torso_xy - ctr) + 0.01 * person.stature * light
            panel = cv2.convexHull(_fix(inner))
            cv2.fillConvexPoly(img, panel, _scale(torso_col, 1.05, 8.0), cv2.LINE_AA, _SHIFT)
        else:
            _draw_head(img, layer, lid, person, skin, hair)
    return own


def _draw_head(
    img: np.ndarray, layer: np.ndarray, lid: int, person: _Person, skin: Any, hair: Any
) -> None:
    """Head disc: hair all round, a face disc shifted towards the facing direction, eyes / nose / ears."""
    P, r = person.xy, person.head_r
    c = P[_HEAD]
    _disc(img, c, r, hair)
    _disc(layer, c, r, lid, aa=False)
    f = person.head_fwd
    for ear in (_LEAR, _REAR):
        if person.face_vis[ear]:
            _disc(img, P[ear], 0.24 * r, _scale(skin, 0.8))
    if f[2] > -0.25:
        fz = float(np.clip(f[2], 0.0, 1.0))
        rf = r * (0.55 + 0.3 * fz)
        fxy = f[:2]
        face_c = c + fxy * (0.95 * r - rf) + np.array([0.0, 0.08 * r])  # |fxy| <= 1: stays inside the head
        _disc(img, face_c, rf, skin)
    for ear in (_LEAR, _REAR):
        if person.face_vis[ear] and f[2] > 0.55:  # frontal view: ears stick out beside the face
            _disc(img, P[ear], 0.2 * r, _scale(skin, 0.85))
    for eye in (_LEYE, _REYE):
        if person.face_vis[eye]:
            _disc(img, P[eye], max(0.13 * r, 0.7), (30, 25, 20))
    if person.face_vis[_NOSE]:
        _disc(img, P[_NOSE], max(0.13 * r, 0.7), _scale(skin, 0.65))


def _draw_occluders(
    img: np.ndarray,
    layer: np.ndarray,
    owners: list[int],
    persons: list[_Person],
    rng: np.random.Generator,
    occlusion: float,
) -> None:
    """Random blobs (ellipses, boxes, polygons) dropped onto people; they occlude like a front person."""
    n = int(rng.poisson(0.7 * occlusion * len(persons)))
    for _ in range(n):
        p = persons[int(rng.integers(len(persons)))]
        j = int(rng.integers(17))
        ctr = p.xy[j] + rng.normal(0.0, 0.08, 2) * p.stature
        sz = rng.uniform(0.05, 0.18) * p.stature
        col = _hsv(rng.uniform(0, 360), rng.uniform(0, 0.8), rng.uniform(0.15, 0.95))
        lid = len(owners)
        owners.append(0)
        kind = int(rng.integers(3))
        if kind == 0:
            axes = (int(sz * _ONE), int(sz * rng.uniform(0.4, 1.0) * _ONE))
            angle = float(rng.uniform(0, 180))
            for target, c, aa in ((img, col, cv2.LINE_AA), (layer, lid, cv2.LINE_8)):
                cv2.ellipse(target, tuple(_fix(ctr)), axes, angle, 0, 360, c, -1, aa, _SHIFT)
        else:
            k = 4 if kind == 1 else int(rng.integers(5, 8))
            if kind == 2:
                ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            else:
                ang = np.arange(4) * np.pi / 2 + rng.uniform(0, 1)
            rad = sz * (rng.uniform(0.6, 1.0, k) if kind == 2 else np.ones(k))
            poly = cv2.convexHull(_fix(ctr + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], axis=1)))
            cv2.fillConvexPoly(img, poly, col, cv2.LINE_AA, _SHIFT)
            cv2.fillConvexPoly(layer, poly, lid, cv2.LINE_8, _SHIFT)


def _photometric(
    img: np.ndarray, layer: np.ndarray, rng: np.random.Generator, noise: float, seed: int
) -> np.ndarray:
    """Surface texture on drawn objects, lighting, brightness/contrast, blur and sensor noise."""
    h, w = layer.shape
    tex = 1.0 + 0.10 * _smooth_noise(rng, w, h, 24) + 0.05 * _smooth_noise(rng, w, h, 96)
    gain = np.where(layer > 0, tex, np.float32(1.0))
    gain *= 1.0 + (0.06 + 0.25 * noise) * _smooth_noise(rng, w, h, 3)  # uneven lighting
    alpha = 1.0 + rng.uniform(-0.35, 0.35) * noise  # contrast
    beta = rng.uniform(-40.0, 40.0) * noise  # brightness
    gain *= np.float32(alpha)
    out = img.astype(np.float32) * gain[..., None]
    out += np.float32(128.0 * (1.0 - alpha) + beta)
    if rng.random() < 0.15 + 0.5 * noise:
        sigma = rng.uniform(0.3, 0.4 + 1.3 * noise)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    std = rng.uniform(0.5, 1.0 + 14.0 * noise)
    out += _white_noise(rng, seed, w, h) * np.float32(std)
    out += np.float32(0.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def _render(cfg: SynthConfig, split: str, index: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render image ``index`` of ``split``: returns the BGR image and its (id-less) person annotations."""
    rng = _rng(cfg.seed, _SPLIT_CODE[split], index)
    w, h = int(cfg.image_size[0]), int(cfg.image_size[1])
    img = _background(rng, w, h, cfg.clutter)
    layer = np.zeros((h, w), np.uint16)
    owners: list[int] = [0]  # layer id -> person id (1-based) or 0 for background / occluder

    n = int(rng.integers(cfg.persons_per_image[0], cfg.persons_per_image[1] + 1))
    statures = rng.uniform(cfg.min_person_height, cfg.max_person_height, n) * h
    # smaller (farther) people are drawn first, with some shuffling
    statures = statures[np.argsort(statures * rng.uniform(0.8, 1.2, n))]
    persons: list[_Person] = []
    for i in range(n):
        near = None
        if persons and rng.random() < 0.7 * cfg.occlusion:
            q = persons[int(rng.integers(len(persons)))]
            near = (q.xy[_PELVIS] + q.xy[_NECK]) / 2
        tries = 1 + int(round(4 * (1.0 - cfg.occlusion)))
        persons.append(
            _place_person(rng, float(statures[i]), w, h, near, [q.extent for q in persons], tries, cfg.pose)
        )

    la = rng.uniform(0, 2 * np.pi)
    light = np.array([math.cos(la), math.sin(la)])
    owned = [_draw_person(img, layer, owners, p, i + 1, light, rng) for i, p in enumerate(persons)]
    _draw_occluders(img, layer, owners, persons, rng, cfg.occlusion)
    img = _photometric(img, layer, rng, cfg.noise, cfg.seed)

    person_of = np.asarray(owners, dtype=np.int32)[layer]
    anns: list[dict[str, Any]] = []
    for i, p in enumerate(persons):
        mask = person_of == i + 1
        area = int(np.count_nonzero(mask))
        if area == 0:
            continue
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
        kps: list[float] = []
        nvis = 0
        for k in range(17):
            x, y = float(p.xy[k, 0]), float(p.xy[k, 1])
            xi, yi = int(round(x)), int(round(y))
            if not (0 <= xi < w and 0 <= yi < h):
                kps += [0, 0, 0]
                continue
            lid = int(layer[yi, xi])
            covered = lid != 0 and lid not in owned[i][k]
            if k in p.face_vis and not p.face_vis[k]:
                covered = True
            xc, yc = round(min(max(x, 0.0), w - 1.0), 2), round(min(max(y, 0.0), h - 1.0), 2)
            kps += [xc, yc, 1 if covered else 2]
            nvis += 1
        anns.append(
            {
                "keypoints": kps,
                "num_keypoints": nvis,
                "bbox": [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)],
                "area": float(area),
            }
        )
    return img, anns


def _work(task: tuple[SynthConfig, str, int, str]) -> list[dict[str, Any]]:
    """Worker: render one image, write its JPEG atomically, return its person annotations."""
    cfg, split, index, path = task
    img, anns = _render(cfg, split, index)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)])
    if not ok:  # pragma: no cover - cv2 always encodes uint8 BGR
        raise RuntimeError(f"JPEG encoding failed for {path}")
    _atomic_write_bytes(Path(path), buf.tobytes())
    return anns


# ----------------------------------------------------------------------------------------------------------
# detections
# ----------------------------------------------------------------------------------------------------------


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _make_detections(
    cfg: SynthConfig, images: list[dict[str, Any]], anns_per_image: list[list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """HRNet-style person detections for val: jittered true boxes, misses, duplicates, false positives."""
    w, h = float(cfg.image_size[0]), float(cfg.image_size[1])
    dets: list[dict[str, Any]] = []

    def clip_box(x: float, y: float, bw: float, bh: float) -> list[float] | None:
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(w, x + bw), min(h, y + bh)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]

    for index, (im, anns) in enumerate(zip(images, anns_per_image)):
        rng = _rng(cfg.seed, _DET_CODE, index)
        mine: list[tuple[float, list[float]]] = []
        for ann in anns:
            x, y, bw, bh = ann["bbox"]
            hard = ann["num_keypoints"] < 5 or ann["area"] < 200
            if rng.random() < (0.15 if hard else 0.03):
                continue  # missed
            for dup in range(2):
                if dup == 1 and rng.random() >= 0.12:
                    break
                jit = 0.06 if dup == 0 else 0.15
                cx = x + bw / 2 + rng.normal(0.0, jit) * bw
                cy = y + bh / 2 + rng.normal(0.0, jit) * bh
                nw = bw * math.exp(rng.normal(0.0, jit * 1.2))
                nh = bh * math.exp(rng.normal(0.0, jit * 1.2))
                score = 0.6 + 0.4 * float(rng.beta(4.0, 1.5)) - (0.1 * rng.random() if hard else 0.0)
                if dup == 1:
                    score *= rng.uniform(0.3, 0.75)
                box = clip_box(cx - nw / 2, cy - nh / 2, nw, nh)
                if box is not None:
                    mine.append((float(np.clip(score, 0.0, 1.0)), box))
        for _ in range(int(rng.poisson(0.8))):
            for _try in range(5):
                bw = rng.uniform(0.08, 0.45) * w
                bh = min(h, bw * rng.uniform(1.2, 3.0))
                box = clip_box(rng.uniform(0, w - bw), rng.uniform(0, max(h - bh, 1.0)), bw, bh)
                if box is not None and all(_iou(box, a["bbox"]) < 0.3 for a in anns):
                    score = rng.uniform(0.02, 0.5) if rng.random() < 0.85 else rng.uniform(0.5, 0.85)
                    mine.append((float(score), box))
                    break
        mine.sort(key=lambda t: -t[0])
        for score, box in mine:
            dets.append({"image_id": im["id"], "category_id": 1, "bbox": box, "score": round(score, 4)})
    return dets


# ----------------------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------------------


# Worker processes are fresh interpreters started with subprocess: forking the caller is unsafe once it
# has used OpenCV's or torch's thread pools (children deadlock), and multiprocessing's spawn / forkserver
# re-import an unguarded ``__main__`` script.  To start fast, a worker registers bare ``poserepro`` and
# ``poserepro.data`` package stubs pointing at this source tree, so only this module and ``errors`` are
# imported (not torch).
# Frames on the result pipe: 8-byte little-endian length + pickle.
_WORKER_BOOT = (
    "import os, sys, types\n"
    "out = os.fdopen(os.dup(1), 'wb')\n"
    "os.dup2(2, 1)\n"  # anything printed by imports goes to stderr, not into the result pipe
    "for name, path in (('poserepro', sys.argv[1]), ('poserepro.data', os.path.join(sys.argv[1], 'data'))):\n"
    "    mod = types.ModuleType(name)\n"
    "    mod.__path__ = [path]\n"
    "    sys.modules[name] = mod\n"
    "from poserepro.data.synthetic import _serve\n"
    "_serve(sys.stdin.buffer, out)\n"
)


def _serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Worker-process main loop: read a pickled list of ``(position, task)``, stream back results."""
    cv2.setNumThreads(1)
    jobs = pickle.load(inp)
    for pos, task in jobs:
        try:
            frame = pickle.dumps(("ok", pos, _work(task)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # reported to the parent, which raises it there
            kind = "oserror" if isinstance(e, OSError) else "error"
            frame = pickle.dumps((kind, pos, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
            out.write(struct.pack("<Q", len(frame)) + frame)
            out.flush()
            return
        out.write(struct.pack("<Q", len(frame)) + frame)
        out.flush()


def _read_frames(stream: BinaryIO, q: queue.Queue[Any]) -> None:
    """Reader thread: forward every frame of one worker to ``q``; ``None`` marks the end of the stream."""
    try:
        while True:
            head = stream.read(8)
            if len(head) < 8:
                break
            (n,) = struct.unpack("<Q", head)
            q.put(pickle.loads(stream.read(n)))
    finally:
        q.put(None)


def _run_workers(
    tasks: list[tuple[SynthConfig, str, int, str]], nproc: int
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Render ``tasks`` in ``nproc`` worker processes; yields ``(position, annotations)`` as they finish."""
    pkg_dir = str(Path(__file__).resolve().parents[1])  # workers import this very copy of poserepro
    procs: list[tuple[subprocess.Popen[bytes], Any]] = []
    threads: list[threading.Thread] = []
    q: queue.Queue[Any] = queue.Queue()
    try:
        for _ in range(nproc):
            err = tempfile.TemporaryFile()
            proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOT, pkg_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, close_fds=True,
            )  # fmt: skip
            procs.append((proc, err))
            t = threading.Thread(target=_read_frames, args=(proc.stdout, q), daemon=True)
            t.start()
            threads.append(t)
        for k, (proc, _) in enumerate(procs):
            assert proc.stdin is not None
            try:
                proc.stdin.write(pickle.dumps([(i, tasks[i]) for i in range(k, len(tasks), nproc)]))
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the worker died at start-up; reported below from its exit status
        open_streams = nproc
        while open_streams:
            item = q.get()
            if item is None:
                open_streams -= 1
                continue
            kind, pos, payload = item
            if kind == "oserror":
                raise DataError(f"writing synthetic image {tasks[pos][3]} failed: {payload.splitlines()[0]}")
            if kind != "ok":
                raise RuntimeError(f"synthetic worker failed on {tasks[pos][3]}:\n{payload}")
            yield pos, payload
        for proc, err in procs:
            if proc.wait() != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"synthetic worker exited with status {proc.returncode}:\n{tail}")
    finally:
        for proc, _err in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for t in threads:
            t.join(timeout=5)
        for proc, err in procs:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()
            err.close()


def _prepare_dirs(root: Path) -> dict[str, Path]:
    try:
        root.mkdir(parents=True, exist_ok=True)
        dirs = {
            "ann": root / "annotations",
            "det": root / "detections",
            **{s: root / "images" / s for s in SPLITS},
        }
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        probe = root / f".write_probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DataError(
            f"cannot write the synthetic dataset to {root}: {e.strerror or e}; pick a writable out_dir"
        ) from None
    return dirs


def synthesize(
    out_dir: str | Path,
    config: SynthConfig = SynthConfig(),
    *,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> SynthSummary:
    """Generate the synthetic benchmark under ``out_dir`` and return where everything went.

    Args:
        out_dir: dataset root (created if missing; existing files of the same names are replaced).
        config: what to generate (see :class:`SynthConfig`).
        workers: worker processes for rendering; the output is identical for any value.
        progress: called as ``progress(done, total)`` in this process after each image.

    Raises:
        DataError: a bad config value, ``workers < 1`` or an unwritable ``out_dir``.
    """
    _check_config(config)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DataError(f"workers must be a positive integer, got {workers!r}")
    if progress is not None and not callable(progress):
        raise DataError("progress must be a callable progress(done, total) or None")
    if isinstance(out_dir, str) and not out_dir.strip():
        raise DataError("out_dir is empty; give a directory for the synthetic dataset")
    root = Path(out_dir).expanduser()
    dirs = _prepare_dirs(root)
    marker = root / "synth_config.json"
    try:  # the config file marks a complete dataset: drop a stale one until this run has finished
        marker.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        msg = f"cannot replace {marker}: {e.strerror or e}; remove it or pick another out_dir"
        raise DataError(msg) from None

    counts = {"train": int(config.num_train), "val": int(config.num_val)}
    total = sum(counts.values())
    tasks: list[tuple[SynthConfig, str, int, str]] = []
    images: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    w, h = int(config.image_size[0]), int(config.image_size[1])
    for split in SPLITS:
        offset = 0 if split == "train" else VAL_ID_OFFSET
        for index in range(counts[split]):
            image_id = offset + index + 1
            name = f"{image_id:012d}.jpg"
            images[split].append({"id": image_id, "file_name": name, "width": w, "height": h})
            tasks.append((config, split, index, str(dirs[split] / name)))

    # Worker processes cost ~1-2 s to start (they import poserepro); use them only for bigger jobs.
    nproc = min(workers, len(tasks) // 8)
    results: list[list[dict[str, Any]] | None] = [None] * len(tasks)
    stream = _run_workers(tasks, nproc) if nproc > 1 else ((i, _work(t)) for i, t in enumerate(tasks))
    try:
        for done, (pos, anns) in enumerate(stream, start=1):
            results[pos] = anns
            if progress is not None:
                progress(done, total)
    finally:
        stream.close()  # stops worker processes early if anything above raised
    assert all(r is not None for r in results)

    ann_files: dict[str, Path] = {}
    num_persons: dict[str, int] = {}
    per_split: dict[str, list[list[dict[str, Any]]]] = {
        "train": results[: counts["train"]],  # type: ignore[dict-item]
        "val": results[counts["train"] :],  # type: ignore[dict-item]
    }
    for split in SPLITS:
        ann_id = 0 if split == "train" else VAL_ID_OFFSET
        annotations: list[dict[str, Any]] = []
        for im, anns in zip(images[split], per_split[split]):
            for a in anns:
                ann_id += 1
                head = {"id": ann_id, "image_id": im["id"], "category_id": 1}
                annotations.append({**head, **a, "iscrowd": 0, "segmentation": []})
        coco = {
            "info": {
                "description": "poserepro procedural synthetic 2-D pose benchmark",
                "version": str(GENERATOR_VERSION),
                "split": split,
                "seed": int(config.seed),
            },
            "licenses": [],
            "images": images[split],
            "annotations": annotations,
            "categories": [PERSON_CATEGORY],
        }
        path = dirs["ann"] / f"person_keypoints_{split}.json"
        _atomic_write_bytes(path, _dump_json(coco))
        ann_files[split] = path
        num_persons[split] = len(annotations)

    det_file = dirs["det"] / "person_detections_val.json"
    _atomic_write_bytes(det_file, _dump_json(_make_detections(config, images["val"], per_split["val"])))

    cfg_json = {**asdict(config), "generator_version": GENERATOR_VERSION}
    cfg_text = json.dumps(cfg_json, indent=2, sort_keys=True, default=lambda o: o.item()) + "\n"
    _atomic_write_bytes(marker, cfg_text.encode())
    return SynthSummary(
        root=root,
        num_images=dict(counts),
        num_persons=num_persons,
        ann_files=ann_files,
        det_file=det_file,
        image_dirs={s: dirs[s] for s in SPLITS},
    )
