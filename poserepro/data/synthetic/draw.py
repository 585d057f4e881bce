"""Drawing primitives in fixed-point OpenCV coordinates: colours, shaded capsules, discs and noise fields.

Coordinates are scaled by ``ONE = 2**SHIFT`` so that anti-aliased shapes land on sub-pixel positions.  The
white-noise bank is made once per process (cached) and images take random crops of it.
"""

from __future__ import annotations

import colorsys
import functools
from typing import Any

import cv2
import numpy as np

from .config import BANK_CODE, rng_for

SHIFT = 4
ONE = 1 << SHIFT
_CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 14, endpoint=False)),
                    np.sin(np.linspace(0, 2 * np.pi, 14, endpoint=False))], axis=1)  # fmt: skip

SKIN = ((60, 90, 150), (80, 120, 190), (110, 160, 225), (140, 180, 235), (45, 65, 110), (95, 140, 205))
HAIR = ((20, 20, 25), (30, 45, 70), (40, 70, 120), (15, 25, 40), (150, 170, 190), (60, 60, 60))


def hsv(h_deg: float, s: float, v: float) -> tuple[float, float, float]:
    """HSV (hue in degrees, s and v in [0, 1]) to a BGR tuple in [0, 255]."""
    r, g, b = colorsys.hsv_to_rgb((h_deg % 360.0) / 360.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return (b * 255.0, g * 255.0, r * 255.0)


def scale(col: tuple[float, float, float], f: float, add: float = 0.0) -> tuple[float, float, float]:
    """``col * f + add`` per channel, clipped to [0, 255]."""
    return tuple(float(min(255.0, max(0.0, c * f + add))) for c in col)  # type: ignore[return-value]


def warm_hue(rng: np.random.Generator) -> float:
    """Hue family of the person's LEFT side: reds / oranges / yellows."""
    return float(rng.uniform(-22.0, 48.0))


def cool_hue(rng: np.random.Generator) -> float:
    """Hue family of the person's RIGHT side: cyans / blues."""
    return float(rng.uniform(175.0, 245.0))


def fix(pts: np.ndarray) -> np.ndarray:
    """Pixel coordinates to OpenCV fixed point (``SHIFT`` fractional bits), as int32."""
    return np.round(np.asarray(pts, dtype=np.float64) * ONE).astype(np.int32)


def _capsule_poly(a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> np.ndarray:
    """Convex hull (fixed point) of two discs: a tapered limb."""
    pts = np.concatenate([a + max(ra, 0.7) * _CIRCLE, b + max(rb, 0.7) * _CIRCLE], axis=0)
    return cv2.convexHull(fix(pts))


def shaded_capsule(
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
    cv2.fillConvexPoly(img, poly, scale(col, 0.7), cv2.LINE_AA, SHIFT)
    d = b - a
    n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-6)
    off = n * (0.28 if float(n @ light) >= 0 else -0.28)
    hl = _capsule_poly(a + off * ra, b + off * rb, 0.5 * ra, 0.5 * rb)
    cv2.fillConvexPoly(img, hl, scale(col, 1.08, 12.0), cv2.LINE_AA, SHIFT)
    if layer is not None:
        cv2.fillConvexPoly(layer, poly, int(layer_id), cv2.LINE_8, SHIFT)


def disc(img: np.ndarray, c: np.ndarray, r: float, col: Any, aa: bool = True) -> None:
    """A filled disc of radius ``r`` (at least 0.6 px) at ``c``, anti-aliased unless ``aa`` is false."""
    cv2.circle(img, tuple(int(v) for v in fix(c)), int(round(max(r, 0.6) * ONE)), col, -1,
               cv2.LINE_AA if aa else cv2.LINE_8, SHIFT)  # fmt: skip


def smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int, channels: int = 1) -> np.ndarray:
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
    return rng_for(seed, BANK_CODE).standard_normal((h + pad, w + pad, 3), dtype=np.float32)


def white_noise(rng: np.random.Generator, seed: int, w: int, h: int) -> np.ndarray:
    """Per-pixel, per-channel unit Gaussian noise of shape (h, w, 3) (a random crop of the bank)."""
    bank = _white_noise_bank(seed, w, h)
    pad = _bank_pad(w, h)
    oy, ox = int(rng.integers(0, pad + 1)), int(rng.integers(0, pad + 1))
    return bank[oy : oy + h, ox : ox + w]

