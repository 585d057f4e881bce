"""Heatmap targets, decoding (argmax / quarter / DARK / UDP), flip-back helpers."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from poserepro.codecs.flip import flip_coords_back, flip_heatmaps_back
from poserepro.codecs.heatmap import (
    crop_to_heatmap,
    decode,
    encode_gaussian,
    encode_gaussian_batch,
    encode_udp,
    heatmap_to_image,
)
from poserepro.data.boxes import box_to_center_scale
from poserepro.geometry import affine_points, get_affine_transform, get_affine_transform_udp
from poserepro.keypoints import COCO_FLIP_PAIRS

ANN = "/work/shared/fixtures/coco-mini/person_keypoints_mini.json"
IN, HM = (192, 256), (48, 64)


def _interior_joints(rng, n, margin=4.0):
    """(n, 2) random crop-pixel joints whose heatmap location is >= margin px from the border."""
    x = rng.uniform(margin, HM[0] - 1 - margin, n) * 4
    y = rng.uniform(margin, HM[1] - 1 - margin, n) * 4
    return np.stack([x, y], 1)


def test_encode_gaussian_peak_and_weights():
    joints = np.array([[100.0, 60.0], [400.0, 10.0], [50.0, 50.0], [-32.0, 10.0], [-31.0, 10.0]])
    vis = np.array([1, 1, 0, 1, 1])
    hm, w = encode_gaussian(joints, vis, IN, HM, sigma=2.0, unbiased=True)
    assert hm.shape == (5, 64, 48) and hm.dtype == np.float32 and w.dtype == np.float32
    # joint 1 is far outside, joint 2 invisible; HRNet's test truncates int(mu + 3 sigma + 1): joint 3
    # (hm x = -8) gives -1 < 0 -> dropped, joint 4 (hm x = -7.75) gives int(-0.75) = 0 -> kept
    np.testing.assert_array_equal(w, [1, 0, 0, 0, 1])
    assert hm[1].max() == 0 and hm[2].max() == 0 and hm[3].max() == 0
    assert hm[0, 15, 25] == pytest.approx(1.0)  # (100, 60) / 4 = (25, 15): on-grid peak is exactly 1
    hm_b, _ = encode_gaussian(np.array([[101.0, 61.0]]), np.ones(1), IN, HM, unbiased=False)
    assert hm_b[0, 15, 25] == pytest.approx(1.0)  # biased: centred at int(25.25 + 0.5)


@pytest.mark.parametrize("convention", ["hrnet", "dark"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_batch_torch_encoder_equals_numpy(convention, unbiased):
    rng = np.random.default_rng(0)
    joints = rng.uniform(-40, 230, size=(3, 17, 2))
    vis = (rng.uniform(size=(3, 17)) > 0.2).astype(np.float32)
    hm_t, w_t = encode_gaussian_batch(torch.from_numpy(joints), torch.from_numpy(vis), IN, HM, 2.0, unbiased,
                                      convention=convention)
    assert hm_t.shape == (3, 17, 64, 48) and hm_t.dtype == torch.float32 and w_t.shape == (3, 17)
    for i in range(3):
        hm, w = encode_gaussian(joints[i], vis[i], IN, HM, 2.0, unbiased, convention=convention)
        np.testing.assert_allclose(hm_t[i].numpy(), hm, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(w_t[i].numpy(), w)


def test_dark_round_trip_subpixel():
    rng = np.random.default_rng(1)
    joints = _interior_joints(rng, 17)
    hm, _ = encode_gaussian(joints, np.ones(17), IN, HM, sigma=2.0, unbiased=True)
    coords, maxvals = decode(hm[None], "dark")
    err = np.abs(coords[0] - joints / 4).max()
    assert err < 0.05, err
    assert maxvals.shape == (1, 17) and (maxvals > 0.7).all()
    q, _ = decode(hm[None], "quarter")
    assert np.abs(q[0] - joints / 4).max() <= 0.3
    a, _ = decode(torch.from_numpy(hm[None]), "argmax")
    np.testing.assert_array_equal(a, np.round(a))
    assert np.abs(a[0] - joints / 4).max() <= 0.5 + 1e-9


def test_udp_round_trip_subpixel():
    rng = np.random.default_rng(2)
    joints = _interior_joints(rng, 17)
    hm, w = encode_udp(joints, np.ones(17), IN, HM, sigma=2.0)
    assert (w == 1).all() and hm.max() <= 1.0
    coords, _ = decode(hm[None], "udp", blur_kernel=11)
    err = np.abs(coords[0] - crop_to_heatmap(joints, IN, HM, "udp")).max()
    assert err < 0.1, err


def _dark_reference(hm, kernel=11):
    """Straightforward per-joint DARK (FACTS 5.3), used to pin the vectorised decoder."""
    n, k, h, w = hm.shape
    out = np.zeros((n, k, 2))
    b = (kernel - 1) // 2
    for i in range(n):
        for j in range(k):
            m = hm[i, j]
            y, x = np.unravel_index(np.argmax(m), m.shape)
            pad = np.zeros((h + 2 * b, w + 2 * b))
            pad[b:-b, b:-b] = m
            bl = cv2.GaussianBlur(pad, (kernel, kernel), 0)[b:-b, b:-b]
            bl = np.log(np.maximum(bl * (m.max() / bl.max()), 1e-10))
            cx, cy = float(x), float(y)
            if 1 < x < w - 2 and 1 < y < h - 2:
                dx = 0.5 * (bl[y, x + 1] - bl[y, x - 1])
                dy = 0.5 * (bl[y + 1, x] - bl[y - 1, x])
                dxx = 0.25 * (bl[y, x + 2] - 2 * bl[y, x] + bl[y, x - 2])
                dyy = 0.25 * (bl[y + 2, x] - 2 * bl[y, x] + bl[y - 2, x])
                dxy = 0.25 * (bl[y + 1, x + 1] - bl[y - 1, x + 1] - bl[y + 1, x - 1] + bl[y - 1, x - 1])
                hess = np.array([[dxx, dxy], [dxy, dyy]])
                if np.linalg.det(hess) != 0:
                    off = -np.linalg.solve(hess, [dx, dy])
                    cx, cy = cx + off[0], cy + off[1]
            out[i, j] = cx, cy
    return out


def test_dark_matches_reference_on_noisy_maps():
    rng = np.random.default_rng(3)
    joints = rng.uniform(-10, 200, size=(2, 17, 2))
    hm = encode_gaussian_batch(torch.from_numpy(joints), torch.ones(2, 17), IN, HM)[0].numpy().astype(np.float64)
    hm += rng.normal(0, 0.02, hm.shape)
    hm[0, 0] = np.abs(hm[0, 0])
    coords, _ = decode(hm, "dark")
    np.testing.assert_allclose(coords, _dark_reference(hm), atol=1e-6)


def test_nonpositive_max_gives_origin():
    hm = -np.ones((1, 2, 64, 48))
    hm[0, 1, 10, 20] = 0.0
    coords, maxvals = decode(hm, "dark")
    np.testing.assert_array_equal(coords, 0)
    np.testing.assert_array_equal(maxvals, [[-1, 0]])


@pytest.mark.parametrize("convention", ["hrnet", "dark"])
def test_heatmap_to_image_inverts_heatmap_affine(convention):
    centers = np.array([[300.0, 200.0], [50.0, 80.0]])
    scales = np.array([[1.2, 1.6], [0.6, 0.8]])
    coords = np.random.default_rng(4).uniform(0, 48, size=(2, 5, 2))
    got = heatmap_to_image(coords, centers, scales, HM, convention=convention)
    for i in range(2):
        inv = get_affine_transform(centers[i], scales[i], 0, HM, inv=True, convention=convention)
        np.testing.assert_allclose(got[i], affine_points(coords[i], inv), atol=1e-3)
    got = heatmap_to_image(coords, centers, scales, HM, udp=True)
    for i in range(2):
        inv = get_affine_transform_udp(centers[i], scales[i], 0, HM, inv=True)
        np.testing.assert_allclose(got[i], affine_points(coords[i], inv), atol=1e-3)


@pytest.mark.parametrize("convention", ["hrnet", "dark"])
def test_full_round_trip_on_fixture(convention):
    """image -> crop -> heatmap target -> DARK decode -> image recovers the GT joints."""
    gt = json.load(open(ANN))
    errs = []
    for ann in gt["annotations"]:
        if ann["num_keypoints"] < 5:
            continue
        kp = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        c, s = box_to_center_scale(ann["bbox"], IN[0] / IN[1])
        crop = affine_points(kp[:, :2], get_affine_transform(c, s, 0, IN, convention=convention))
        vis = (kp[:, 2] > 0).astype(np.float32)
        hm, w = encode_gaussian(crop, vis, IN, HM, unbiased=True, convention=convention)
        coords, _ = decode(hm[None], "dark")
        back = heatmap_to_image(coords, c[None], s[None], HM, convention=convention)[0]
        hmxy = crop_to_heatmap(crop, IN, HM, convention)
        inner = (w > 0) & (hmxy[:, 0] > 3) & (hmxy[:, 0] < HM[0] - 4) & (hmxy[:, 1] > 3) & (hmxy[:, 1] < HM[1] - 4)
        errs.append(np.linalg.norm(back[inner] - kp[inner, :2], axis=1))
    errs = np.concatenate(errs)
    assert errs.size > 100
    assert errs.max() < 0.5, errs.max()


def test_flip_heatmaps_back():
    hm = torch.randn(2, 17, 8, 6)
    once = flip_heatmaps_back(hm, COCO_FLIP_PAIRS)
    torch.testing.assert_close(once[:, 1], hm[:, 2].flip(-1))
    torch.testing.assert_close(once[:, 0], hm[:, 0].flip(-1))
    torch.testing.assert_close(flip_heatmaps_back(once, COCO_FLIP_PAIRS), hm)
    shifted = flip_heatmaps_back(hm, COCO_FLIP_PAIRS, shift=True)
    torch.testing.assert_close(shifted[..., 1:], once[..., :-1])
    torch.testing.assert_close(shifted[..., 0], once[..., 0])


def test_flip_coords_back():
    coords = torch.rand(3, 17, 2)
    scores = torch.rand(3, 17)
    c1, s1 = flip_coords_back(coords, scores, COCO_FLIP_PAIRS)
    torch.testing.assert_close(c1[:, 3, 0], 1 - coords[:, 4, 0])
    torch.testing.assert_close(c1[:, 3, 1], coords[:, 4, 1])
    torch.testing.assert_close(s1[:, 3], scores[:, 4])
    c2, s2 = flip_coords_back(c1, s1, COCO_FLIP_PAIRS)
    torch.testing.assert_close(c2, coords)
    torch.testing.assert_close(s2, scores)
    assert flip_coords_back(coords, None, COCO_FLIP_PAIRS)[1] is None
