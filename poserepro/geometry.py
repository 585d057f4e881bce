"""Top-down crop geometry (numpy / OpenCV).

Two affine conventions exist in the code bases this suite reproduces:

* ``"hrnet"`` (HRNet, PRTR): the box of width ``scale[0] * 200`` maps onto the output width, the box
  centre onto ``(w / 2, h / 2)``.
* ``"dark"`` (TransPose, BTranspose, which inherit DarkPose's transforms): ``scale[0] * 200 - 1`` maps
  onto ``w - 1`` and the centre onto ``((w - 1) / 2, (h - 1) / 2)``, i.e. pixel centres are aligned.

Both build the matrix from three point pairs (centre, centre + rotated "up" vector, and a third point
perpendicular to them) with ``cv2.getAffineTransform``, using only ``scale[0]`` (the aspect ratio is
assumed to have been fixed by :func:`poserepro.data.boxes.box_to_center_scale`).

The UDP variant (Huang et al., "The Devil is in the Details") is :func:`get_warp_matrix_udp`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

PIXEL_STD: float = 200.0

AffineConvention = Literal["hrnet", "dark"]


def _rotate(point: Sequence[float], rot_rad: float) -> np.ndarray:
    sn, cs = math.sin(rot_rad), math.cos(rot_rad)
    return np.array([point[0] * cs - point[1] * sn, point[0] * sn + point[1] * cs], dtype=np.float64)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def get_affine_transform(
    center: Sequence[float] | np.ndarray,
    scale: Sequence[float] | np.ndarray | float,
    rot: float,
    output_size: Sequence[int] | np.ndarray,
    shift: Sequence[float] | np.ndarray = (0.0, 0.0),
    inv: bool = False,
    convention: AffineConvention = "hrnet",
) -> np.ndarray:
    """Affine matrix mapping the box ``(center, scale)`` rotated by ``rot`` degrees onto the output crop.

    Args:
        center: box centre (2,) in image pixels.
        scale: box size / 200, (2,) (a scalar means square). Only ``scale[0]`` sets the zoom.
        rot: rotation in degrees: the image direction obtained by turning "up" by ``rot`` degrees clockwise
            on screen (y points down) becomes "up" in the crop, i.e. the content turns counter-clockwise.
        output_size: ``(w, h)`` of the crop.
        shift: offset of the centre in units of the box size.
        inv: return the crop -> image matrix instead.
        convention: ``"hrnet"`` (default) or ``"dark"`` (TransPose / BTranspose); see the module docstring.

    Returns:
        (2, 3) float64 matrix (as returned by ``cv2.getAffineTransform``).
    """
    if convention not in ("hrnet", "dark"):
        raise ValueError(f"unknown affine convention {convention!r}")
    if np.ndim(scale) == 0:
        scale = np.array([scale, scale], dtype=np.float64)
    scale_px = np.asarray(scale, dtype=np.float64) * PIXEL_STD
    center = np.asarray(center, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    off = 1.0 if convention == "dark" else 0.0
    src_w = scale_px[0] - off
    dst_w = float(output_size[0]) - off
    dst_h = float(output_size[1]) - off
    rot_rad = math.pi * rot / 180.0

    src_dir = _rotate([0.0, src_w * -0.5], rot_rad)
    dst_dir = np.array([0.0, dst_w * -0.5], dtype=np.float64)
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + scale_px * shift
    src[1] = center + src_dir + scale_px * shift
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def get_warp_matrix_udp(
    theta_deg: float,
    size_input: Sequence[float] | np.ndarray,
    size_dst: Sequence[float] | np.ndarray,
    size_target: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """UDP (unbiased data processing) warp matrix.

    Maps a point ``p`` to ``S @ (R(theta) @ (p - size_input / 2) + size_target / 2)`` with
    ``S = diag(size_dst / size_target)``. In the top-down use ``size_input = 2 * center`` (so that
    ``size_input / 2`` is the box centre), ``size_dst = output_size - 1`` and ``size_target = scale * 200``
    (the box size in pixels); see :func:`get_affine_transform_udp`.

    Args:
        theta_deg: rotation in degrees.
        size_input: (2,) ``(w, h)``; its half is the rotation centre in source pixels.
        size_dst: (2,) ``(w, h)`` extent of the destination in pixel-centre units (``size - 1``).
        size_target: (2,) ``(w, h)`` source extent that maps onto ``size_dst``.

    Returns:
        (2, 3) float32 matrix.
    """
    theta = math.radians(theta_deg)
    cs, sn = math.cos(theta), math.sin(theta)
    sx = float(size_dst[0]) / float(size_target[0])
    sy = float(size_dst[1]) / float(size_target[1])
    iw, ih = float(size_input[0]), float(size_input[1])
    tw, th = float(size_target[0]), float(size_target[1])
    m = np.zeros((2, 3), dtype=np.float32)
    m[0, 0] = cs * sx
    m[0, 1] = -sn * sx
    m[0, 2] = sx * (-0.5 * iw * cs + 0.5 * ih * sn + 0.5 * tw)
    m[1, 0] = sn * sy
    m[1, 1] = cs * sy
    m[1, 2] = sy * (-0.5 * iw * sn - 0.5 * ih * cs + 0.5 * th)
    return m


def get_affine_transform_udp(
    center: Sequence[float] | np.ndarray,
    scale: Sequence[float] | np.ndarray,
    rot: float,
    output_size: Sequence[int] | np.ndarray,
    inv: bool = False,
) -> np.ndarray:
    """UDP counterpart of :func:`get_affine_transform` (centre -> ``(output - 1) / 2``, per-axis zoom
    ``(output - 1) / (scale * 200)``).

    Returns:
        (2, 3) float64 matrix; with ``inv`` the crop -> image matrix.
    """
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64) * PIXEL_STD
    out = np.asarray(output_size, dtype=np.float64) - 1.0
    m = get_warp_matrix_udp(rot, c * 2.0, out, s).astype(np.float64)
    if inv:
        return cv2.invertAffineTransform(m)
    return m


def affine_points(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points.

    Args:
        points: (..., 2) (extra trailing columns such as visibility are not accepted; slice them off).
        mat: (2, 3).

    Returns:
        (..., 2) float64.
    """
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(mat, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp_image(
    img: np.ndarray, mat: np.ndarray, output_size: Sequence[int], flags: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """Warp ``img`` (H, W, C) or (H, W) with ``mat`` (2, 3) into an ``output_size`` = ``(w, h)`` crop
    (constant zero border, as the official pipelines).

    Returns:
        (h, w, C) or (h, w) array of ``img``'s dtype.
    """
    return cv2.warpAffine(img, np.asarray(mat, dtype=np.float64), (int(output_size[0]), int(output_size[1])),
                          flags=flags)


def fliplr_joints(
    joints: np.ndarray, joints_vis: np.ndarray, width: float, flip_pairs: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror joints of an image of width ``width`` (HRNet convention ``x -> width - 1 - x``) and swap the
    left/right pairs.

    As in HRNet, coordinates of invisible joints (``vis <= 0``) are zeroed.

    Args:
        joints: (K, 2) or (K, 3); only column 0 is mirrored, all columns are swapped.
        joints_vis: (K,) visibility (or (K, C); it is swapped the same way).
        width: image width in pixels.
        flip_pairs: left/right index pairs.

    Returns:
        New ``(joints, joints_vis)`` arrays (the inputs are not modified).
    """
    j = np.array(joints, dtype=np.float64, copy=True)
    v = np.array(joints_vis, copy=True)
    j[:, 0] = width - j[:, 0] - 1
    for a, b in flip_pairs:
        j[[a, b]] = j[[b, a]]
        v[[a, b]] = v[[b, a]]
    vis = v if v.ndim == 1 else v[:, 0]
    j[np.asarray(vis) <= 0] = 0.0
    return j, v
