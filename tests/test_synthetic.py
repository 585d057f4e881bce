"""Tests of the embedded procedural synthetic benchmark (``poserepro.data.synthetic``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from poserepro.data.synthetic import (
    FLIP_PAIRS,
    KEYPOINT_NAMES,
    SKELETON,
    VAL_ID_OFFSET,
    SynthConfig,
    SynthSummary,
    synthesize,
)
from poserepro.errors import DataError

TINY = SynthConfig(num_train=12, num_val=6, seed=3)
# default difficulty, 40 images (occlusion / truncation / left-right statistics)
MEDIUM = SynthConfig(num_train=30, num_val=10, seed=11)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return synthesize(tmp_path_factory.mktemp("tiny"), TINY, workers=2)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return synthesize(tmp_path_factory.mktemp("medium"), MEDIUM, workers=1)


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _kps(ann: dict) -> np.ndarray:
    return np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_layout_and_pycocotools(tiny: SynthSummary) -> None:
    root = tiny.root
    assert tiny.num_images == {"train": 12, "val": 6}
    assert tiny.ann_files["val"] == root / "annotations" / "person_keypoints_val.json"
    assert tiny.det_file == root / "detections" / "person_detections_val.json"
    assert json.loads((root / "synth_config.json").read_text())["num_train"] == 12
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    for split in ("train", "val"):
        coco = COCO(str(tiny.ann_files[split]))
        assert len(coco.getImgIds()) == tiny.num_images[split]
        assert len(coco.getAnnIds()) == tiny.num_persons[split] > 0
        cat = coco.loadCats(1)[0]
        assert cat["name"] == "person" and cat["keypoints"] == list(KEYPOINT_NAMES)
        assert cat["skeleton"] == [list(p) for p in SKELETON]
        first = 1 if split == "train" else VAL_ID_OFFSET + 1
        assert min(coco.getImgIds()) == first and min(coco.getAnnIds()) == first
        for img in coco.loadImgs(coco.getImgIds()):
            assert img["file_name"] == f"{img['id']:012d}.jpg"
            pix = cv2.imread(str(tiny.image_dirs[split] / img["file_name"]))
            assert pix is not None and pix.shape == (img["height"], img["width"], 3) == (256, 256, 3)


def test_keypoint_names_and_flip_pairs() -> None:
    assert len(KEYPOINT_NAMES) == 17 and KEYPOINT_NAMES[0] == "nose"
    for a, b in FLIP_PAIRS:
        assert KEYPOINT_NAMES[a].replace("left_", "") == KEYPOINT_NAMES[b].replace("right_", "")


def test_annotation_invariants(tiny: SynthSummary) -> None:
    for split in ("train", "val"):
        data = _load(tiny.ann_files[split])
        sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
        assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
        for ann in data["annotations"]:
            assert ann["category_id"] == 1 and ann["iscrowd"] == 0 and ann["segmentation"] == []
            assert len(ann["keypoints"]) == 51
            k = _kps(ann)
            v = k[:, 2]
            assert set(np.unique(v)) <= {0.0, 1.0, 2.0}
            assert ann["num_keypoints"] == int((v > 0).sum())
            assert np.all(k[v == 0, :2] == 0)
            w, h = sizes[ann["image_id"]]
            x, y, bw, bh = ann["bbox"]
            assert ann["area"] > 0 and bw > 0 and bh > 0
            assert ann["area"] <= bw * bh
            assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
            lab = k[v > 0]
            assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= w - 1) & (lab[:, 1] >= 0) & (lab[:, 1] <= h - 1))
            vis = k[v == 2]
            assert np.all((vis[:, 0] >= x - 1) & (vis[:, 0] <= x + bw + 1))
            assert np.all((vis[:, 1] >= y - 1) & (vis[:, 1] <= y + bh + 1))


def test_deterministic_and_independent_of_workers(tiny: SynthSummary, tmp_path: Path) -> None:
    again = synthesize(tmp_path / "again", TINY, workers=1)
    for split in ("train", "val"):
        assert again.ann_files[split].read_bytes() == tiny.ann_files[split].read_bytes()
        for img in sorted(tiny.image_dirs[split].iterdir()):
            assert (again.image_dirs[split] / img.name).read_bytes() == img.read_bytes()
    assert again.det_file.read_bytes() == tiny.det_file.read_bytes()

    other = synthesize(tmp_path / "other", replace(TINY, seed=4), workers=1)
    assert other.ann_files["train"].read_bytes() != tiny.ann_files["train"].read_bytes()
    assert other.det_file.read_bytes() != tiny.det_file.read_bytes()


def test_left_right_distinguishable(medium: SynthSummary) -> None:
    """Left limbs are warm (red > blue), right limbs cool (blue > red).

    Samples the middle of forearms / shins whose two end keypoints are visible.
    """
    warmth: dict[str, list[float]] = {"left": [], "right": []}
    for split in ("train", "val"):
        data = _load(medium.ann_files[split])
        files = {im["id"]: im["file_name"] for im in data["images"]}
        for ann in data["annotations"]:
            pix = cv2.imread(str(medium.image_dirs[split] / files[ann["image_id"]])).astype(np.float64)
            k = _kps(ann)
            for side, segs in (("left", ((7, 9), (13, 15))), ("right", ((8, 10), (14, 16)))):
                for a, b in segs:
                    if k[a, 2] == 2 and k[b, 2] == 2:
                        mx, my = np.round((k[a, :2] + k[b, :2]) / 2).astype(int)
                        patch = pix[max(my - 1, 0) : my + 2, max(mx - 1, 0) : mx + 2].reshape(-1, 3)
                        b_, _, r_ = patch.mean(axis=0)
                        warmth[side].append(r_ - b_)
    left, right = np.asarray(warmth["left"]), np.asarray(warmth["right"])
    assert len(left) > 20 and len(right) > 20
    assert left.mean() - right.mean() > 60
    assert (left > 0).mean() > 0.75 and (right < 0).mean() > 0.75


def test_occlusion_and_truncation_happen(medium: SynthSummary) -> None:
    v = np.concatenate(
        [
            _kps(a)[:, 2]
            for split in ("train", "val")
            for a in _load(medium.ann_files[split])["annotations"]
        ]
    )
    assert (v == 1).sum() > 10
    assert (v == 0).sum() > 5
    assert (v == 2).mean() > 0.4


def test_detections(medium: SynthSummary) -> None:
    dets = _load(medium.det_file)
    gt = _load(medium.ann_files["val"])
    val_ids = {im["id"] for im in gt["images"]}
    assert dets and all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in dets)
    assert all(d["image_id"] in val_ids and d["category_id"] == 1 for d in dets)
    assert all(0.0 <= d["score"] <= 1.0 and d["bbox"][2] > 0 and d["bbox"][3] > 0 for d in dets)
    by_img: dict[int, list[dict]] = {}
    for d in dets:
        by_img.setdefault(d["image_id"], []).append(d)
    gt_by_img: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        gt_by_img.setdefault(a["image_id"], []).append(a)
    false_pos = [
        d for d in dets if all(_iou(d["bbox"], a["bbox"]) < 0.3 for a in gt_by_img.get(d["image_id"], []))
    ]
    assert false_pos and np.mean([d["score"] < 0.5 for d in false_pos]) > 0.5
    best = [max((_iou(d["bbox"], a["bbox"]) for d in by_img.get(a["image_id"], [])), default=0.0)
            for a in gt["annotations"]]  # fmt: skip
    assert np.mean(np.asarray(best) > 0.6) > 0.75


def test_progress_and_config_file(tmp_path: Path) -> None:
    cfg = SynthConfig(num_train=3, num_val=2, seed=5, image_size=(96, 128), persons_per_image=(2, 2))
    calls: list[tuple[int, int]] = []
    out = synthesize(tmp_path / "p", cfg, workers=1, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 5) for i in range(1, 6)]
    saved = json.loads((out.root / "synth_config.json").read_text())
    assert {k: saved[k] for k in asdict(cfg)} == json.loads(json.dumps(asdict(cfg)))
    data = _load(out.ann_files["train"])
    assert all((im["width"], im["height"]) == (96, 128) for im in data["images"])


@pytest.mark.parametrize(
    "bad",
    [
        {"num_val": 0},
        {"num_train": -1},
        {"persons_per_image": (3, 1)},
        {"persons_per_image": (0, 2)},
        {"min_person_height": 0.9, "max_person_height": 0.5},
        {"clutter": 1.5},
        {"occlusion": -0.1},
        {"pose": 1.2},
        {"image_size": (8, 8)},
        {"jpeg_quality": 0},
    ],
)
def test_bad_config_raises(bad: dict, tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        synthesize(tmp_path / "x", replace(TINY, **bad))
    assert "\n" not in str(err.value)


def test_bad_arguments_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        synthesize(tmp_path / "x", TINY, workers=0)
    with pytest.raises(DataError):
        synthesize(tmp_path / "x", {"num_train": 3})  # type: ignore[arg-type]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DataError, match="writable"):
        synthesize(blocker / "sub", TINY)


def test_worker_write_failure_is_a_data_error(tmp_path: Path) -> None:
    """An OSError inside a worker process (here: a file where the image folder should be) comes back as a
    one-line DataError."""
    from poserepro.data.synthetic import _run_workers

    (tmp_path / "blocked").write_text("not a folder")
    tasks = [(TINY, "train", i, str(tmp_path / "blocked" / f"{i}.jpg")) for i in range(4)]
    with pytest.raises(DataError, match="blocked") as err:
        list(_run_workers(tasks, 2))
    assert "\n" not in str(err.value)


def test_unguarded_script_with_workers(tmp_path: Path) -> None:
    """A script without a ``__main__`` guard may use worker processes (they never re-run it), and its files are
    byte-identical to an in-process run."""
    cfg = SynthConfig(num_train=12, num_val=4, seed=5, image_size=(64, 64))
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from poserepro.data.synthetic import SynthConfig, synthesize\n"
        f"synthesize({str(tmp_path / 'two')!r}, SynthConfig(num_train=12, num_val=4, seed=5, image_size=(64, 64)),"
        " workers=2)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    subprocess.run([sys.executable, str(script)], check=True, env=env, timeout=300)
    synthesize(tmp_path / "one", cfg, workers=1)
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*") if p.is_file())
    assert one == two and len(one) == 12 + 4 + 4  # images, two keypoint files, detections, config
    for rel in one:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


def test_pose_knob_moves_viewpoints(tmp_path: Path) -> None:
    """``pose`` 0 = near-frontal upright people (the nose is seen), 1 = many side / back views and rolled people."""

    def nose_seen(pose: float) -> float:
        s = synthesize(tmp_path / f"p{pose}", replace(TINY, num_train=30, num_val=1, pose=pose), workers=1)
        kps = [_kps(a) for a in _load(s.ann_files["train"])["annotations"]]
        return float(np.mean([k[0, 2] == 2 for k in kps if k[0, 2] > 0]))

    assert nose_seen(0.0) > nose_seen(1.0) + 0.2
