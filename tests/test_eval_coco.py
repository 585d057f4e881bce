"""COCO keypoint evaluation, rescoring, OKS-NMS and results files on the real mini fixture."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from poserepro.errors import DataError
from poserepro.evaluation.coco import METRIC_NAMES, evaluate_keypoints, evaluate_person_boxes, load_coco, write_results
from poserepro.evaluation.postprocess import oks_iou, oks_nms, rescore_and_nms
from poserepro.keypoints import COCO_SIGMAS

ANN = "/work/shared/fixtures/coco-mini/person_keypoints_mini.json"


def _gt_results():
    gt = json.load(open(ANN))
    res = []
    for ann in gt["annotations"]:
        if ann["num_keypoints"] == 0:
            continue
        kp = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[:, 2] = 1.0
        res.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                    "score": 1.0})
    return res


def test_xtcocotools_cocoeval_imports_under_numpy2():
    """The from-source xtcocotools build must import with numpy 2 (the cp311 wheel does not)."""
    import xtcocotools.cocoeval  # noqa: F401

    assert int(np.__version__.split(".")[0]) >= 2


@pytest.mark.parametrize("backend", ["pycocotools", "xtcocotools"])
def test_gt_as_predictions_gives_ap_1(backend):
    res = _gt_results()
    before = copy.deepcopy(res)
    m = evaluate_keypoints(ANN, res, backend=backend)
    assert tuple(m) == METRIC_NAMES
    assert m["AP"] == pytest.approx(1.0) and m["AR"] == pytest.approx(1.0)
    assert res == before  # inputs are not modified by loadRes


def test_backends_agree_and_perturbation_lowers_ap(tmp_path):
    rng = np.random.default_rng(0)
    res = _gt_results()
    for r in res:
        kp = np.array(r["keypoints"]).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, 6.0, size=(kp.shape[0], 2))
        r["keypoints"] = kp.reshape(-1).tolist()
    path = write_results(tmp_path / "res.json", res)
    a = evaluate_keypoints(ANN, path, backend="pycocotools")
    b = evaluate_keypoints(ANN, path, backend="xtcocotools", sigmas=COCO_SIGMAS)
    assert 0.0 < a["AP"] < 1.0
    for k in METRIC_NAMES:
        assert a[k] == pytest.approx(b[k], abs=1e-12)


def test_results_validation_errors(tmp_path):
    res = _gt_results()
    bad = copy.deepcopy(res)
    bad[0]["keypoints"] = bad[0]["keypoints"][:48]
    with pytest.raises(DataError, match="results have 16 keypoints per person but the annotation file has 17"):
        evaluate_keypoints(ANN, bad)
    bad = copy.deepcopy(res)
    del bad[1]["score"]
    with pytest.raises(DataError, match="lacks key"):
        evaluate_keypoints(ANN, bad)
    bad = copy.deepcopy(res)
    bad[0]["image_id"] = 123456789
    with pytest.raises(DataError, match="not in the annotation file"):
        evaluate_keypoints(ANN, bad)
    bad = copy.deepcopy(res)
    bad[0]["keypoints"][0] = float("nan")
    with pytest.raises(DataError, match="non-finite"):
        evaluate_keypoints(ANN, bad)
    with pytest.raises(DataError, match="not found"):
        evaluate_keypoints(tmp_path / "missing.json", res)
    p = tmp_path / "r.json"
    p.write_text("[{")
    with pytest.raises(DataError, match="not valid JSON"):
        evaluate_keypoints(ANN, p)
    p.write_text(json.dumps({"image_id": 1}))
    with pytest.raises(DataError, match="must be a JSON list"):
        evaluate_keypoints(ANN, p)


def test_load_coco_errors(tmp_path):
    coco = load_coco(ANN)
    assert len(coco.getImgIds()) == 4
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(DataError, match="'annotations'"):
        load_coco(p)
    p.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    with pytest.raises(DataError, match="keypoints"):
        load_coco(p)


@pytest.mark.parametrize("backend", ["pycocotools", "xtcocotools"])
def test_empty_results_give_zero(backend):
    m = evaluate_keypoints(ANN, [], backend=backend)
    assert m == dict.fromkeys(METRIC_NAMES, 0.0)


def test_written_results_have_no_bbox(tmp_path):
    res = _gt_results()
    res[0]["bbox"] = [0, 0, 10, 10]
    res[0]["keypoints"] = np.array(res[0]["keypoints"], dtype=np.float32)
    res[0]["score"] = np.float32(0.5)
    p = write_results(tmp_path / "sub" / "results.json", res)
    data = json.loads(p.read_text())
    assert len(data) == len(res) and all("bbox" not in r for r in data)
    assert isinstance(data[0]["keypoints"], list) and len(data[0]["keypoints"]) == 51
    assert [x.name for x in p.parent.iterdir()] == ["results.json"]  # no temp file left behind


def _pose(x0, y0, score=1.0):
    kp = np.zeros((17, 3))
    kp[:, 0] = x0 + np.arange(17) * 5.0
    kp[:, 1] = y0 + np.arange(17) * 7.0
    kp[:, 2] = score
    return kp


def test_oks_iou_and_nms():
    a = _pose(100, 100)
    near = a.copy()
    near[:, :2] += 0.5
    far = _pose(400, 100)
    ious = oks_iou(a, np.stack([a, near, far]), 10000.0, np.full(3, 10000.0), COCO_SIGMAS, None)
    assert ious[0] == pytest.approx(1.0) and 0.9 < ious[1] < 1.0 and ious[2] < 1e-6
    # the in_vis_thre mask keeps only joints confident in both poses
    b = near.copy()
    b[:5, 2] = 0.0
    masked = oks_iou(a, b[None], 10000.0, np.array([10000.0]), COCO_SIGMAS, 0.2)
    assert masked[0] == pytest.approx(oks_iou(a[5:], b[None, 5:], 1e4, np.array([1e4]), COCO_SIGMAS[5:])[0])

    db = [
        {"keypoints": near, "score": 0.8, "area": 10000.0},
        {"keypoints": a, "score": 0.9, "area": 10000.0},
        {"keypoints": far, "score": 0.7, "scale": np.array([0.5, 0.5])},
    ]
    assert oks_nms(db, 0.9, COCO_SIGMAS) == [1, 2]


def test_rescore_formula_and_nms():
    preds = np.stack([_pose(100, 100, 0.5), _pose(100.5, 100.5, 0.5), _pose(400, 100, 0.1)])
    preds[0, :4, 2] = 0.9  # mean of scores > 0.2 is (4 * 0.9 + 13 * 0.5) / 17
    centers = np.zeros((3, 2))
    scales = np.full((3, 2), 0.5)
    out = rescore_and_nms(preds, centers, scales, np.array([0.8, 0.9, 1.0]), [7, 7, 7], nms=False)
    assert out[0]["score"] == pytest.approx(0.8 * (4 * 0.9 + 13 * 0.5) / 17)
    assert out[1]["score"] == pytest.approx(0.9 * 0.5)
    assert out[2]["score"] == 0.0  # no joint above 0.2
    out = rescore_and_nms(preds, centers, scales, np.array([0.8, 0.9, 1.0]), [7, 7, 7])
    assert len(out) == 2  # the near-duplicate is suppressed, the distinct person is kept
    assert out[0]["score"] == pytest.approx(0.8 * (4 * 0.9 + 13 * 0.5) / 17)
    assert out[1]["score"] == 0.0
    r = out[0]
    assert set(r) == {"image_id", "category_id", "keypoints", "score"}
    assert r["category_id"] == 1 and r["image_id"] == 7 and len(r["keypoints"]) == 51
    assert all(type(v) is float for v in r["keypoints"])


def test_rescore_without_sigmas_and_empty():
    preds = np.stack([_pose(0, 0, 0.5)[:16], _pose(0.1, 0, 0.5)[:16]])
    out = rescore_and_nms(preds, np.zeros((2, 2)), np.ones((2, 2)), np.ones(2), [1, 1], sigmas=None)
    assert len(out) == 2  # 16 joints (MPII) and no sigmas: rescoring only
    assert rescore_and_nms(np.zeros((0,)), np.zeros((0,)), np.zeros((0,)), np.zeros((0,)), np.zeros((0,))) == []


def test_person_box_ap_of_gt_boxes_is_1_and_shifted_boxes_lower_it():
    gt = json.load(open(ANN))
    boxes = [{"image_id": a["image_id"], "category_id": 1, "bbox": list(a["bbox"]), "score": 1.0}
             for a in gt["annotations"] if not a.get("iscrowd", 0)]
    assert evaluate_person_boxes(ANN, boxes)["AP"] == pytest.approx(1.0)
    shifted = [{**b, "bbox": [b["bbox"][0] + 0.3 * b["bbox"][2], *b["bbox"][1:]]} for b in boxes]  # IoU 0.54
    m = evaluate_person_boxes(ANN, shifted)
    assert m["AP50"] == pytest.approx(1.0) and m["AP75"] == pytest.approx(0.0) and 0.0 < m["AP"] < 0.2
    assert evaluate_person_boxes(ANN, []) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
