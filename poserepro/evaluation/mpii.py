"""MPII PCKh evaluation against the official ``gt_valid.mat`` layout (as used by HRNet / TransPose / PRTR).

``gt_valid.mat`` holds, for N validation persons:

* ``dataset_joints``: cell array (1, 16) of joint names (``rank rkne rhip lhip lkne lank pelv thor neck head
  rwri relb rsho lsho lelb lwri``),
* ``jnt_missing``: (16, N), 1 where a joint is not labelled,
* ``pos_gt_src``: (16, 2, N) ground-truth x/y in **1-based** (MATLAB) pixel coordinates,
* ``headboxes_src``: (2, 2, N) head rectangle, ``[0, :, n]`` = (x1, y1) and ``[1, :, n]`` = (x2, y2).

PCKh (Andriluka et al. 2014, as computed by the HRNet code base): predictions are made 1-based (+1), the
head size of a person is 0.6 x the head-box diagonal, and a joint is correct when its error divided by the
head size is <= the threshold; rates are over labelled joints only. Reported parts average left and right;
``Mean`` weights every joint by its number of labelled instances and excludes pelvis and thorax.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from poserepro.data.mpii_gt import (  # noqa: F401  (the ground-truth file format, re-exported for callers)
    MPII_EVAL_JOINT_NAMES,
    SC_BIAS,
    MPIIGroundTruth,
    load_gt_valid,
    make_gt,
    write_gt_valid,
)
from poserepro.errors import DataError

#: Reported parts -> joint names averaged (left/right).
PCKH_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Head", ("head",)),
    ("Shoulder", ("lsho", "rsho")),
    ("Elbow", ("lelb", "relb")),
    ("Wrist", ("lwri", "rwri")),
    ("Hip", ("lhip", "rhip")),
    ("Knee", ("lkne", "rkne")),
    ("Ankle", ("lank", "rank")),
)

_EXCLUDED_FROM_MEAN = ("pelv", "thor")

def pckh(
    preds: np.ndarray,
    gt: MPIIGroundTruth | str | Path,
    thresholds: Sequence[float] = (0.5, 0.1),
) -> dict[str, float]:
    """PCKh of ``preds`` against ``gt``, in percent.

    Follows the HRNet/MPII evaluation: predictions are shifted by +1 (MATLAB indexing), head size =
    ``0.6 * ||head-box diagonal||``, a labelled joint is correct when ``error / head size <= threshold``.
    Parts average left and right; ``Mean`` is the labelled-count-weighted mean over all joints except
    pelvis and thorax. The second threshold is exactly 0.1: HRNet's code prints "Mean@0.1" from row 11 of
    ``np.arange(0, 0.51, 0.01)``, i.e. threshold 0.11, an indexing slip we do not reproduce.

    Args:
        preds: (N, 16, 2) predicted x/y in 0-based pixel coordinates of the original images, in the order of
            the persons in ``gt`` (the order of ``valid.json``).
        gt: ground truth or a path to a ``gt_valid.mat``-style file.
        thresholds: normalised-distance thresholds.

    Returns:
        ``{"PCKh@0.5/Head": ..., "PCKh@0.5/Shoulder": ..., ..., "PCKh@0.5/Mean": ..., "PCKh@0.1/Mean": ...}``
        (Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean for every threshold); NaN where a part has no
        labelled joint.
    """
    if not isinstance(gt, MPIIGroundTruth):
        gt = load_gt_valid(gt)
    p = np.asarray(preds, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (16, 2):
        raise DataError(f"MPII predictions have shape {p.shape}, expected (N, 16, 2)")
    if p.shape[0] != gt.num_persons:
        raise DataError(
            f"{p.shape[0]} MPII predictions for {gt.num_persons} ground-truth persons: predict every "
            "person of valid.json, in order"
        )

    pos_pred = np.transpose(p + 1.0, (1, 2, 0))  # (16, 2, N), 1-based like pos_gt_src
    labelled = gt.jnt_missing == 0  # (16, N)
    err = np.linalg.norm(pos_pred - gt.pos_gt_src, axis=1)  # (16, N)
    heads = gt.headsizes()  # (N,)
    bad = np.flatnonzero(~(np.isfinite(heads) & (heads > 0)) & labelled.any(axis=0))
    if bad.size:
        raise DataError(
            f"person {int(bad[0])} (and {bad.size - 1} more) has an empty head box in the ground truth; "
            "fix headboxes_src"
        )
    safe_heads = np.where(heads > 0, heads, 1.0)
    scaled = err / safe_heads[None, :]
    count = labelled.sum(axis=1).astype(np.float64)  # (16,)

    idx = {name: gt.joint_index(name) for name in MPII_EVAL_JOINT_NAMES}
    mean_mask = np.ones(16, dtype=bool)
    for name in _EXCLUDED_FROM_MEAN:
        mean_mask[idx[name]] = False
    weights = np.where(mean_mask, count, 0.0)

    out: dict[str, float] = {}
    for thr in thresholds:
        correct = ((scaled <= thr) & labelled).sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_joint = np.where(count > 0, 100.0 * correct / np.where(count > 0, count, 1.0), np.nan)
        key = f"PCKh@{thr:g}"
        for part, names in PCKH_PARTS:
            vals = [per_joint[idx[n]] for n in names if count[idx[n]] > 0]
            out[f"{key}/{part}"] = float(np.mean(vals)) if vals else float("nan")
        total = weights.sum()
        out[f"{key}/Mean"] = (
            float(np.sum(np.nan_to_num(per_joint) * weights) / total) if total > 0 else float("nan")
        )
    return out


# --- used by the training / evaluation engine --------------------------------------------------------------


def select_persons(gt: MPIIGroundTruth, person_ids: Sequence[int] | np.ndarray) -> MPIIGroundTruth:
    """The ground truth of the persons ``person_ids`` (0-based positions in ``valid.json`` / ``gt_valid.mat``),
    in that order (evaluating a subset, e.g. with ``data.max_val_samples``)."""
    ids = np.asarray(person_ids, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= gt.num_persons):
        raise DataError(
            f"MPII person index {int(ids.max())} is outside the ground truth's {gt.num_persons} persons: "
            "is gt_valid.mat for this valid.json?"
        )
    return MPIIGroundTruth(gt.dataset_joints, gt.jnt_missing[:, ids], gt.pos_gt_src[:, :, ids],
                           gt.headboxes_src[:, :, ids])


def save_predictions(mat_path: str | Path, preds: np.ndarray) -> Path:
    """Write ``preds`` (N, 16, 2), 0-based pixels, as HRNet's ``pred.mat`` (key ``preds``, **1-based**, the
    layout the MPII MATLAB toolkit and test-server conversions start from)."""
    import scipy.io

    p = np.asarray(preds, dtype=np.float64)
    if p.ndim != 3 or p.shape[1:] != (16, 2):
        raise DataError(f"MPII predictions have shape {p.shape}, expected (N, 16, 2)")
    path = Path(mat_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"preds": p + 1.0})
    return path


def pckh_metrics(
    preds: np.ndarray, person_ids: Sequence[int] | np.ndarray, gt: MPIIGroundTruth | str | Path,
    thresholds: Sequence[float] = (0.5, 0.1),
) -> dict[str, float]:
    """:func:`pckh` of the persons ``person_ids`` as **fractions** in [0, 1] (the scale of COCO AP in the
    metrics dicts and tidy tables; the papers print percent).

    Args:
        preds: (N, 16, 2) 0-based image pixels. person_ids: (N,) positions in ``gt``. gt: ground truth or path.
    """
    if not isinstance(gt, MPIIGroundTruth):
        gt = load_gt_valid(gt)
    sub = select_persons(gt, person_ids)
    return {k: v / 100.0 for k, v in pckh(preds, sub, thresholds).items()}
