"""Skeleton drawing with OpenCV: limbs coloured one by one, left / right / centre in distinct hue families,
keypoint scores, person boxes and scores, and a keypoint-score threshold.

Works for any :class:`~poserepro.keypoints.KeypointSpec` with a ``skeleton`` (COCO-17, MPII-16, a custom JSON
layout). A joint is *left* or *right* by its name (``left_*`` / ``right_*``); a limb is left (right) when both
of its joints are, else centre. Left limbs take hues 0-50° (reds / oranges), right limbs 190-250° (blues),
centre limbs 90-150° (greens), each limb its own hue inside its family. Images are BGR ``uint8`` arrays as
OpenCV reads them; drawing is in place and the image is returned.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .keypoints import KeypointSpec

#: hue ranges (degrees) of each side's family
HUES = {"left": (0.0, 50.0), "right": (190.0, 250.0), "centre": (90.0, 150.0)}
BOX_COLOR = (255, 255, 255)


def joint_side(name: str) -> str:
    """``left``, ``right`` or ``centre`` from a joint name (``left_wrist``, ``r_knee`` ...)."""
    n = name.lower()
    if n.startswith(("left", "l_")):
        return "left"
    if n.startswith(("right", "r_")):
        return "right"
    return "centre"


def _bgr(hue_deg: float, s: float = 0.9, v: float = 1.0) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, s, v)
    return int(round(b * 255)), int(round(g * 255)), int(round(r * 255))


@dataclass(frozen=True)
class Palette:
    """Colours of one layout: ``limbs[i]`` for ``spec.skeleton[i]``, ``joints[k]`` for joint ``k`` (BGR)."""

    limbs: tuple[tuple[int, int, int], ...]
    joints: tuple[tuple[int, int, int], ...]
    limb_sides: tuple[str, ...]


def palette(spec: KeypointSpec) -> Palette:
    """Colour per limb (hues spread evenly inside each side's family) and per joint (its side's mid hue)."""
    names = spec.keypoint_names or tuple(f"j{k}" for k in range(spec.num_keypoints))
    sides = [joint_side(n) for n in names]
    limb_sides = []
    for a, b in spec.skeleton:
        sa, sb = sides[a], sides[b]
        limb_sides.append(sa if sa == sb else "centre")
    limbs: list[tuple[int, int, int]] = []
    for i, side in enumerate(limb_sides):
        same = [j for j, s in enumerate(limb_sides) if s == side]
        lo, hi = HUES[side]
        t = same.index(i) / max(1, len(same) - 1)
        limbs.append(_bgr(lo + t * (hi - lo)))
    joints = tuple(_bgr(sum(HUES[s]) / 2, 0.6, 1.0) for s in sides)
    return Palette(tuple(limbs), joints, tuple(limb_sides))


def line_width(shape: Sequence[int]) -> int:
    """Limb thickness for an image of ``shape`` (H, W, ...): 1 px per 240 px of the shorter side, at least 2."""
    return max(2, int(round(min(shape[0], shape[1]) / 240)))


def draw_person(
    img: np.ndarray, keypoints: np.ndarray, spec: KeypointSpec, kpt_thr: float = 0.3,
    box: Sequence[float] | None = None, score: float | None = None, kpt_scores: bool = True,
    pal: Palette | None = None,
) -> np.ndarray:
    """Draw one person on ``img`` (BGR uint8, in place).

    Args:
        keypoints: ``(K, 3)`` image pixels + score; joints with score ``<= kpt_thr`` and limbs touching one are
            not drawn.
        box: ``[x, y, w, h]`` person box (drawn in white with ``score`` above it), or ``None``.
        score: the person score written at the box (or at the top joint when there is no box).
        kpt_scores: write each drawn joint's score (two decimals) beside it.
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(spec.num_keypoints, 3)
    pal = pal or palette(spec)
    lw = line_width(img.shape)
    shown = kp[:, 2] > kpt_thr
    for (a, b), color in zip(spec.skeleton, pal.limbs):
        if shown[a] and shown[b]:
            pa = (int(round(kp[a, 0])), int(round(kp[a, 1])))
            pb = (int(round(kp[b, 0])), int(round(kp[b, 1])))
            cv2.line(img, pa, pb, color, lw, cv2.LINE_AA)
    font = 0.25 + 0.05 * lw
    for k in np.flatnonzero(shown):
        p = (int(round(kp[k, 0])), int(round(kp[k, 1])))
        cv2.circle(img, p, lw + 1, pal.joints[k], -1, cv2.LINE_AA)
        cv2.circle(img, p, lw + 1, (0, 0, 0), 1, cv2.LINE_AA)
        if kpt_scores:
            cv2.putText(img, f"{kp[k, 2]:.2f}", (p[0] + lw + 2, p[1] - lw - 1), cv2.FONT_HERSHEY_SIMPLEX, font,
                        pal.joints[k], 1, cv2.LINE_AA)
    anchor = None
    if box is not None:
        x, y, w, h = (float(v) for v in box[:4])
        p1, p2 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
        cv2.rectangle(img, p1, p2, BOX_COLOR, max(1, lw // 2), cv2.LINE_AA)
        anchor = (p1[0], max(p1[1] - 4, 10))
    elif shown.any():
        top = kp[shown][np.argmin(kp[shown, 1])]
        anchor = (int(round(top[0])), max(int(round(top[1])) - 3 * lw - 6, 10))
    if score is not None and anchor is not None:
        cv2.putText(img, f"{score:.2f}", anchor, cv2.FONT_HERSHEY_SIMPLEX, font + 0.05, BOX_COLOR, 1, cv2.LINE_AA)
    return img


def draw_box(img: np.ndarray, box: Sequence[float], score: float | None = None) -> np.ndarray:
    """Draw a person box ``[x, y, w, h]`` (white) and its score above it on ``img`` (BGR uint8, in place)."""
    lw = line_width(img.shape)
    x, y, w, h = (float(v) for v in box[:4])
    p1, p2 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
    cv2.rectangle(img, p1, p2, BOX_COLOR, max(1, lw // 2), cv2.LINE_AA)
    if score is not None:
        cv2.putText(img, f"{score:.2f}", (p1[0] + 2, max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.3 + 0.05 * lw,
                    BOX_COLOR, 1, cv2.LINE_AA)
    return img


def draw_results(
    img: np.ndarray, results: Sequence[dict], spec: KeypointSpec, kpt_thr: float = 0.3, kpt_scores: bool = True,
    boxes: bool = True,
) -> np.ndarray:
    """Draw COCO keypoint results (``{"keypoints": [x, y, s] × K, "score", "bbox"?}``) of one image, in place;
    a result's ``bbox`` is drawn when ``boxes``."""
    pal = palette(spec)
    for r in results:
        draw_person(img, np.asarray(r["keypoints"]), spec, kpt_thr, r.get("bbox") if boxes else None,
                    r.get("score"), kpt_scores, pal)
    return img


def drawn_extent(result: dict, num_keypoints: int, kpt_thr: float, margin: int) -> tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)``: a rectangle that holds everything :func:`draw_person` draws for ``result`` (joints
    above ``kpt_thr``, limbs, box, score texts), grown by ``margin`` pixels (line widths and text)."""
    kp = np.asarray(result["keypoints"], dtype=np.float64).reshape(num_keypoints, 3)
    pts = [kp[kp[:, 2] > kpt_thr, :2]]
    if result.get("bbox") is not None:
        x, y, w, h = result["bbox"]
        pts.append(np.array([[x, y], [x + w, y + h]]))
    allp = np.concatenate(pts) if any(len(p) for p in pts) else np.zeros((1, 2))
    x1, y1 = np.floor(allp.min(axis=0)) - margin
    x2, y2 = np.ceil(allp.max(axis=0)) + margin
    return int(x1), int(y1), int(x2), int(y2)
