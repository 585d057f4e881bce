"""``poserepro infer`` and the skeleton drawing: on the real mini fixtures (COCO with its detector boxes and with
--whole-image, MPII), on a short video written here, and on bad input; random-init smoke models (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from poserepro.cli.main import app
from poserepro.draw import draw_person, drawn_extent, line_width, palette
from poserepro.engine import build_model
from poserepro.keypoints import COCO, MPII
from poserepro.recipes import load_recipe

from .conftest import COCO_MINI, MPII_MINI

runner = CliRunner()
pytestmark = pytest.mark.skipif(not COCO_MINI.is_dir() or not MPII_MINI.is_dir(), reason="mini fixtures missing")


def invoke(*args: object):  # noqa: ANN201
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, needle: str) -> None:  # noqa: ANN001
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert needle in result.output, result.output
    assert len([ln for ln in result.output.splitlines() if ln.startswith("error:")]) == 1, result.output


@pytest.fixture(scope="module")
def smoke_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random-init TransPose-R smoke weights (COCO, 17 joints)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tp_smoke.pth"
    torch.save({"model": build_model(load_recipe("transpose-r-smoke")).state_dict()}, path)
    return path


# --- drawing ---------------------------------------------------------------------------------------------------

def test_palette_colour_per_limb_and_sides_distinct() -> None:
    for spec in (COCO, MPII):
        pal = palette(spec)
        assert len(set(pal.limbs)) == len(spec.skeleton)  # every limb its own colour
        assert {"left", "right", "centre"} <= set(pal.limb_sides)
        left = {c for c, s in zip(pal.limbs, pal.limb_sides) if s == "left"}
        right = {c for c, s in zip(pal.limbs, pal.limb_sides) if s == "right"}
        assert not left & right
        # left limbs are red-dominant, right ones blue-dominant (BGR)
        assert all(c[2] > c[0] for c in left) and all(c[0] > c[2] for c in right)
    coco = palette(COCO)
    i = COCO.skeleton.index((7, 9))  # left elbow - left wrist
    assert coco.limb_sides[i] == "left"
    assert palette(MPII).limb_sides[MPII.skeleton.index((12, 11))] == "right"  # right shoulder - elbow


def test_draw_person_pixels_on_limbs_and_not_elsewhere() -> None:
    img = np.full((200, 300, 3), 90, np.uint8)
    kp = np.zeros((17, 3))
    kp[7] = (40, 50, 0.9)   # left elbow
    kp[9] = (140, 150, 0.8)  # left wrist
    kp[5] = (250, 20, 0.1)  # left shoulder, below the threshold: neither it nor its limbs are drawn
    draw_person(img, kp, COCO, kpt_thr=0.3, kpt_scores=False)
    color = palette(COCO).limbs[COCO.skeleton.index((7, 9))]
    for t in (0.25, 0.5, 0.75):  # along the elbow-wrist line, away from the joint discs
        x, y = int(round(40 + t * 100)), int(round(50 + t * 100))
        assert tuple(int(v) for v in img[y, x]) == color
    assert (img[20, 250] == 90).all()  # the low-score joint
    assert (img[35, 145] == 90).all()  # shoulder-elbow limb midpoint: not drawn
    far = np.ones(img.shape[:2], bool)
    far[50 - 12:150 + 12, 40 - 12:140 + 12] = False
    assert (img[far] == 90).all()
    assert line_width(img.shape) == 2


# --- infer on the fixtures ---------------------------------------------------------------------------------------

def _drawn_checks(original: np.ndarray, drawn: np.ndarray, results: list[dict], thr: float, k: int,
                  skeleton: tuple) -> int:
    """Limb midpoints changed; everything outside the drawn extents unchanged. Returns the limbs checked."""
    h, w = original.shape[:2]
    checked = 0
    for r in results:
        kp = np.asarray(r["keypoints"]).reshape(k, 3)
        for a, b in skeleton:
            if kp[a, 2] > thr and kp[b, 2] > thr:
                pa, pb = np.round(kp[a, :2]), np.round(kp[b, :2])
                if np.hypot(*(pa - pb)) < 20:
                    continue
                mx, my = np.round((pa + pb) / 2).astype(int)
                if 3 <= mx < w - 3 and 3 <= my < h - 3:
                    assert (drawn[my, mx] != original[my, mx]).any(), (a, b, mx, my)
                    checked += 1
    outside = np.ones((h, w), bool)
    for r in results:
        x1, y1, x2, y2 = drawn_extent(r, k, thr, margin=60)
        outside[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = False
    assert (drawn[outside] == original[outside]).all()
    return checked


def test_infer_coco_with_boxes_draws_skeletons(tmp_path: Path, smoke_weights: Path, one_thread: None) -> None:
    out = tmp_path / "out"
    dets = COCO_MINI / "person_detections_mini.json"
    r = invoke("infer", COCO_MINI / "images", "-m", "transpose-r-smoke", "--weights", smoke_weights, "--boxes", dets,
               "--box-thr", "0.9", "--draw", "--kpt-thr", "0", "--no-kpt-scores", "--out", out)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "keypoints.json").read_text())
    boxes = [d for d in json.loads(dets.read_text()) if d["score"] >= 0.9]
    assert {x["image_id"] for x in res} == {d["image_id"] for d in boxes} == {785, 40083, 196141, 197388}
    assert all(len(x["keypoints"]) == 51 and x["category_id"] == 1 for x in res)
    assert len(res) <= len(boxes)  # one pose per box at most (OKS-NMS may merge)
    checked = 0
    for name in ("000000000785", "000000196141"):
        original = cv2.imread(str(COCO_MINI / "images" / f"{name}.jpg"))
        drawn = cv2.imread(str(out / f"{name}.png"))
        mine = [x for x in res if x["file_name"] == f"{name}.jpg"]
        for d in boxes:  # the boxes are drawn too: include them in the extents
            if d["image_id"] == int(name):
                mine.append({"keypoints": [0.0] * 51, "bbox": d["bbox"]})
        checked += _drawn_checks(original, drawn, mine, 0.0, 17, COCO.skeleton)
    assert checked > 5
    assert "persons" in r.output and "skipped" not in r.output


def test_infer_whole_image_mpii_and_partial_boxes(tmp_path: Path, one_thread: None) -> None:
    torch.manual_seed(1)
    rec_args = ["--set", "data.dataset=mpii", "--set", "data.num_joints=16"]
    w = tmp_path / "mpii.pth"
    from poserepro.recipes import apply_overrides, recipe_from_dict

    base = load_recipe("transpose-r-smoke")
    rec = recipe_from_dict(apply_overrides(base.to_dict(), ["data.dataset=mpii", "data.num_joints=16"]), base.name)
    torch.save({"model": build_model(rec).state_dict()}, w)
    img = MPII_MINI / "images" / "005808361.jpg"
    out = tmp_path / "mpii"
    r = invoke("infer", img, "-m", "transpose-r-smoke", "--weights", w, *rec_args, "--whole-image", "--draw",
               "--kpt-thr", "0", "--out", out)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "keypoints.json").read_text())
    assert len(res) == 1 and len(res[0]["keypoints"]) == 48 and res[0]["image_id"] == 5808361
    original, drawn = cv2.imread(str(img)), cv2.imread(str(out / "005808361.png"))
    assert _drawn_checks(original, drawn, res, 0.0, 16, MPII.skeleton) > 3

    # boxes for one of two images: the other is named as skipped
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps([{"image_id": 5808361, "category_id": 1, "bbox": [700, 50, 500, 700], "score": 1}]))
    r = invoke("infer", img, MPII_MINI / "images" / "004645041.jpg", "-m", "transpose-r-smoke", "--weights", w,
               *rec_args, "--boxes", boxes, "--out", tmp_path / "mpii2")
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "004645041.jpg" in r.output and "no person box" in r.output
    assert len(json.loads((tmp_path / "mpii2" / "keypoints.json").read_text())) == 1


def test_infer_annotation_file_as_boxes(tmp_path: Path, smoke_weights: Path, one_thread: None) -> None:
    """A COCO annotation file names its images: ids come from it even for files without a number."""
    src = COCO_MINI / "images" / "000000040083.jpg"
    renamed = tmp_path / "in" / "000000040083.jpg"
    renamed.parent.mkdir()
    renamed.write_bytes(src.read_bytes())
    r = invoke("infer", renamed.parent, "-m", "transpose-r-smoke", "--weights", smoke_weights, "--boxes",
               COCO_MINI / "person_keypoints_mini.json", "--no-flip", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "o" / "keypoints.json").read_text())
    ann = json.loads((COCO_MINI / "person_keypoints_mini.json").read_text())
    n = sum(1 for a in ann["annotations"] if a["image_id"] == 40083 and not a.get("iscrowd"))
    assert res and {x["image_id"] for x in res} == {40083} and len(res) <= n


def test_infer_video(tmp_path: Path, smoke_weights: Path, one_thread: None) -> None:
    frame = cv2.resize(cv2.imread(str(COCO_MINI / "images" / "000000000785.jpg")), (160, 112))
    video = tmp_path / "clip.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 112))
    assert vw.isOpened()
    for i in range(5):
        vw.write(np.roll(frame, 4 * i, axis=1))
    vw.release()
    out = tmp_path / "v"
    r = invoke("infer", video, "-m", "transpose-r-smoke", "--weights", smoke_weights, "--whole-image", "--draw",
               "--kpt-thr", "0", "--out", out)
    assert r.exit_code == 0, r.output
    res = json.loads((out / "clip.keypoints.json").read_text())
    assert [x["frame"] for x in res] == [0, 1, 2, 3, 4] and all(x["file_name"] == "clip.mp4" for x in res)
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    assert len(frames) == 5 and frames[0].shape == (112, 160, 3)
    src = cv2.VideoCapture(str(video))
    ok, f0 = src.read()
    src.release()
    assert ok and np.abs(frames[0].astype(int) - f0.astype(int)).max() > 100  # skeleton drawn (not codec noise)


def test_infer_end_to_end_prtr_needs_no_boxes(tmp_path: Path, one_thread: None) -> None:
    torch.manual_seed(0)
    w = tmp_path / "e2e.pth"
    torch.save({"model": build_model(load_recipe("prtr-e2e-smoke")).state_dict()}, w)
    r = invoke("infer", COCO_MINI / "images" / "000000000785.jpg", COCO_MINI / "images" / "000000040083.jpg",
               "-m", "prtr-e2e-smoke", "--weights", w, "--draw", "--out", tmp_path / "e")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "e" / "keypoints.json").read_text())
    assert res and {x["image_id"] for x in res} == {785, 40083} and all(len(x["keypoints"]) == 51 for x in res)
    assert (tmp_path / "e" / "000000000785.png").is_file()


# --- bad input ---------------------------------------------------------------------------------------------------

def test_bad_inputs_are_skipped_and_said(tmp_path: Path, smoke_weights: Path, one_thread: None) -> None:
    folder = tmp_path / "mix"
    folder.mkdir()
    (folder / "000000000785.jpg").write_bytes((COCO_MINI / "images" / "000000000785.jpg").read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    (folder / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage")
    r = invoke("infer", folder, tmp_path / "missing.png", "-m", "transpose-r-smoke", "--weights", smoke_weights,
               "--whole-image", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    out = r.output.replace("\n", " ")
    assert "skipped" in out and "broken.jpg" in out and "cannot decode" in out
    assert "bad.mp4" in out and "cannot open this video" in out
    assert "missing.png" in out and "3 input(s) skipped" in out
    assert len(json.loads((tmp_path / "o" / "keypoints.json").read_text())) == 1


def test_bad_inputs_one_line_errors(tmp_path: Path, smoke_weights: Path, one_thread: None) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["-m", "transpose-r-smoke", "--weights", smoke_weights, "--out", tmp_path / "o"]
    one_line_error(invoke("infer", empty, *base, "--whole-image"), "folder holds no images")
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 1}]))
    img = COCO_MINI / "images" / "000000000785.jpg"
    one_line_error(invoke("infer", img, *base, "--boxes", other), "is it for other images?")
    one_line_error(invoke("infer", img, *base), "needs person boxes")
    one_line_error(invoke("infer", img, *base, "--whole-image", "--boxes", COCO_MINI / "person_detections_mini.json"),
                   "not both")
    bad = tmp_path / "bad.json"
    bad.write_text("{\"x\": 1}")
    one_line_error(invoke("infer", img, *base, "--boxes", bad), "neither a detection list")


# --- boxes from a detector model ------------------------------------------------------------------------------------

class _BoxModel(torch.nn.Module):
    """A stand-in person detector: one box in the middle of each image (score 0.9) and a weak one (0.2)."""

    output_type = "test-infer-box-detector"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _box_family() -> None:
    from poserepro.families import Predictions, register_family
    from poserepro.families.base import _FAMILIES
    from poserepro.families.whole_image import WholeImageFamily

    if _BoxModel.output_type in _FAMILIES:
        return

    @register_family
    class BoxFamily(WholeImageFamily):  # whole images in (the real whole-image data path), boxes out
        output_types = (_BoxModel.output_type,)

        def predict(self, model, loader, recipe, flip, device, progress=None):  # noqa: ANN001, ANN201
            out = []
            for batch in loader:
                for i, (w, h) in zip(batch["image_id"], batch["orig_size"].tolist()):
                    out.append({"image_id": int(i), "category_id": 1, "bbox": [w / 4, h / 10, w / 2, h * 0.8],
                                "score": 0.9})
                    out.append({"image_id": int(i), "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.2})
            return Predictions(out)


def test_infer_with_a_detector_model(tmp_path: Path, smoke_weights: Path, one_thread: None) -> None:
    from poserepro.infer import InferOptions, discover, run_inference
    from poserepro.weights.state import load_model_weights

    _box_family()
    rec = load_recipe("transpose-r-smoke")
    model = build_model(rec)
    load_model_weights(model, smoke_weights)
    src = discover([COCO_MINI / "images" / "000000000785.jpg", COCO_MINI / "images" / "000000040083.jpg"])
    opts = InferOptions(detector=(_BoxModel(), load_recipe("prtr-e2e-smoke")), det_thr=0.5, draw=True, kpt_thr=0.0)
    summary = run_inference(model.eval(), rec, src, tmp_path, opts, torch.device("cpu"))
    res = json.loads((tmp_path / "keypoints.json").read_text())
    assert sorted(x["image_id"] for x in res) == [785, 40083]  # one box each above --det-thr
    assert not summary.skipped
    drawn = cv2.imread(str(tmp_path / "000000000785.png"))
    original = cv2.imread(str(COCO_MINI / "images" / "000000000785.jpg"))
    x, y = int(round(640 / 4)), int(round(425 / 10 + 425 * 0.4))  # left edge of the detector's box
    assert (drawn[y, x] != original[y, x]).any()
    opts = InferOptions(detector=(_BoxModel(), load_recipe("prtr-e2e-smoke")), det_thr=0.95)
    summary = run_inference(model.eval(), rec, src, tmp_path / "b", opts, torch.device("cpu"))
    assert len(summary.skipped) == 2 and "the detector found no person" in summary.skipped[0].reason


@pytest.mark.parametrize("recipe", ["btranspose-smoke", "simplebaseline-smoke", "tfpose-smoke", "prtr-smoke"])
def test_infer_every_top_down_family(recipe: str, tmp_path: Path, one_thread: None) -> None:
    torch.manual_seed(0)
    w = tmp_path / "w.pth"
    torch.save({"model": build_model(load_recipe(recipe)).state_dict()}, w)
    img = COCO_MINI / "images" / "000000040083.jpg"
    r = invoke("infer", img, "-m", recipe, "--weights", w, "--whole-image", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "o" / "keypoints.json").read_text())
    assert len(res) == 1 and res[0]["image_id"] == 40083 and len(res[0]["keypoints"]) == 51
    kp = np.asarray(res[0]["keypoints"]).reshape(17, 3)
    assert np.isfinite(kp).all()


def test_official_weights_pick_their_recipe() -> None:
    from poserepro.cli.infer import recipe_for_weights

    assert recipe_for_weights("official:tp_r_256x192_enc4_d256_h1024_mh8") == "transpose-r-a4"
    assert recipe_for_weights("official:tp_h_48_256x192_enc6_d96_h192_mh1") == "transpose-h-a6"


def test_infer_cli_with_prtr_detector(tmp_path: Path, smoke_weights: Path, one_thread: None) -> None:
    """--detector with PRTR's DETR person detector (registered by the PRTR detector work, issue 16)."""
    from poserepro.models.registry import list_models

    if "prtr_detector_smoke" not in list_models():
        pytest.skip("prtr_detector_smoke is not registered in this tree (PRTR person detector, issue 16)")
    torch.manual_seed(0)
    w = tmp_path / "det.pth"
    torch.save({"model": build_model(load_recipe("prtr-detector-smoke")).state_dict()}, w)
    r = invoke("infer", COCO_MINI / "images" / "000000000785.jpg", "-m", "transpose-r-smoke", "--weights",
               smoke_weights, "--detector", "prtr-detector-smoke", "--detector-weights", w, "--det-thr", "0",
               "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "o" / "keypoints.json").read_text())
    assert res and {x["image_id"] for x in res} == {785}


def test_same_file_name_in_two_folders(tmp_path: Path, smoke_weights: Path, one_thread: None) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "me.jpg").write_bytes((COCO_MINI / "images" / "000000000785.jpg").read_bytes())
    r = invoke("infer", tmp_path / "a", tmp_path / "b", "-m", "transpose-r-smoke", "--weights", smoke_weights,
               "--whole-image", "--draw", "--no-flip", "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "o" / "keypoints.json").read_text())
    assert sorted(x["image_id"] for x in res) == [1, 2]  # not numbered names: positions
    assert (tmp_path / "o" / "me.png").is_file() and (tmp_path / "o" / "me_2.png").is_file()
