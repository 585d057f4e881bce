"""The synthetic benchmark's vocabulary: COCO constants, :class:`SynthConfig`, :class:`SynthSummary`, config checks.

Everything here is plain data and validation; the seeded random streams of the whole generator come from
:func:`rng_for`, keyed by ``(seed, code, index)`` so each image and each detection list has its own stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DataError
from ...keypoints import COCO_FLIP_PAIRS, COCO_KEYPOINTS

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

#: 3: annotations carry per-person ``synth`` labels (pose class, view, yaw); images are byte-identical to 2.
GENERATOR_VERSION = 3
SPLITS: tuple[str, ...] = ("train", "val")
SPLIT_CODE = {"train": 1, "val": 2}
DET_CODE = 7
BANK_CODE = 99
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
# validation and random streams
# ----------------------------------------------------------------------------------------------------------


def check_config(config: SynthConfig) -> None:
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


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """The random stream of ``(seed, *keys)``: independent of every other key tuple, the same in any process."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))
