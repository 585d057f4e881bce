"""Keypoint layouts (names, flip pairs, OKS sigmas, skeletons, upper-body joints) of the supported datasets, and
custom layouts read from a JSON file (:func:`load_layout`).

All indices are 0-based. The COCO order and sigmas are those of the COCO keypoint challenge; the MPII order
is the one of the HRNet-style JSON conversion used by TransPose / HRNet. A recipe names its layout with
``data.keypoints`` (empty: the dataset's own), so a custom skeleton gets its own flip pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from poserepro.errors import RecipeError, UnknownNameError, suggest
from poserepro.io import read_json

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2),
    (3, 4),
    (5, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


#: COCO OKS per-keypoint sigmas, shape (17,).
COCO_SIGMAS: np.ndarray = _readonly(
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89],
        dtype=np.float64,
    )
    / 10.0
)

#: COCO skeleton (the annotation file's 1-based ``skeleton`` converted to 0-based limb pairs).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)

MPII_KEYPOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)

MPII_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

MPII_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1),
    (1, 2),
    (2, 6),
    (6, 3),
    (3, 4),
    (4, 5),
    (6, 7),
    (7, 8),
    (8, 9),
    (7, 12),
    (12, 11),
    (11, 10),
    (7, 13),
    (13, 14),
    (14, 15),
)


@dataclass(frozen=True)
class KeypointSpec:
    """Keypoint layout of one dataset.

    Attributes:
        name: dataset name ("coco", "mpii").
        num_keypoints: K.
        flip_pairs: left/right index pairs swapped by a horizontal flip.
        sigmas: OKS sigmas, shape (K,), or ``None`` when the dataset has no OKS metric (MPII).
        keypoint_names: the K names in order.
        skeleton: 0-based limb pairs for drawing.
        upper_body: the joints half-body augmentation counts as upper body (HRNet's ``upper_body_ids``).
    """

    name: str
    num_keypoints: int
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: np.ndarray | None = field(default=None, compare=False, hash=False)
    keypoint_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    upper_body: tuple[int, ...] = ()

    def flip_index(self) -> list[int]:
        """Return the permutation (length K) that maps each joint to its mirrored counterpart."""
        perm = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


COCO = KeypointSpec(
    name="coco",
    num_keypoints=17,
    flip_pairs=COCO_FLIP_PAIRS,
    sigmas=COCO_SIGMAS,
    keypoint_names=COCO_KEYPOINTS,
    skeleton=COCO_SKELETON,
    upper_body=tuple(range(11)),  # nose ... right wrist
)

MPII = KeypointSpec(
    name="mpii",
    num_keypoints=16,
    flip_pairs=MPII_FLIP_PAIRS,
    sigmas=None,
    keypoint_names=MPII_KEYPOINTS,
    skeleton=MPII_SKELETON,
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),  # thorax, neck, head, arms
)

_SPECS: dict[str, KeypointSpec] = {"coco": COCO, "mpii": MPII}


def get_spec(name: str) -> KeypointSpec:
    """Return the :class:`KeypointSpec` of dataset ``name`` (case-insensitive: "coco", "mpii").

    Raises:
        UnknownNameError: for an unknown dataset name (with suggestions).
    """
    key = str(name).strip().lower()
    if key not in _SPECS:
        raise UnknownNameError(f"unknown keypoint layout {name!r}{suggest(key, tuple(_SPECS))}")
    return _SPECS[key]


def load_layout(name_or_path: str, num_joints: int) -> KeypointSpec:
    """The layout ``name_or_path`` ("coco", "mpii" or a JSON file), checked against ``num_joints``.

    A JSON layout holds ``{"name", "keypoints": [K names], "flip_pairs": [[a, b], ...]}`` and optionally
    ``"sigmas"`` (K OKS sigmas), ``"skeleton"`` (limb pairs) and ``"upper_body"`` (joint indices).

    Raises:
        RecipeError: unknown name, unreadable or malformed file, or a layout of another joint count.
    """
    text = str(name_or_path).strip()
    if text.lower() in _SPECS:
        spec = _SPECS[text.lower()]
    elif text.endswith(".json"):
        spec = _layout_from_json(text)
    else:
        raise RecipeError(f"data.keypoints: unknown layout {text!r}; use coco, mpii or a layout .json file")
    if spec.num_keypoints != num_joints:
        raise RecipeError(f"data.keypoints: layout {spec.name!r} has {spec.num_keypoints} joints but "
                          f"data.num_joints is {num_joints}; make them agree")
    return spec


def _layout_from_json(path: str) -> KeypointSpec:
    raw = read_json(path, "keypoint layout", error=RecipeError)
    if not isinstance(raw, dict) or not isinstance(raw.get("keypoints"), list) or not raw["keypoints"]:
        raise RecipeError(f"keypoint layout {path} needs a non-empty 'keypoints' list of joint names")
    k = len(raw["keypoints"])

    def pairs(key: str) -> tuple[tuple[int, int], ...]:
        val = raw.get(key, [])
        ok = isinstance(val, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(i, int) and 0 <= i < k for i in p) for p in val)
        if not ok:
            raise RecipeError(f"keypoint layout {path}: '{key}' must be a list of [i, j] joint indices below {k}")
        return tuple((int(a), int(b)) for a, b in val)

    flip = pairs("flip_pairs")
    used = [i for p in flip for i in p]
    if len(used) != len(set(used)):
        raise RecipeError(f"keypoint layout {path}: a joint appears in two flip pairs")
    upper = raw.get("upper_body", [])
    if not isinstance(upper, list) or not all(isinstance(i, int) and 0 <= i < k for i in upper):
        raise RecipeError(f"keypoint layout {path}: 'upper_body' must be a list of joint indices below {k}")
    sigmas = raw.get("sigmas")
    if sigmas is not None:
        if not (isinstance(sigmas, list) and len(sigmas) == k
                and all(isinstance(v, (int, float)) and v > 0 for v in sigmas)):
            raise RecipeError(f"keypoint layout {path}: 'sigmas' must be {k} positive numbers")
        sigmas = _readonly(np.asarray(sigmas, dtype=np.float64))
    return KeypointSpec(str(raw.get("name", Path(path).stem)), k, flip, sigmas,
                        tuple(str(n) for n in raw["keypoints"]), pairs("skeleton"), tuple(upper))
