"""MPII annotation loading and PCKh on the real mpii-mini fixture (head boxes built from the joints)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from poserepro.data.mpii import MPII_FLIP_PAIRS, load_mpii_annotations
from poserepro.errors import DataError
from poserepro.evaluation.mpii import (
    MPII_EVAL_JOINT_NAMES,
    load_gt_valid,
    make_gt,
    pckh,
    write_gt_valid,
)

FIXTURE = Path("/work/shared/fixtures/mpii-mini")
NECK, HEAD_TOP, R_WRIST, L_WRIST = 8, 9, 10, 15


@pytest.fixture()
def mini(tmp_path: Path) -> Path:
    """A copy of the mpii-mini fixture: ``images/`` + ``annot/valid.json``."""
    if not FIXTURE.is_dir():
        pytest.skip("mpii-mini fixture not available")
    root = tmp_path / "mpii"
    shutil.copytree(FIXTURE / "images", root / "images")
    (root / "annot").mkdir()
    shutil.copy(FIXTURE / "mpii_mini.json", root / "annot" / "valid.json")
    return root


def gt_arrays_from_json(json_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Official-layout arrays from an HRNet-style JSON: joints stay 1-based; the head box spans the upper-neck
    and head-top joints (the MPII head rectangle is the box around that head segment)."""
    raw = json.loads(json_path.read_text())
    joints = np.array([a["joints"] for a in raw], dtype=np.float64)  # (N, 16, 2), 1-based
    vis = np.array([a["joints_vis"] for a in raw], dtype=np.float64)  # (N, 16)
    pos_gt_src = joints.transpose(1, 2, 0)  # (16, 2, N)
    jnt_missing = (vis == 0).astype(np.int64).T  # (16, N)
    head = joints[:, [NECK, HEAD_TOP], :]  # (N, 2, 2)
    headboxes = np.stack([head.min(axis=1), head.max(axis=1)], axis=0)  # (2, N, 2)
    return pos_gt_src, jnt_missing, headboxes.transpose(0, 2, 1)  # (2, 2, N)


@pytest.fixture()
def gt_mat(mini: Path) -> Path:
    """``annot/gt_valid.mat`` written with scipy.io.savemat in the official layout."""
    pos, missing, boxes = gt_arrays_from_json(mini / "annot" / "valid.json")
    names = np.empty((1, 16), dtype=object)
    names[0, :] = list(MPII_EVAL_JOINT_NAMES)
    path = mini / "annot" / "gt_valid.mat"
    scipy.io.savemat(
        str(path),
        {"dataset_joints": names, "jnt_missing": missing, "pos_gt_src": pos, "headboxes_src": boxes},
    )
    return path


# ------------------------------------------------------------------------------------ annotations
def test_load_annotations_conventions(mini: Path) -> None:
    path = mini / "annot" / "valid.json"
    raw = json.loads(path.read_text())
    plain = load_mpii_annotations(path, hrnet_adjust=False)
    assert len(plain) == 5 and plain[0]["image"] == "005808361.jpg"
    assert plain[0]["joints"].shape == (16, 2) and plain[0]["joints_vis"].shape == (16,)
    np.testing.assert_allclose(plain[0]["joints"], np.array(raw[0]["joints"]) - 1.0)  # 1-based -> 0-based
    np.testing.assert_allclose(plain[0]["center"], np.array(raw[0]["center"]) - 1.0)
    np.testing.assert_allclose(plain[0]["scale"], [raw[0]["scale"]] * 2)
    assert plain[2]["joints_vis"][0] == 0 and plain[2]["joints_vis"][1] == 1

    adj = load_mpii_annotations(path)  # HRNet: centre down by 15*scale, scale x1.25
    s = raw[0]["scale"]
    np.testing.assert_allclose(adj[0]["center"], [raw[0]["center"][0] - 1, raw[0]["center"][1] + 15 * s - 1])
    np.testing.assert_allclose(adj[0]["scale"], [1.25 * s, 1.25 * s])
    one_based = load_mpii_annotations(path, hrnet_adjust=False, zero_based=False)
    np.testing.assert_allclose(one_based[1]["joints"], raw[1]["joints"])
    assert tuple(MPII_FLIP_PAIRS) == ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a[0]["joints"].pop(), "has 15 joints, expected 16"),
        (lambda a: a[1].pop("center"), "lacks 'center'"),
        (lambda a: a[2].update(scale=-1), "expected a positive number"),
        (lambda a: a[3].update(joints_vis=[1] * 3), "3 joints_vis values"),
    ],
)
def test_load_annotations_validation(mini: Path, tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    raw = json.loads((mini / "annot" / "valid.json").read_text())
    mutate(raw)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(DataError, match=message):
        load_mpii_annotations(bad)
    with pytest.raises(DataError, match="not found"):
        load_mpii_annotations(tmp_path / "nope.json")
    (tmp_path / "dict.json").write_text("{}")
    with pytest.raises(DataError, match="list"):
        load_mpii_annotations(tmp_path / "dict.json")


# ------------------------------------------------------------------------------------------ PCKh
def test_gt_valid_layout_round_trip(gt_mat: Path, tmp_path: Path) -> None:
    gt = load_gt_valid(gt_mat)
    assert gt.pos_gt_src.shape == (16, 2, 5) and gt.jnt_missing.shape == (16, 5)
    assert gt.headboxes_src.shape == (2, 2, 5) and gt.dataset_joints == MPII_EVAL_JOINT_NAMES
    out = write_gt_valid(tmp_path / "copy.mat", gt.pos_gt_src, gt.jnt_missing, gt.headboxes_src)
    again = load_gt_valid(out)
    np.testing.assert_array_equal(again.pos_gt_src, gt.pos_gt_src)
    np.testing.assert_array_equal(again.jnt_missing, gt.jnt_missing)
    # What HRNet-style evaluation code does to find a joint still works on our file.
    raw = scipy.io.loadmat(str(out))["dataset_joints"]
    assert np.where(raw == "head")[1][0] == 9
    # Person 0: upper neck (982.7591, 235.9694), head top (962.2409, 80.0306).
    expected = 0.6 * np.linalg.norm(np.array([982.7591, 235.9694]) - np.array([962.2409, 80.0306]))
    assert gt.headsizes()[0] == pytest.approx(expected)


def test_gt_as_prediction_scores_100(mini: Path, gt_mat: Path) -> None:
    annots = load_mpii_annotations(mini / "annot" / "valid.json", hrnet_adjust=False)
    preds = np.stack([a["joints"] for a in annots])  # 0-based
    res = pckh(preds, gt_mat)
    parts = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"]
    assert list(res) == [f"PCKh@0.5/{p}" for p in parts] + [f"PCKh@0.1/{p}" for p in parts]
    assert all(v == pytest.approx(100.0) for v in res.values())


def test_known_perturbation_matches_hand_computation(mini: Path, gt_mat: Path) -> None:
    gt = load_gt_valid(gt_mat)
    annots = load_mpii_annotations(mini / "annot" / "valid.json", hrnet_adjust=False)
    preds = np.stack([a["joints"] for a in annots])
    hs = gt.headsizes()  # (5,)
    preds[:, R_WRIST, 0] += 0.3 * hs  # error 0.3 head sizes: right at 0.5, wrong at 0.1
    preds[:, L_WRIST, 1] -= 0.6 * hs  # error 0.6 head sizes: wrong at both
    preds[:, 0, 0] += 0.05 * hs  # right ankle 0.05: right at both (3 labelled of 5)
    preds[:, 6, 0] += 5.0 * hs  # pelvis far off: excluded from every reported number
    res = pckh(preds, gt)
    # Labelled counts: 5 persons x 16 joints, ankles (0 and 5) unlabelled in 2 persons.
    # Mean joints = all but pelvis/thorax: 12 joints x 5 + 2 ankles x 3 = 66 labelled instances.
    assert res["PCKh@0.5/Wrist"] == pytest.approx(50.0)
    assert res["PCKh@0.1/Wrist"] == pytest.approx(0.0)
    assert res["PCKh@0.5/Ankle"] == pytest.approx(100.0) and res["PCKh@0.1/Ankle"] == pytest.approx(100.0)
    assert res["PCKh@0.5/Head"] == pytest.approx(100.0) and res["PCKh@0.5/Hip"] == pytest.approx(100.0)
    assert res["PCKh@0.5/Mean"] == pytest.approx(100.0 * (66 - 5) / 66)
    assert res["PCKh@0.1/Mean"] == pytest.approx(100.0 * (66 - 10) / 66)


def test_threshold_is_exactly_0_1_not_0_11(mini: Path, gt_mat: Path) -> None:
    gt = load_gt_valid(gt_mat)
    preds = np.stack(
        [a["joints"] for a in load_mpii_annotations(mini / "annot" / "valid.json", hrnet_adjust=False)]
    )
    preds[:, R_WRIST, 0] += 0.105 * gt.headsizes()  # correct at HRNet's 0.11, wrong at 0.1
    res = pckh(preds, gt, thresholds=(0.1, 0.11))
    assert res["PCKh@0.1/Wrist"] == pytest.approx(50.0)
    assert res["PCKh@0.11/Wrist"] == pytest.approx(100.0)


def test_pckh_input_errors(gt_mat: Path, tmp_path: Path) -> None:
    gt = load_gt_valid(gt_mat)
    with pytest.raises(DataError, match=r"expected \(N, 16, 2\)"):
        pckh(np.zeros((5, 17, 2)), gt)
    with pytest.raises(DataError, match="4 MPII predictions for 5"):
        pckh(np.zeros((4, 16, 2)), gt)
    boxes = gt.headboxes_src.copy()
    boxes[1, :, 3] = boxes[0, :, 3]
    with pytest.raises(DataError, match="person 3 .*empty head box"):
        pckh(np.zeros((5, 16, 2)), make_gt(gt.pos_gt_src, gt.jnt_missing, boxes))
    scipy.io.savemat(str(tmp_path / "partial.mat"), {"pos_gt_src": gt.pos_gt_src})
    with pytest.raises(DataError, match="lacks dataset_joints"):
        load_gt_valid(tmp_path / "partial.mat")
    with pytest.raises(DataError, match=r"expected \(16, 2, N\)"):
        make_gt(gt.pos_gt_src[:15], gt.jnt_missing, gt.headboxes_src)
