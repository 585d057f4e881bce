"""The MPII ground-truth file ``gt_valid.mat`` (official layout, as used by HRNet / TransPose / PRTR): read,
check, write.

``gt_valid.mat`` holds, for N validation persons:

* ``dataset_joints``: cell array (1, 16) of joint names (``rank rkne rhip lhip lkne lank pelv thor neck head
  rwri relb rsho lsho lelb lwri``),
* ``jnt_missing``: (16, N), 1 where a joint is not labelled,
* ``pos_gt_src``: (16, 2, N) ground-truth x/y in **1-based** (MATLAB) pixel coordinates,
* ``headboxes_src``: (2, 2, N) head rectangle, ``[0, :, n]`` = (x1, y1) and ``[1, :, n]`` = (x2, y2).

PCKh itself is :mod:`poserepro.evaluation.mpii`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from poserepro.errors import DataError

#: Joint names of ``dataset_joints`` in the official file, in index order.
MPII_EVAL_JOINT_NAMES: tuple[str, ...] = (
    "rank",
    "rkne",
    "rhip",
    "lhip",
    "lkne",
    "lank",
    "pelv",
    "thor",
    "neck",
    "head",
    "rwri",
    "relb",
    "rsho",
    "lsho",
    "lelb",
    "lwri",
)

#: Head size = SC_BIAS x head-box diagonal (the MPII evaluation's constant).
SC_BIAS = 0.6

_ALIASES = {
    "htop": "head",
    "head_top": "head",
    "upnk": "neck",
    "upper_neck": "neck",
    "pelvis": "pelv",
    "thorax": "thor",
}


@dataclass(frozen=True)
class MPIIGroundTruth:
    """The content of a ``gt_valid.mat`` file (arrays in the official layout, see the module docstring)."""

    dataset_joints: tuple[str, ...]
    jnt_missing: np.ndarray  # (16, N) int
    pos_gt_src: np.ndarray  # (16, 2, N) float, 1-based
    headboxes_src: np.ndarray  # (2, 2, N) float

    @property
    def num_persons(self) -> int:
        """N, the number of evaluated persons."""
        return int(self.pos_gt_src.shape[2])

    def headsizes(self) -> np.ndarray:
        """(N,) head sizes: ``SC_BIAS * ||(x2, y2) - (x1, y1)||``."""
        return SC_BIAS * np.linalg.norm(self.headboxes_src[1] - self.headboxes_src[0], axis=0)

    def joint_index(self, name: str) -> int:
        """Index of joint ``name`` (``head``, ``lsho``, ...) in this file's order."""
        return self.dataset_joints.index(name)


def _names(raw: object) -> tuple[str, ...]:
    arr = np.asarray(raw)
    names: list[str] = []
    if arr.dtype == object:
        for x in arr.reshape(-1):
            v = np.asarray(x).reshape(-1)
            names.append(str(v[0]).strip() if v.size else "")
    elif arr.dtype.kind in "US":
        names = [str(x).strip() for x in arr.reshape(-1)]
    return tuple(_ALIASES.get(n.lower(), n.lower()) for n in names)


def _check(gt: MPIIGroundTruth, where: str) -> MPIIGroundTruth:
    if gt.pos_gt_src.ndim != 3 or gt.pos_gt_src.shape[:2] != (16, 2):
        raise DataError(f"{where}: pos_gt_src has shape {gt.pos_gt_src.shape}, expected (16, 2, N)")
    n = gt.pos_gt_src.shape[2]
    if gt.jnt_missing.shape != (16, n):
        raise DataError(f"{where}: jnt_missing has shape {gt.jnt_missing.shape}, expected (16, {n})")
    if gt.headboxes_src.shape != (2, 2, n):
        raise DataError(f"{where}: headboxes_src has shape {gt.headboxes_src.shape}, expected (2, 2, {n})")
    if len(gt.dataset_joints) != 16 or set(MPII_EVAL_JOINT_NAMES) - set(gt.dataset_joints):
        raise DataError(f"{where}: dataset_joints {list(gt.dataset_joints)} are not the 16 MPII joint names")
    return gt


def make_gt(
    pos_gt_src: np.ndarray,
    jnt_missing: np.ndarray,
    headboxes_src: np.ndarray,
    dataset_joints: Sequence[str] = MPII_EVAL_JOINT_NAMES,
) -> MPIIGroundTruth:
    """Build a validated :class:`MPIIGroundTruth` from arrays in the official layout."""
    gt = MPIIGroundTruth(
        dataset_joints=tuple(_names(np.array(list(dataset_joints), dtype=object))),
        jnt_missing=np.asarray(jnt_missing).astype(np.int64),
        pos_gt_src=np.asarray(pos_gt_src, dtype=np.float64),
        headboxes_src=np.asarray(headboxes_src, dtype=np.float64),
    )
    return _check(gt, "MPII ground truth")


def load_gt_valid(mat_path: str | Path) -> MPIIGroundTruth:
    """Read an official-layout ``gt_valid.mat`` (keys ``dataset_joints``, ``jnt_missing``, ``pos_gt_src``,
    ``headboxes_src``); DataError when missing, unreadable or of the wrong shapes."""
    import scipy.io

    path = Path(mat_path)
    if not path.is_file():
        raise DataError(
            f"{path} not found: get gt_valid.mat with the HRNet-style MPII annotations "
            "(`poserepro data download mpii --parts json` says where)"
        )
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises ValueError / MatReadError / OSError for broken files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"{path} is not a readable .mat file ({reason})") from None
    missing = [k for k in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src") if k not in mat]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}: not a gt_valid.mat-style file")
    gt = MPIIGroundTruth(
        dataset_joints=_names(mat["dataset_joints"]),
        jnt_missing=np.asarray(mat["jnt_missing"]).astype(np.int64),
        pos_gt_src=np.asarray(mat["pos_gt_src"], dtype=np.float64),
        headboxes_src=np.asarray(mat["headboxes_src"], dtype=np.float64),
    )
    return _check(gt, str(path))


def write_gt_valid(
    mat_path: str | Path,
    pos_gt_src: np.ndarray,
    jnt_missing: np.ndarray,
    headboxes_src: np.ndarray,
    dataset_joints: Sequence[str] = MPII_EVAL_JOINT_NAMES,
) -> Path:
    """Write arrays in the official layout to ``mat_path`` (``dataset_joints`` as a 1x16 cell array).

    Args:
        pos_gt_src: (16, 2, N) 1-based ground-truth joints.
        jnt_missing: (16, N), 1 = not labelled.
        headboxes_src: (2, 2, N) head boxes, ``[0]`` = top-left, ``[1]`` = bottom-right.
    """
    import scipy.io

    gt = make_gt(pos_gt_src, jnt_missing, headboxes_src, dataset_joints)
    cells = np.empty((1, 16), dtype=object)
    for i, name in enumerate(gt.dataset_joints):
        cells[0, i] = name
    path = Path(mat_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        str(path),
        {
            "dataset_joints": cells,
            "jnt_missing": gt.jnt_missing.astype(np.float64),
            "pos_gt_src": gt.pos_gt_src,
            "headboxes_src": gt.headboxes_src,
        },
    )
    return path
