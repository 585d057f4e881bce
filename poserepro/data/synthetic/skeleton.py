"""The 3-D body model: sample proportions, a pose family and a viewpoint, then project and place a person.

Internal joint indices 0..16 are the COCO keypoints; 17..23 are helper points (head centre, neck, pelvis, hands,
toes).  :func:`place_person` returns a :class:`Person` in pixel units, ready for :mod:`.render` to draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# internal joint indices: 0..16 are the COCO keypoints, then helper points
NOSE, LEYE, REYE, LEAR, REAR = 0, 1, 2, 3, 4
LSHO, RSHO, LELB, RELB, LWRI, RWRI = 5, 6, 7, 8, 9, 10
LHIP, RHIP, LKNE, RKNE, LANK, RANK = 11, 12, 13, 14, 15, 16
HEAD, NECK, PELVIS, LHAND, RHAND, LTOE, RTOE = 17, 18, 19, 20, 21, 22, 23
_NJ = 24

_DOWN = np.array([0.0, 1.0, 0.0])
# face directions in the head frame (x = person's left, y = down, z = forward), and the minimum camera-facing
# component (z after all rotations) for the point to count as visible
_FACE_DIRS = {
    NOSE: ((0.0, 0.28, 0.96), -0.05),
    LEYE: ((0.36, -0.10, 0.93), 0.12),
    REYE: ((-0.36, -0.10, 0.93), 0.12),
    LEAR: ((0.97, 0.02, -0.22), -0.35),
    REAR: ((-0.97, 0.02, -0.22), -0.35),
}
_FAMILIES = ("standing", "walking", "arms_raised", "sitting", "crouching")
_FAMILY_P = (0.30, 0.28, 0.17, 0.13, 0.12)


def _rx(a: float) -> np.ndarray:
    """Rotation about x; ``_rx(b) @ down`` raises a limb forward by ``b`` radians."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    """Rotation about the vertical axis (yaw); ``a = 0`` faces the camera, ``+pi/2`` faces image right."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    """Rotation in the frontal plane; ``_rz(a) @ down`` swings a limb towards ``+x`` (person's left)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def unit(v: tuple[float, float, float]) -> np.ndarray:
    """``v`` scaled to length 1, as a float64 array."""
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def _sample_angles(rng: np.random.Generator) -> dict[str, Any]:
    """Joint angles (degrees) of one pose family, inside anatomical limits.

    ``arms[i]`` / ``legs[i]`` (i = 0 left, 1 right) are ``(abduction, forward raise, flexion, twist)``.
    """
    u = rng.uniform
    fam = _FAMILIES[int(rng.choice(len(_FAMILIES), p=_FAMILY_P))]

    def std_arm() -> list[float]:
        return [u(4, 35), u(-20, 35), u(0, 60), u(-20, 60)]

    def std_leg() -> list[float]:
        return [u(-3, 15), u(-10, 20), u(0, 20), u(-10, 10)]

    def gesture_arm() -> list[float]:
        if rng.random() < 0.25:  # hand on hip
            return [u(35, 60), u(-15, 10), u(80, 125), u(70, 100)]
        return [u(0, 120), u(-30, 120), u(0, 140), u(-30, 100)]

    lean, lateral = u(-6, 10), u(-8, 8)
    if fam == "standing":
        arms = [gesture_arm() if rng.random() < 0.3 else std_arm() for _ in range(2)]
        legs = [std_leg(), std_leg()]
    elif fam == "walking":
        ph, amp_a, amp_l = u(0, 2 * math.pi), u(15, 45), u(15, 35)
        arms, legs = [], []
        for side_sign in (1.0, -1.0):
            arms.append([u(3, 15), side_sign * amp_a * math.sin(ph), u(10, 70), u(-10, 30)])
            hb = -side_sign * amp_l * math.sin(ph)
            legs.append([u(-3, 8), hb, u(15, 55) if hb < 0 else u(0, 25), u(-8, 8)])
        lean = u(0, 12)
    elif fam == "arms_raised":
        which = int(rng.integers(3))  # 0 both, 1 left only, 2 right only
        arms = []
        for i in range(2):
            if which == 0 or which == i + 1:
                if rng.random() < 0.5:
                    arms.append([u(70, 175), u(-10, 40), u(0, 120), u(-30, 90)])
                else:
                    arms.append([u(0, 40), u(90, 180), u(0, 120), u(-30, 90)])
            else:
                arms.append(std_arm())
        wide = rng.random() < 0.3
        legs = [[u(10, 30), u(-5, 10), u(0, 15), 0.0] if wide else std_leg() for _ in range(2)]
    elif fam == "sitting":
        arms = [[u(0, 30), u(-10, 60), u(20, 110), u(-20, 60)] for _ in range(2)]
        legs = [[u(-5, 25), u(65, 110), u(60, 115), u(-10, 10)] for _ in range(2)]
        lean = u(-15, 20)
    else:  # crouching
        arms = [[u(0, 35), u(0, 90), u(10, 100), u(-20, 60)] for _ in range(2)]
        legs = [[u(0, 30), u(95, 135), u(100, 150), u(-10, 10)] for _ in range(2)]
        lean = u(20, 60)
    # anatomical limits
    for a in arms:
        a[0] = float(np.clip(a[0], -10, 178))
        a[1] = float(np.clip(a[1], -50, 180))
        a[2] = float(np.clip(a[2], 0, 150))
        a[3] = float(np.clip(a[3], -40, 110))
    for leg in legs:
        leg[0] = float(np.clip(leg[0], -15, 50))
        leg[1] = float(np.clip(leg[1], -30, 135))
        leg[2] = float(np.clip(leg[2], 0, 155))
        leg[3] = float(np.clip(leg[3], -20, 20))
    head = (
        float(np.clip(rng.normal(0, 20), -60, 60)),
        float(np.clip(rng.normal(0, 10), -30, 30)),
        float(np.clip(rng.normal(0, 8), -25, 25)),
    )
    return {"family": fam, "arms": arms, "legs": legs, "lean": lean, "lateral": lateral, "head": head}


@dataclass
class Person:
    """A posed, projected person (pixel units)."""

    xy: np.ndarray  # (_NJ, 2) joint positions
    z: np.ndarray  # (_NJ,) depth towards the camera (larger = nearer)
    face_vis: dict[int, bool]  # face keypoint -> turned towards the camera
    torso_xy: np.ndarray  # (8, 2) projected torso box corners
    torso_z: float
    radii: dict[str, float]  # part radii in pixels
    head_r: float
    head_fwd: np.ndarray  # (3,) head forward direction in camera frame
    stature: float
    extent: np.ndarray  # (4,) x0, y0, x1, y1 of the whole figure in pixels
    family: str = ""  # pose family (one of ``POSE_CLASSES``): a per-person label for probes (k-NN, DINO)
    yaw: float = 0.0  # turn about the vertical axis in degrees, [-180, 180); 0 = facing the camera


def _build_person(
    rng: np.random.Generator, stature_px: float, pose: float = 0.5,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Sample proportions, a pose and a viewpoint; return 3-D helper data in units of stature.

    ``pose`` (the :class:`SynthConfig` knob) sets how often the person is seen from the side or back and rolled
    in the image plane: at 0.5, 55 % near-frontal, 12 % from the back, 33 % any yaw; 80 % upright, 15 % rolled up
    to +-60 degrees, 5 % lying.  Only the thresholds move with the knob, so the random stream is the same.

    Returns ``(points3d, extra)`` where ``points3d`` is ``(_NJ + 8, 3)`` (joints then torso box corners) in
    the camera frame after yaw, and ``extra`` holds radii, face visibility and the in-plane transform params.
    """
    u = rng.uniform

    def jit(sd: float = 0.06) -> float:
        return float(math.exp(rng.normal(0.0, sd)))

    # proportions (fractions of stature), with per-person jitter (symmetric, plus a tiny asymmetry)
    tl = 0.29 * jit()  # pelvis -> shoulder line
    sw = 0.115 * u(0.85, 1.18)  # half shoulder width
    hw = 0.085 * u(0.85, 1.18)  # half hip width
    neck_len = 0.045 * jit(0.1)
    head_r = 0.066 * u(0.9, 1.12)
    ua, fa, hand = 0.175 * jit(), 0.15 * jit(), 0.06 * jit(0.1)
    th, sh, foot = 0.245 * jit(), 0.245 * jit(), 0.075 * jit(0.1)
    wj = u(0.8, 1.35)  # limb width jitter
    radii = {
        "ua0": 0.034 * wj, "ua1": 0.027 * wj, "fa0": 0.026 * wj, "fa1": 0.020 * wj,
        "th0": 0.052 * wj, "th1": 0.038 * wj, "sh0": 0.037 * wj, "sh1": 0.026 * wj,
        "hand": 0.022 * u(0.9, 1.2), "foot": 0.022 * u(0.9, 1.2), "neck": 0.03 * u(0.85, 1.2),
    }  # fmt: skip
    chest_d, hip_d = 0.06 * u(0.85, 1.25), 0.055 * u(0.85, 1.25)

    ang = _sample_angles(rng)
    d2r = math.pi / 180.0
    J = np.zeros((_NJ, 3))
    J[LHIP] = (hw, 0.0, 0.0)
    J[RHIP] = (-hw, 0.0, 0.0)
    rt = _rz(ang["lateral"] * d2r) @ _rx(-ang["lean"] * d2r)  # torso rotation about the pelvis
    J[NECK] = rt @ np.array([0.0, -tl, 0.0])
    J[LSHO] = rt @ np.array([sw, -tl + 0.012, 0.0])
    J[RSHO] = rt @ np.array([-sw, -tl + 0.012, 0.0])

    # arms (parent frame: torso); flexion brings the forearm forward, twist swings it towards the midline
    for i, (sho, elb, wri, tip) in enumerate(((LSHO, LELB, LWRI, LHAND), (RSHO, RELB, RWRI, RHAND))):
        s = 1.0 if i == 0 else -1.0
        a, b, fl, tw = (v * d2r for v in ang["arms"][i])
        ru = rt @ _rz(s * a) @ _rx(b)
        d1 = ru @ _DOWN
        d2 = ru @ np.array([-s * math.sin(fl) * math.sin(tw), math.cos(fl), math.sin(fl) * math.cos(tw)])
        J[elb] = J[sho] + ua * jit(0.02) * d1
        J[wri] = J[elb] + fa * jit(0.02) * d2
        J[tip] = J[wri] + hand * d2

    # legs (parent frame: pelvis); knee flexion brings the shin backwards
    for i, (hip, kne, ank, toe) in enumerate(((LHIP, LKNE, LANK, LTOE), (RHIP, RKNE, RANK, RTOE))):
        s = 1.0 if i == 0 else -1.0
        a, b, fl, tw = (v * d2r for v in ang["legs"][i])
        ru = _rz(s * a) @ _rx(b)
        d1 = ru @ _DOWN
        d2 = ru @ np.array([-s * math.sin(fl) * math.sin(tw), math.cos(fl), -math.sin(fl) * math.cos(tw)])
        J[kne] = J[hip] + th * jit(0.02) * d1
        J[ank] = J[kne] + sh * jit(0.02) * d2
        ankle_flex = u(-15, 20) * d2r
        fdir = ru @ _rx(-fl) @ _rx(ankle_flex) @ unit((0.0, 0.3, 1.0))
        J[toe] = J[ank] + foot * fdir

    # head and face
    hy, hp, hr = (v * d2r for v in ang["head"])
    rh = rt @ _ry(hy) @ _rx(hp) @ _rz(hr)
    J[HEAD] = J[NECK] + rt @ np.array([0.0, -(neck_len + head_r), 0.012])
    for k, (d, _) in _FACE_DIRS.items():
        J[k] = J[HEAD] + 0.97 * head_r * (rh @ unit(d))

    # torso box corners (shoulder line and hip line, front and back)
    corners = []
    for yy, half_w, dz in ((-tl - 0.005, sw + 0.022, chest_d), (0.03, hw + 0.04, hip_d)):
        for sx in (1.0, -1.0):
            for sz in (1.0, -1.0):
                p = np.array([sx * half_w, yy, sz * dz])
                corners.append(rt @ p if yy < 0 else p)
    pts = np.concatenate([J, np.asarray(corners)], axis=0)

    # viewpoint: mostly facing the camera, sometimes from the back, otherwise any yaw
    r = rng.random()
    p_front, p_back = 1.0 - 0.9 * pose, 0.24 * pose
    if r < p_front:
        yaw = rng.normal(0.0, 25.0)
    elif r < p_front + p_back:
        yaw = 180.0 + rng.normal(0.0, 25.0)
    else:
        yaw = u(-180.0, 180.0)
    ry = _ry(yaw * d2r)
    pts = pts @ ry.T
    face_vis = {}
    for k, (d, thr) in _FACE_DIRS.items():
        face_vis[k] = bool((ry @ rh @ unit(d))[2] > thr)
    head_fwd = ry @ rh @ np.array([0.0, 0.0, 1.0])

    r = rng.random()
    p_upright, p_rolled = 1.0 - 0.4 * pose, 0.3 * pose
    if r < p_upright:
        roll = rng.normal(0.0, 6.0)
    elif r < p_upright + p_rolled:
        roll = u(-60.0, 60.0)
    else:
        roll = (90.0 + rng.normal(0.0, 12.0)) * (1.0 if rng.random() < 0.5 else -1.0)
    extra = {
        "radii": {k: v * stature_px for k, v in radii.items()},
        "head_r": head_r * stature_px,
        "face_vis": face_vis,
        "head_fwd": head_fwd,
        "roll": roll * d2r,
        "aspect": u(0.9, 1.1),
        "family": ang["family"],
        "yaw": float((yaw + 180.0) % 360.0 - 180.0),  # wrapped to [-180, 180)
    }
    return pts, extra


def place_person(
    rng: np.random.Generator,
    stature_px: float,
    img_w: int,
    img_h: int,
    near: np.ndarray | None,
    others: list[np.ndarray],
    tries: int,
    pose: float = 0.5,
) -> Person:
    """Pose, project, roll, scale and translate one person.

    ``near`` is a centre to overlap with, if any; otherwise the best of ``tries`` random positions (least
    overlap with the ``others`` extents ``[x0, y0, x1, y1]``) is used.
    """
    pts, ex = _build_person(rng, stature_px, pose)
    xy = pts[:, :2] * np.array([ex["aspect"], 1.0])
    c, s = math.cos(ex["roll"]), math.sin(ex["roll"])
    xy = xy @ np.array([[c, s], [-s, c]]) * stature_px
    z = pts[:, 2] * stature_px
    # extent of the figure (joints, head disc, torso) to place it
    lo = np.minimum(xy.min(axis=0), xy[HEAD] - ex["head_r"])
    hi = np.maximum(xy.max(axis=0), xy[HEAD] + ex["head_r"])
    size = hi - lo
    centre = (lo + hi) / 2
    dims = np.array([img_w, img_h], dtype=np.float64)
    # range of bbox centres that keep the figure inside the image, widened by ``slack`` (truncation)
    slack = 0.0 if rng.random() < 0.7 else rng.uniform(0.1, 0.45)
    tlo, thi = size / 2 - slack * size, dims - size / 2 + slack * size
    a, b = np.minimum(tlo, thi), np.maximum(tlo, thi)
    if near is not None:  # overlap an earlier (farther) person
        offset = np.array(
            [
                rng.uniform(0.2, 0.75) * size[0] * (1 if rng.random() < 0.5 else -1),
                rng.normal(0.0, 0.12) * size[1],
            ]
        )
        target = np.clip(near + offset, a - 0.15 * size, b + 0.15 * size)
    else:
        best = -1.0
        for _ in range(max(1, tries)):
            cand = a + rng.random(2) * (b - a)
            lo_c, hi_c = cand - size / 2, cand + size / 2
            overlap = 0.0
            for o in others:
                ov = np.clip(np.minimum(hi_c, o[2:]) - np.maximum(lo_c, o[:2]), 0.0, None)
                overlap += float(ov[0] * ov[1])
            if best < 0 or overlap < best:
                best, target = overlap, cand
    shift = target - centre
    xy = xy + shift
    return Person(
        extent=np.concatenate([lo + shift, hi + shift]),
        xy=xy[:_NJ],
        z=z[:_NJ],
        face_vis=ex["face_vis"],
        torso_xy=xy[_NJ:],
        torso_z=float(z[[LSHO, RSHO, LHIP, RHIP]].mean()),
        radii=ex["radii"],
        head_r=ex["head_r"],
        head_fwd=ex["head_fwd"],
        stature=stature_px,
        family=str(ex["family"]),
        yaw=float(ex["yaw"]),
    )


#: The pose families, in label order (``synth.pose_class`` of an annotation is one of these).
POSE_CLASSES: tuple[str, ...] = _FAMILIES
#: The views, in label order: |yaw| <= 45 front, >= 135 back, else side.
VIEWS: tuple[str, ...] = ("front", "side", "back")


def view_of(yaw: float) -> str:
    """``front`` (|yaw| <= 45 degrees), ``back`` (>= 135) or ``side``."""
    a = abs(yaw)
    return "front" if a <= 45.0 else "back" if a >= 135.0 else "side"

