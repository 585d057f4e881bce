"""Crop geometry: affine conventions, box -> centre/scale, joint flipping, keypoint specs, detections."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poserepro.data.boxes import box_to_center_scale, check_detections, load_detections
from poserepro.errors import DataError, UnknownNameError
from poserepro.geometry import (
    affine_points,
    fliplr_joints,
    get_affine_transform,
    get_affine_transform_udp,
    warp_image,
)
from poserepro.keypoints import COCO, COCO_FLIP_PAIRS, COCO_SIGMAS, MPII, get_spec

DETS = "/work/shared/fixtures/coco-mini/person_detections_mini.json"


def test_box_to_center_scale_known_values():
    # tall box: width is enlarged to h * 0.75
    c, s = box_to_center_scale([10, 20, 100, 300], aspect_ratio=192 / 256)
    np.testing.assert_allclose(c, [60.0, 170.0])
    np.testing.assert_allclose(s, [225 / 200 * 1.25, 300 / 200 * 1.25], rtol=1e-6)
    assert c.dtype == np.float32 and s.dtype == np.float32 and c.shape == s.shape == (2,)
    # wide box: height is enlarged to w / 0.75
    _, s = box_to_center_scale([0, 0, 300, 100], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(s, [1.5, 2.0], rtol=1e-6)


@pytest.mark.parametrize("convention", ["hrnet", "dark"])
@pytest.mark.parametrize("rot", [0.0, 30.0, -70.0])
def test_affine_then_inverse_is_identity(convention, rot):
    c, s = np.array([320.5, 210.0]), np.array([1.4, 1.8667])
    fwd = get_affine_transform(c, s, rot, (192, 256), convention=convention)
    inv = get_affine_transform(c, s, rot, (192, 256), inv=True, convention=convention)
    pts = np.random.default_rng(0).uniform(0, 600, size=(20, 2))
    np.testing.assert_allclose(affine_points(affine_points(pts, fwd), inv), pts, atol=1e-3)
    # the box centre goes to the crop centre
    centre = (96.0, 128.0) if convention == "hrnet" else (95.5, 127.5)
    np.testing.assert_allclose(affine_points(c, fwd), centre, atol=1e-3)


def test_affine_hrnet_zoom_and_rotation_direction():
    c, s = np.array([100.0, 100.0]), np.array([1.0, 1.0])  # 200 px box
    m = get_affine_transform(c, s, 0, (100, 100))
    np.testing.assert_allclose(m, [[0.5, 0, 0], [0, 0.5, 0]], atol=1e-6)
    # rot = 90: the image point to the right of the centre ends up above the crop centre
    m = get_affine_transform(c, s, 90, (100, 100))
    np.testing.assert_allclose(affine_points(np.array([200.0, 100.0]), m), [50, 0], atol=1e-4)


def test_udp_affine_inverse_and_centre():
    c, s = np.array([50.0, 80.0]), np.array([0.9, 1.2])
    fwd = get_affine_transform_udp(c, s, 25.0, (192, 256))
    inv = get_affine_transform_udp(c, s, 25.0, (192, 256), inv=True)
    pts = np.random.default_rng(1).uniform(0, 200, size=(10, 2))
    np.testing.assert_allclose(affine_points(affine_points(pts, fwd), inv), pts, atol=1e-3)
    np.testing.assert_allclose(affine_points(c, fwd), [95.5, 127.5], atol=1e-4)


def test_warp_image_shape_and_content():
    img = np.zeros((50, 60, 3), np.uint8)
    img[20:30, 20:40] = 255
    m = get_affine_transform(np.array([30.0, 25.0]), np.array([0.3, 0.4]), 0, (30, 40))
    out = warp_image(img, m, (30, 40))
    assert out.shape == (40, 30, 3)
    assert out[20, 15].tolist() == [255, 255, 255] and out[0, 0].tolist() == [0, 0, 0]


def test_fliplr_twice_is_identity_and_swaps_pairs():
    rng = np.random.default_rng(2)
    joints = rng.uniform(0, 100, size=(17, 3))
    joints[:, 2] = 0
    vis = np.ones(17)
    vis[[3, 10]] = 0
    joints[[3, 10]] = 0
    j1, v1 = fliplr_joints(joints, vis, 120, COCO_FLIP_PAIRS)
    assert j1[1, 0] == pytest.approx(120 - 1 - joints[2, 0])
    assert v1[4] == 0 and v1[9] == 0 and j1[4].tolist() == [0, 0, 0]
    j2, v2 = fliplr_joints(j1, v1, 120, COCO_FLIP_PAIRS)
    np.testing.assert_allclose(j2, joints)
    np.testing.assert_array_equal(v2, vis)


def test_keypoint_specs():
    assert COCO.num_keypoints == 17 and len(COCO.keypoint_names) == 17 and COCO.sigmas is COCO_SIGMAS
    assert COCO_SIGMAS[0] == pytest.approx(0.026) and COCO_SIGMAS[-1] == pytest.approx(0.089)
    assert MPII.num_keypoints == 16 and MPII.sigmas is None and (10, 15) in MPII.flip_pairs
    assert get_spec("COCO") is COCO and get_spec("mpii") is MPII
    assert COCO.flip_index()[1] == 2 and COCO.flip_index()[0] == 0
    hash(COCO)
    with pytest.raises(UnknownNameError):
        get_spec("cocco")


def test_load_detections_fixture_and_errors(tmp_path):
    gt = json.load(open("/work/shared/fixtures/coco-mini/person_keypoints_mini.json"))
    ids = {im["id"] for im in gt["images"]}
    dets = load_detections(DETS, image_ids=ids)
    assert set(dets) <= ids and dets
    d = next(iter(dets.values()))[0]
    assert set(d) == {"image_id", "category_id", "bbox", "score"} and len(d["bbox"]) == 4
    assert check_detections(dets, ids) == (len(dets), 0)
    assert check_detections(dets, {next(iter(dets))}) == (1, len(dets) - 1)
    high = load_detections(DETS, score_thr=0.9)
    assert all(b["score"] >= 0.9 for v in high.values() for b in v)

    with pytest.raises(DataError, match="not found"):
        load_detections(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_detections(bad)
    bad.write_text(json.dumps({"image_id": 1}))
    with pytest.raises(DataError, match="JSON list"):
        load_detections(bad)
    bad.write_text("[]")
    with pytest.raises(DataError, match="no detections"):
        load_detections(bad)
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 1}]))
    with pytest.raises(DataError, match="bbox"):
        load_detections(bad)
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}]))
    with pytest.raises(DataError, match="score"):
        load_detections(bad)
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 1}]))
    with pytest.raises(DataError, match="none of its"):
        load_detections(bad, image_ids=ids)
