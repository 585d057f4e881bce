"""Gaussian heatmap targets and heatmap decoding (argmax, quarter offset, DARK, UDP).

Coordinate systems: ``joints`` given to the encoders are in input-crop pixels; heatmap coordinates are
pixel indices of the heatmap (column ``x``, row ``y``). How crop pixels map to heatmap pixels depends on
the affine convention used to build the crop (see :mod:`poserepro.geometry`):

* ``"hrnet"``: ``x_hm = x_in / (in_w / hm_w)`` (HRNet's ``feat_stride``);
* ``"dark"`` (TransPose, BTranspose, which warp the joints with a second affine built for the heatmap size):
  ``x_hm = (x_in - (in_w - 1) / 2) * r + (hm_w - 1) / 2`` and the same for ``y`` with the same
  ``r = (hm_w - 1) / (in_w - 1)``;
* UDP: ``x_hm = x_in / ((in_w - 1) / (hm_w - 1))`` per axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import torch

from poserepro.geometry import PIXEL_STD

DecodeMethod = Literal["argmax", "quarter", "dark", "udp"]
Convention = Literal["hrnet", "dark"]


# ----------------------------------------------------------------------------------------------- encoding


def crop_to_heatmap(
    joints: np.ndarray,
    input_size: Sequence[int],
    heatmap_size: Sequence[int],
    convention: Convention | Literal["udp"] = "hrnet",
) -> np.ndarray:
    """Map crop-pixel coordinates (..., 2) to heatmap-pixel coordinates (..., 2) (see module docstring)."""
    j = np.asarray(joints, dtype=np.float64)[..., :2]
    iw, ih = float(input_size[0]), float(input_size[1])
    hw, hh = float(heatmap_size[0]), float(heatmap_size[1])
    if convention == "hrnet":
        return j / np.array([iw / hw, ih / hh])
    if convention == "udp":
        return j / np.array([(iw - 1.0) / (hw - 1.0), (ih - 1.0) / (hh - 1.0)])
    if convention == "dark":
        r = (hw - 1.0) / (iw - 1.0)
        return (j - np.array([(iw - 1.0) / 2, (ih - 1.0) / 2])) * r + np.array([(hw - 1.0) / 2, (hh - 1.0) / 2])
    raise ValueError(f"unknown convention {convention!r}")


def _check_sizes(joints: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    j = np.asarray(joints, dtype=np.float64)
    v = np.asarray(vis, dtype=np.float64)
    if v.ndim == 2:  # HRNet passes (K, 3) visibilities; column 0 is the flag
        v = v[:, 0]
    if j.ndim != 2 or j.shape[1] < 2 or v.shape != (j.shape[0],):
        raise ValueError(f"joints must be (K, 2) and joints_vis (K,), got {j.shape} and {v.shape}")
    return j[:, :2], v


def _weights(mu_check: np.ndarray, vis: np.ndarray, tmp: float, hw: int, hh: int, window: bool) -> np.ndarray:
    """Target weights: 1 for ``vis > 0.5`` joints whose 3-sigma window overlaps the map, else 0.

    ``mu_check`` is the centre used for the overlap test; ``window`` says whether it is already integer (then
    the window bounds are ``mu +- tmp``) or fractional (bounds truncated like Python's ``int``).
    """
    if window:
        ul = mu_check - tmp
        br = mu_check + tmp + 1
    else:
        ul = np.trunc(mu_check - tmp)
        br = np.trunc(mu_check + tmp + 1)
    outside = (ul[:, 0] >= hw) | (ul[:, 1] >= hh) | (br[:, 0] < 0) | (br[:, 1] < 0)
    return ((vis > 0.5) & ~outside).astype(np.float32)


def encode_gaussian(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    input_size: Sequence[int],
    heatmap_size: Sequence[int],
    sigma: float = 2.0,
    unbiased: bool = True,
    convention: Convention = "hrnet",
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmap targets (TransPose / DARK style).

    Each joint is mapped to heatmap space (``convention``, see module docstring); the Gaussian
    ``exp(-((x - mx)^2 + (y - my)^2) / (2 sigma^2))`` (peak 1) is evaluated over the whole map, centred at the
    sub-pixel location when ``unbiased`` else at ``int(m + 0.5)`` (HRNet). A joint gets weight 0 and an
    all-zero map when ``vis <= 0.5`` or when its 3-sigma window lies entirely outside the map (HRNet rule).

    Args:
        joints: (K, 2) joint positions in input-crop pixels.
        joints_vis: (K,) visibility flags (0/1).
        input_size: ``(w, h)`` of the input crop.
        heatmap_size: ``(w, h)`` of the heatmap.
        sigma: Gaussian sigma in heatmap pixels.
        unbiased: sub-pixel centre (DARK) instead of the rounded one.
        convention: affine convention of the crop (``"dark"`` for TransPose / BTranspose).

    Returns:
        ``heatmaps`` (K, h, w) float32 and ``target_weight`` (K,) float32.
    """
    j, v = _check_sizes(joints, joints_vis)
    hw, hh = int(heatmap_size[0]), int(heatmap_size[1])
    mu = crop_to_heatmap(j, input_size, heatmap_size, convention)
    if not unbiased:
        mu = np.trunc(mu + 0.5)
    tmp = sigma * 3
    weight = _weights(mu, v, tmp, hw, hh, window=not unbiased)
    x = np.arange(hw, dtype=np.float64)
    y = np.arange(hh, dtype=np.float64)
    d2 = (x[None, None, :] - mu[:, 0, None, None]) ** 2 + (y[None, :, None] - mu[:, 1, None, None]) ** 2
    target = np.exp(-d2 / (2.0 * sigma**2)) * weight[:, None, None]
    return target.astype(np.float32), weight


def encode_udp(
    joints: np.ndarray,
    joints_vis: np.ndarray,
    input_size: Sequence[int],
    heatmap_size: Sequence[int],
    sigma: float = 2.0,
    unbiased: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """UDP Gaussian targets (Huang et al. 2020; used by TFPose's auxiliary heatmap loss).

    The stride is ``(input - 1) / (heatmap - 1)`` per axis; the Gaussian is centred at the sub-pixel location
    and, as in the UDP reference implementation, is non-zero only inside the ``(6 sigma + 1)``-wide window
    around the rounded location ``int(m + 0.5)``. ``unbiased=False`` centres it at the rounded location.
    Weights follow the same rule as :func:`encode_gaussian` (tested on the rounded window).

    Args:
        joints: (K, 2) in input-crop pixels. joints_vis: (K,). input_size, heatmap_size: ``(w, h)``.

    Returns:
        ``heatmaps`` (K, h, w) float32 and ``target_weight`` (K,) float32.
    """
    j, v = _check_sizes(joints, joints_vis)
    hw, hh = int(heatmap_size[0]), int(heatmap_size[1])
    mu = crop_to_heatmap(j, input_size, heatmap_size, "udp")
    mu_int = np.trunc(mu + 0.5)
    tmp = sigma * 3
    weight = _weights(mu_int, v, tmp, hw, hh, window=True)
    centre = mu if unbiased else mu_int
    x = np.arange(hw, dtype=np.float64)
    y = np.arange(hh, dtype=np.float64)
    gx = np.exp(-((x[None, :] - centre[:, 0:1]) ** 2) / (2.0 * sigma**2)) * (
        np.abs(x[None, :] - mu_int[:, 0:1]) <= tmp
    )
    gy = np.exp(-((y[None, :] - centre[:, 1:2]) ** 2) / (2.0 * sigma**2)) * (
        np.abs(y[None, :] - mu_int[:, 1:2]) <= tmp
    )
    target = gy[:, :, None] * gx[:, None, :] * weight[:, None, None]
    return target.astype(np.float32), weight


def encode_gaussian_batch(
    joints: torch.Tensor,
    joints_vis: torch.Tensor,
    input_size: Sequence[int],
    heatmap_size: Sequence[int],
    sigma: float = 2.0,
    unbiased: bool = True,
    convention: Convention = "hrnet",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectorised torch version of :func:`encode_gaussian` (runs on ``joints.device``).

    Args:
        joints: (N, K, 2) in input-crop pixels.
        joints_vis: (N, K).
        input_size, heatmap_size: ``(w, h)``.

    Returns:
        ``heatmaps`` (N, K, h, w) float32 and ``target_weight`` (N, K) float32, equal to the numpy encoder
        within 1e-6.
    """
    device = joints.device
    dtype = torch.float32 if device.type == "mps" else torch.float64
    j = joints[..., :2].to(dtype)
    v = joints_vis.to(dtype)
    if v.dim() == 3:
        v = v[..., 0]
    iw, ih = float(input_size[0]), float(input_size[1])
    hw, hh = int(heatmap_size[0]), int(heatmap_size[1])
    if convention == "hrnet":
        mu = j / torch.tensor([iw / hw, ih / hh], dtype=dtype, device=device)
    elif convention == "dark":
        r = (hw - 1.0) / (iw - 1.0)
        c_in = torch.tensor([(iw - 1.0) / 2, (ih - 1.0) / 2], dtype=dtype, device=device)
        c_hm = torch.tensor([(hw - 1.0) / 2, (hh - 1.0) / 2], dtype=dtype, device=device)
        mu = (j - c_in) * r + c_hm
    else:
        raise ValueError(f"unknown convention {convention!r}")
    tmp = sigma * 3
    if unbiased:
        mu_c = mu
        ul, br = torch.trunc(mu - tmp), torch.trunc(mu + tmp + 1)
    else:
        mu_c = torch.trunc(mu + 0.5)
        ul, br = mu_c - tmp, mu_c + tmp + 1
    outside = (ul[..., 0] >= hw) | (ul[..., 1] >= hh) | (br[..., 0] < 0) | (br[..., 1] < 0)
    weight = ((v > 0.5) & ~outside).to(dtype)
    x = torch.arange(hw, dtype=dtype, device=device)
    y = torch.arange(hh, dtype=dtype, device=device)
    gx = torch.exp(-((x - mu_c[..., 0:1]) ** 2) / (2.0 * sigma**2))  # (N, K, w)
    gy = torch.exp(-((y - mu_c[..., 1:2]) ** 2) / (2.0 * sigma**2)) * weight[..., None]  # (N, K, h)
    heatmaps = gy[..., :, None] * gx[..., None, :]
    return heatmaps.to(torch.float32), weight.to(torch.float32)


# ----------------------------------------------------------------------------------------------- decoding


def _as_numpy(heatmaps: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.detach().to("cpu", torch.float64).numpy()
    hm = np.asarray(heatmaps, dtype=np.float64)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, K, h, w), got shape {hm.shape}")
    return hm


def get_max_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax of each map.

    As in HRNet's ``get_max_preds``, a joint whose maximum is ``<= 0`` gets coordinates ``(0, 0)``.

    Args:
        heatmaps: (N, K, h, w).

    Returns:
        ``coords`` (N, K, 2) float64 ``(x, y)`` and ``maxvals`` (N, K).
    """
    n, k, _, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    coords *= (maxvals > 0.0)[..., None]
    return coords, maxvals


def _cv2_sigma(kernel: int) -> float:
    """The sigma OpenCV's ``GaussianBlur`` derives from ``ksize`` when sigma is 0."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def gaussian_blur(heatmaps: np.ndarray, kernel: int, border: Literal["zero", "reflect101"] = "zero") -> np.ndarray:
    """Blur every (h, w) map like OpenCV's ``GaussianBlur(ksize=(k, k), sigmaX=0)`` in float64.

    ``border="zero"`` equals DARK's zero padding by ``(k - 1) / 2``; ``"reflect101"`` is OpenCV's default
    border (used by UDP). No rescaling here. All maps are padded, stacked into one image and filtered by a
    single separable filter call.

    Args:
        heatmaps: (N, K, h, w).

    Returns:
        New (N, K, h, w) float64 array.
    """
    if kernel % 2 != 1 or kernel < 1:
        raise ValueError(f"blur kernel must be an odd positive integer, got {kernel}")
    n, k, h, w = heatmaps.shape
    b = (kernel - 1) // 2
    if b == 0 or heatmaps.size == 0:
        return np.array(heatmaps, dtype=np.float64, copy=True)
    g = cv2.getGaussianKernel(kernel, _cv2_sigma(kernel), cv2.CV_64F)
    mode = "constant" if border == "zero" else "reflect"  # numpy "reflect" == OpenCV BORDER_REFLECT_101
    pad = np.pad(np.asarray(heatmaps, dtype=np.float64), ((0, 0), (0, 0), (b, b), (b, b)), mode=mode)
    stacked = np.ascontiguousarray(pad.reshape(n * k * (h + 2 * b), w + 2 * b))
    out = cv2.sepFilter2D(stacked, cv2.CV_64F, g, g, borderType=cv2.BORDER_CONSTANT)
    return out.reshape(n, k, h + 2 * b, w + 2 * b)[:, :, b : b + h, b : b + w].copy()


def _gather(hm: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """hm (N, K, h, w); ys, xs (N, K) int arrays (already clipped) -> (N, K)."""
    n, k, _, _ = hm.shape
    ni = np.arange(n)[:, None]
    ki = np.arange(k)[None, :]
    return hm[ni, ki, ys, xs]


def _quarter(hm: np.ndarray, coords: np.ndarray) -> np.ndarray:
    _, _, h, w = hm.shape
    px = np.floor(coords[..., 0] + 0.5).astype(np.int64)
    py = np.floor(coords[..., 1] + 0.5).astype(np.int64)
    ok = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    cx = np.clip(px, 1, w - 2)
    cy = np.clip(py, 1, h - 2)
    dx = _gather(hm, cy, cx + 1) - _gather(hm, cy, cx - 1)
    dy = _gather(hm, cy + 1, cx) - _gather(hm, cy - 1, cx)
    out = coords.copy()
    out[..., 0] += np.where(ok, np.sign(dx) * 0.25, 0.0)
    out[..., 1] += np.where(ok, np.sign(dy) * 0.25, 0.0)
    return out


def _dark(hm: np.ndarray, coords: np.ndarray, kernel: int) -> np.ndarray:
    _, _, h, w = hm.shape
    origin_max = hm.max(axis=(2, 3))
    blurred = gaussian_blur(hm, kernel, "zero")
    new_max = blurred.max(axis=(2, 3))
    ratio = np.divide(origin_max, new_max, out=np.ones_like(origin_max), where=new_max != 0)

    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    ok = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    x = np.clip(px, 2, w - 3)
    y = np.clip(py, 2, h - 3)

    def lg(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        # log of the rescaled, clamped blurred map, evaluated only where the Newton step needs it
        return np.log(np.maximum(_gather(blurred, yy, xx) * ratio, 1e-10))

    c = lg(y, x)
    dx = 0.5 * (lg(y, x + 1) - lg(y, x - 1))
    dy = 0.5 * (lg(y + 1, x) - lg(y - 1, x))
    dxx = 0.25 * (lg(y, x + 2) - 2 * c + lg(y, x - 2))
    dyy = 0.25 * (lg(y + 2, x) - 2 * c + lg(y - 2, x))
    dxy = 0.25 * (lg(y + 1, x + 1) - lg(y - 1, x + 1) - lg(y + 1, x - 1) + lg(y - 1, x - 1))
    det = dxx * dyy - dxy**2
    ok &= det != 0
    safe = np.where(ok, det, 1.0)
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(dxx * dy - dxy * dx) / safe
    out = coords.copy()
    out[..., 0] += np.where(ok, off_x, 0.0)
    out[..., 1] += np.where(ok, off_y, 0.0)
    return out


def _udp_refine(hm: np.ndarray, coords: np.ndarray, kernel: int) -> np.ndarray:
    blurred = gaussian_blur(hm, kernel, "reflect101")
    pad = np.pad(blurred, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    x = coords[..., 0].astype(np.int64) + 1
    y = coords[..., 1].astype(np.int64) + 1

    def lg(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return np.log(np.clip(_gather(pad, yy, xx), 0.001, 50.0))

    c = lg(y, x)
    xp, xm = lg(y, x + 1), lg(y, x - 1)
    yp, ym = lg(y + 1, x), lg(y - 1, x)
    xpyp, xmym = lg(y + 1, x + 1), lg(y - 1, x - 1)
    dx = 0.5 * (xp - xm)
    dy = 0.5 * (yp - ym)
    dxx = xp - 2 * c + xm
    dyy = yp - 2 * c + ym
    dxy = 0.5 * (xpyp - xp - yp + 2 * c - xm - ym + xmym)
    eps = float(np.finfo(np.float32).eps)
    a, b, d = dxx + eps, dxy, dyy + eps
    det = a * d - b * b
    safe = np.where(det != 0, det, 1.0)
    off_x = np.where(det != 0, (d * dx - b * dy) / safe, 0.0)
    off_y = np.where(det != 0, (a * dy - b * dx) / safe, 0.0)
    out = coords.copy()
    out[..., 0] -= off_x
    out[..., 1] -= off_y
    return out


def decode(
    heatmaps: np.ndarray | torch.Tensor, method: DecodeMethod = "dark", blur_kernel: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """Decode heatmaps to sub-pixel joint locations in heatmap pixel coordinates.

    Methods:
        ``"argmax"``: integer argmax.
        ``"quarter"``: argmax + 0.25 px towards the higher neighbour in x and y, for peaks with
            ``1 < x < w - 1`` and ``1 < y < h - 1`` (HRNet ``get_final_preds`` post-processing).
        ``"dark"``: TransPose / DarkPose: blur (kernel ``blur_kernel``, zero padding), rescale to the original
            maximum, clamp at 1e-10, log, one Newton step at the argmax with ``dx, dy`` from the ±1 neighbours,
            ``dxx, dyy`` from ±2 (both ×0.5 / ×0.25 as DarkPose), ``dxy`` from the diagonals; only for peaks
            with ``1 < x < w - 2`` and ``1 < y < h - 2`` and a non-zero Hessian determinant.
        ``"udp"``: UDP's refinement: blur with OpenCV's default border, clip to [0.001, 50], log, edge-pad
            by 1, Newton step with ±1 differences and ``H + eps I``; applied at every peak.

    The heatmaps are not modified. A joint whose maximum is ``<= 0`` starts from ``(0, 0)`` (HRNet).

    Args:
        heatmaps: (N, K, h, w) numpy array or tensor (any device).
        method: one of the above.
        blur_kernel: odd Gaussian kernel size for "dark" / "udp" (TransPose: 11).

    Returns:
        ``coords`` (N, K, 2) float64 ``(x, y)`` in heatmap pixels, ``maxvals`` (N, K) float64 (the heatmap
        value at the integer argmax).
    """
    hm = _as_numpy(heatmaps)
    coords, maxvals = get_max_preds(hm)
    if method == "argmax":
        pass
    elif method == "quarter":
        coords = _quarter(hm, coords)
    elif method == "dark":
        coords = _dark(hm, coords, blur_kernel)
    elif method == "udp":
        coords = _udp_refine(hm, coords, blur_kernel)
    else:
        raise ValueError(f"unknown decode method {method!r}; expected argmax, quarter, dark or udp")
    return coords, maxvals


def heatmap_to_image(
    coords: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    heatmap_size: Sequence[int],
    udp: bool = False,
    convention: Convention = "hrnet",
) -> np.ndarray:
    """Map heatmap coordinates back to the original image (HRNet ``transform_preds``, rotation 0).

    Non-UDP: the inverse of :func:`poserepro.geometry.get_affine_transform` built for the heatmap size
    with the given ``convention`` (one zoom factor, from ``scale[0]``, for both axes). UDP:
    ``x_img = x * scale * 200 / (heatmap - 1) + center - scale * 200 / 2`` per axis.

    Args:
        coords: (N, K, 2) heatmap-pixel ``(x, y)``.
        centers: (N, 2) box centres. scales: (N, 2) box scales (/200).
        heatmap_size: ``(w, h)``.

    Returns:
        (N, K, 2) float64 image coordinates.
    """
    xy = np.asarray(coords, dtype=np.float64)[..., :2]
    c = np.asarray(centers, dtype=np.float64).reshape(-1, 1, 2)
    s = np.asarray(scales, dtype=np.float64).reshape(-1, 1, 2) * PIXEL_STD
    hw, hh = float(heatmap_size[0]), float(heatmap_size[1])
    if udp:
        hm = np.array([hw - 1.0, hh - 1.0])
        return xy * (s / hm) + c - s * 0.5
    off = 1.0 if convention == "dark" else 0.0
    ratio = (s[..., 0:1] - off) / (hw - off)
    dst_c = np.array([(hw - off) * 0.5, (hh - off) * 0.5])
    return (xy - dst_c) * ratio + c
