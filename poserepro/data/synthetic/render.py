"""Render one image: background, people far-to-near, occluders, photometric noise, then the COCO labels.

:func:`render_image` is a pure function of ``(config, split, index)``; :func:`render_to_file` also encodes the
JPEG and writes it atomically, and is what the worker processes of :mod:`.pool` run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...io import atomic_write_bytes
from .config import SPLIT_CODE, SynthConfig, rng_for
from .draw import (
    HAIR,
    ONE,
    SHIFT,
    SKIN,
    cool_hue,
    disc,
    fix,
    hsv,
    scale,
    shaded_capsule,
    smooth_noise,
    warm_hue,
    white_noise,
)
from .skeleton import (
    HEAD,
    LANK,
    LEAR,
    LELB,
    LEYE,
    LHAND,
    LHIP,
    LKNE,
    LSHO,
    LTOE,
    LWRI,
    NECK,
    NOSE,
    PELVIS,
    RANK,
    REAR,
    RELB,
    REYE,
    RHAND,
    RHIP,
    RKNE,
    RSHO,
    RTOE,
    RWRI,
    Person,
    place_person,
    unit,
    view_of,
)

#: One rendering job: ``(config, split, index, jpeg path)``.
Task = tuple[SynthConfig, str, int, str]


def _background(rng: np.random.Generator, w: int, h: int, clutter: float) -> np.ndarray:
    """Gradient + texture + random shapes + limb-like distractor strokes (amount set by ``clutter``)."""
    c0 = np.array(hsv(rng.uniform(0, 360), rng.uniform(0, 0.6), rng.uniform(0.25, 0.9)), np.float32)
    c1 = np.array(hsv(rng.uniform(0, 360), rng.uniform(0, 0.6), rng.uniform(0.25, 0.9)), np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    # smooth layers are built at quarter resolution and upsampled once
    lw, lh = max(8, w // 4), max(8, h // 4)
    xs = np.linspace(0.0, 1.0, lw, dtype=np.float32)
    ys = np.linspace(0.0, 1.0, lh, dtype=np.float32)
    t = math.cos(ang) * xs[None, :] + math.sin(ang) * ys[:, None]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    img += smooth_noise(rng, lw, lh, 5, 3) * (4.0 + 16.0 * clutter)
    img += smooth_noise(rng, lw, lh, 28, 1)[..., None] * (2.0 + 18.0 * clutter)
    img = cv2.resize(np.clip(img, 0, 255), (w, h), interpolation=cv2.INTER_LINEAR)
    out = (img + np.float32(0.5)).astype(np.uint8)

    diag = math.hypot(w, h)
    for _ in range(int(rng.poisson(1.0 + 12.0 * clutter))):
        col = hsv(rng.uniform(0, 360), rng.uniform(0, 0.9), rng.uniform(0.1, 1.0))
        kind = int(rng.integers(4))
        thick = -1 if rng.random() < 0.6 else int(rng.integers(1, 4))
        p = rng.uniform([0, 0], [w, h])
        sz = rng.uniform(0.04, 0.3) * diag
        if kind == 0:
            q = p + rng.uniform(-sz, sz, 2)
            cv2.rectangle(out, tuple(fix(p)), tuple(fix(q)), col, thick, cv2.LINE_AA, SHIFT)
        elif kind == 1:
            cv2.circle(out, tuple(fix(p)), int(sz * 0.4 * ONE), col, thick, cv2.LINE_AA, SHIFT)
        elif kind == 2:
            q = p + rng.uniform(-sz, sz, 2)
            cv2.line(out, tuple(fix(p)), tuple(fix(q)), col, int(rng.integers(1, 5)), cv2.LINE_AA, SHIFT)
        else:
            tri = p + rng.uniform(-sz / 2, sz / 2, (3, 2))
            cv2.fillConvexPoly(out, fix(tri), col, cv2.LINE_AA, SHIFT)
    # limb-like distractor strokes in the same hue families as real limbs
    light = unit((1.0, -1.0, 0.0))[:2]
    for _ in range(int(rng.poisson(4.0 * clutter))):
        hue = warm_hue(rng) if rng.random() < 0.5 else cool_hue(rng)
        col = hsv(hue, rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0))
        a = rng.uniform([0, 0], [w, h])
        r0 = rng.uniform(0.012, 0.03) * h
        ang = rng.uniform(0, 2 * np.pi)
        for _seg in range(int(rng.integers(1, 3)) + 1):
            ln = rng.uniform(0.06, 0.16) * h
            b = a + ln * np.array([math.cos(ang), math.sin(ang)])
            r1 = r0 * rng.uniform(0.7, 0.95)
            shaded_capsule(out, a, b, r0, r1, col, light)
            a, r0 = b, r1
            ang += rng.uniform(-1.6, 1.6)
    # head-like discs
    for _ in range(int(rng.poisson(0.8 * clutter))):
        col = tuple(float(c) for c in np.array(SKIN[int(rng.integers(len(SKIN)))]) * rng.uniform(0.85, 1.1))
        disc(out, rng.uniform([0, 0], [w, h]), rng.uniform(0.02, 0.05) * h, col)
    return out


def _draw_person(
    img: np.ndarray,
    layer: np.ndarray,
    owners: list[int],
    person: Person,
    pid: int,
    light: np.ndarray,
    rng: np.random.Generator,
) -> dict[int, list[int]]:
    """Draw ``person`` far-to-near into ``img`` and its part ids into ``layer``.

    Returns, for every COCO keypoint, the layer ids of the parts that own it (a keypoint covered by any other
    layer counts as occluded).
    """
    P, R = person.xy, person.radii
    left_hue, right_hue = warm_hue(rng), cool_hue(rng)
    cols = {}
    for side, hue in (("L", left_hue), ("R", right_hue)):
        sat, val = rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
        cols[side + "arm"] = hsv(hue, sat, val)
        fhue = hue + rng.uniform(-10, 10)
        cols[side + "farm"] = hsv(fhue, sat * rng.uniform(0.8, 1.0), val * rng.uniform(0.8, 1.1))
        leg_hue = hue + rng.uniform(-15, 15)
        cols[side + "leg"] = hsv(leg_hue, rng.uniform(0.55, 1.0), rng.uniform(0.5, 0.95))
        shue = leg_hue + rng.uniform(-8, 8)
        cols[side + "shin"] = hsv(shue, rng.uniform(0.55, 1.0), rng.uniform(0.5, 0.95))
    torso_col = hsv(rng.uniform(0, 360), rng.uniform(0.05, 0.55), rng.uniform(0.3, 0.95))
    skin_base = np.array(SKIN[int(rng.integers(len(SKIN)))], dtype=np.float64)
    skin = tuple(float(c) for c in np.clip(skin_base * rng.uniform(0.9, 1.1), 0, 255))
    hair = HAIR[int(rng.integers(len(HAIR)))]
    shoe = hsv(rng.uniform(0, 360), rng.uniform(0, 0.5), rng.uniform(0.1, 0.4))

    # parts: (depth, kind, payload, owned keypoints)
    parts: list[tuple[float, str, tuple[Any, ...], tuple[int, ...]]] = []

    def limb(j0: int, j1: int, r0: float, r1: float, col: Any, own: tuple[int, ...], bias: float) -> None:
        depth = float(person.z[j0] + person.z[j1]) / 2 + bias * person.stature
        parts.append((depth, "limb", (j0, j1, r0, r1, col), own))

    for side, (sho, elb, wri, tip, hip, kne, ank, toe) in (
        ("L", (LSHO, LELB, LWRI, LHAND, LHIP, LKNE, LANK, LTOE)),
        ("R", (RSHO, RELB, RWRI, RHAND, RHIP, RKNE, RANK, RTOE)),
    ):
        limb(sho, elb, R["ua0"], R["ua1"], cols[side + "arm"], (sho, elb), 0.004)
        limb(elb, wri, R["fa0"], R["fa1"], cols[side + "farm"], (elb, wri), 0.005)
        limb(wri, tip, R["hand"], R["hand"] * 0.9, skin, (wri,), 0.006)
        limb(hip, kne, R["th0"], R["th1"], cols[side + "leg"], (hip, kne), 0.004)
        limb(kne, ank, R["sh0"], R["sh1"], cols[side + "shin"], (kne, ank), 0.005)
        limb(ank, toe, R["foot"], R["foot"] * 0.85, shoe, (ank,), 0.006)
    parts.append((person.torso_z, "torso", (), (LSHO, RSHO, LHIP, RHIP)))
    neck_depth = float(person.z[NECK] + person.z[HEAD]) / 2 - 0.002 * person.stature
    neck = (NECK, HEAD, R["neck"], R["neck"], scale(skin, 0.85))
    parts.append((neck_depth, "limb", neck, (LSHO, RSHO)))
    head_depth = float(person.z[HEAD]) + 0.003 * person.stature
    parts.append((head_depth, "head", (), (NOSE, LEYE, REYE, LEAR, REAR)))

    order = sorted(range(len(parts)), key=lambda i: parts[i][0])
    own: dict[int, list[int]] = {k: [] for k in range(17)}
    for i in order:
        _, kind, payload, owned = parts[i]
        lid = len(owners)
        owners.append(pid)
        for k in owned:
            own[k].append(lid)
        if kind == "limb":
            j0, j1, r0, r1, col = payload
            shaded_capsule(img, P[j0], P[j1], r0, r1, col, light, layer, lid)
        elif kind == "torso":
            hull = cv2.convexHull(fix(person.torso_xy))
            cv2.fillConvexPoly(img, hull, scale(torso_col, 0.8), cv2.LINE_AA, SHIFT)
            cv2.fillConvexPoly(layer, hull, lid, cv2.LINE_8, SHIFT)
            # a lighter inner panel (shirt front / back) for some shading
            ctr = person.torso_xy.mean(axis=0)
            inner = ctr + 0.7 * (person.torso_xy - ctr) + 0.01 * person.stature * light
            panel = cv2.convexHull(fix(inner))
            cv2.fillConvexPoly(img, panel, scale(torso_col, 1.05, 8.0), cv2.LINE_AA, SHIFT)
        else:
            _draw_head(img, layer, lid, person, skin, hair)
    return own


def _draw_head(
    img: np.ndarray, layer: np.ndarray, lid: int, person: Person, skin: Any, hair: Any
) -> None:
    """Head disc: hair all round, a face disc shifted towards the facing direction, eyes / nose / ears."""
    P, r = person.xy, person.head_r
    c = P[HEAD]
    disc(img, c, r, hair)
    disc(layer, c, r, lid, aa=False)
    f = person.head_fwd
    for ear in (LEAR, REAR):
        if person.face_vis[ear]:
            disc(img, P[ear], 0.24 * r, scale(skin, 0.8))
    if f[2] > -0.25:
        fz = float(np.clip(f[2], 0.0, 1.0))
        rf = r * (0.55 + 0.3 * fz)
        fxy = f[:2]
        face_c = c + fxy * (0.95 * r - rf) + np.array([0.0, 0.08 * r])  # |fxy| <= 1: stays inside the head
        disc(img, face_c, rf, skin)
    for ear in (LEAR, REAR):
        if person.face_vis[ear] and f[2] > 0.55:  # frontal view: ears stick out beside the face
            disc(img, P[ear], 0.2 * r, scale(skin, 0.85))
    for eye in (LEYE, REYE):
        if person.face_vis[eye]:
            disc(img, P[eye], max(0.13 * r, 0.7), (30, 25, 20))
    if person.face_vis[NOSE]:
        disc(img, P[NOSE], max(0.13 * r, 0.7), scale(skin, 0.65))


def _draw_occluders(
    img: np.ndarray,
    layer: np.ndarray,
    owners: list[int],
    persons: list[Person],
    rng: np.random.Generator,
    occlusion: float,
) -> None:
    """Random blobs (ellipses, boxes, polygons) dropped onto people; they occlude like a front person."""
    n = int(rng.poisson(0.7 * occlusion * len(persons)))
    for _ in range(n):
        p = persons[int(rng.integers(len(persons)))]
        j = int(rng.integers(17))
        ctr = p.xy[j] + rng.normal(0.0, 0.08, 2) * p.stature
        sz = rng.uniform(0.05, 0.18) * p.stature
        col = hsv(rng.uniform(0, 360), rng.uniform(0, 0.8), rng.uniform(0.15, 0.95))
        lid = len(owners)
        owners.append(0)
        kind = int(rng.integers(3))
        if kind == 0:
            axes = (int(sz * ONE), int(sz * rng.uniform(0.4, 1.0) * ONE))
            angle = float(rng.uniform(0, 180))
            for target, c, aa in ((img, col, cv2.LINE_AA), (layer, lid, cv2.LINE_8)):
                cv2.ellipse(target, tuple(fix(ctr)), axes, angle, 0, 360, c, -1, aa, SHIFT)
        else:
            k = 4 if kind == 1 else int(rng.integers(5, 8))
            if kind == 2:
                ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            else:
                ang = np.arange(4) * np.pi / 2 + rng.uniform(0, 1)
            rad = sz * (rng.uniform(0.6, 1.0, k) if kind == 2 else np.ones(k))
            poly = cv2.convexHull(fix(ctr + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], axis=1)))
            cv2.fillConvexPoly(img, poly, col, cv2.LINE_AA, SHIFT)
            cv2.fillConvexPoly(layer, poly, lid, cv2.LINE_8, SHIFT)


def _photometric(
    img: np.ndarray, layer: np.ndarray, rng: np.random.Generator, noise: float, seed: int
) -> np.ndarray:
    """Surface texture on drawn objects, lighting, brightness/contrast, blur and sensor noise."""
    h, w = layer.shape
    tex = 1.0 + 0.10 * smooth_noise(rng, w, h, 24) + 0.05 * smooth_noise(rng, w, h, 96)
    gain = np.where(layer > 0, tex, np.float32(1.0))
    gain *= 1.0 + (0.06 + 0.25 * noise) * smooth_noise(rng, w, h, 3)  # uneven lighting
    alpha = 1.0 + rng.uniform(-0.35, 0.35) * noise  # contrast
    beta = rng.uniform(-40.0, 40.0) * noise  # brightness
    gain *= np.float32(alpha)
    out = img.astype(np.float32) * gain[..., None]
    out += np.float32(128.0 * (1.0 - alpha) + beta)
    if rng.random() < 0.15 + 0.5 * noise:
        sigma = rng.uniform(0.3, 0.4 + 1.3 * noise)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    std = rng.uniform(0.5, 1.0 + 14.0 * noise)
    out += white_noise(rng, seed, w, h) * np.float32(std)
    out += np.float32(0.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def render_image(cfg: SynthConfig, split: str, index: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render image ``index`` of ``split``: returns the BGR image and its (id-less) person annotations."""
    rng = rng_for(cfg.seed, SPLIT_CODE[split], index)
    w, h = int(cfg.image_size[0]), int(cfg.image_size[1])
    img = _background(rng, w, h, cfg.clutter)
    layer = np.zeros((h, w), np.uint16)
    owners: list[int] = [0]  # layer id -> person id (1-based) or 0 for background / occluder

    n = int(rng.integers(cfg.persons_per_image[0], cfg.persons_per_image[1] + 1))
    statures = rng.uniform(cfg.min_person_height, cfg.max_person_height, n) * h
    # smaller (farther) people are drawn first, with some shuffling
    statures = statures[np.argsort(statures * rng.uniform(0.8, 1.2, n))]
    persons: list[Person] = []
    for i in range(n):
        near = None
        if persons and rng.random() < 0.7 * cfg.occlusion:
            q = persons[int(rng.integers(len(persons)))]
            near = (q.xy[PELVIS] + q.xy[NECK]) / 2
        tries = 1 + int(round(4 * (1.0 - cfg.occlusion)))
        persons.append(
            place_person(rng, float(statures[i]), w, h, near, [q.extent for q in persons], tries, cfg.pose)
        )

    la = rng.uniform(0, 2 * np.pi)
    light = np.array([math.cos(la), math.sin(la)])
    owned = [_draw_person(img, layer, owners, p, i + 1, light, rng) for i, p in enumerate(persons)]
    _draw_occluders(img, layer, owners, persons, rng, cfg.occlusion)
    img = _photometric(img, layer, rng, cfg.noise, cfg.seed)

    person_of = np.asarray(owners, dtype=np.int32)[layer]
    anns: list[dict[str, Any]] = []
    for i, p in enumerate(persons):
        mask = person_of == i + 1
        area = int(np.count_nonzero(mask))
        if area == 0:
            continue
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
        kps: list[float] = []
        nvis = 0
        for k in range(17):
            x, y = float(p.xy[k, 0]), float(p.xy[k, 1])
            xi, yi = int(round(x)), int(round(y))
            if not (0 <= xi < w and 0 <= yi < h):
                kps += [0, 0, 0]
                continue
            lid = int(layer[yi, xi])
            covered = lid != 0 and lid not in owned[i][k]
            if k in p.face_vis and not p.face_vis[k]:
                covered = True
            xc, yc = round(min(max(x, 0.0), w - 1.0), 2), round(min(max(y, 0.0), h - 1.0), 2)
            kps += [xc, yc, 1 if covered else 2]
            nvis += 1
        anns.append(
            {
                "keypoints": kps,
                "num_keypoints": nvis,
                "bbox": [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)],
                "area": float(area),
                # per-person labels the generator knows (not COCO fields; COCO tools ignore them): for probes
                "synth": {"pose_class": p.family, "view": view_of(p.yaw), "yaw": round(p.yaw, 1)},
            }
        )
    return img, anns


def render_to_file(task: Task) -> list[dict[str, Any]]:
    """Worker: render one image, write its JPEG atomically, return its person annotations."""
    cfg, split, index, path = task
    img, anns = render_image(cfg, split, index)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)])
    if not ok:  # pragma: no cover - cv2 always encodes uint8 BGR
        raise RuntimeError(f"JPEG encoding failed for {path}")
    atomic_write_bytes(Path(path), buf.tobytes())
    return anns
