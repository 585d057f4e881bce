"""faster-coco-eval as the third COCO backend: the same ten numbers as pycocotools on the fixtures, and never box
IoU for keypoints (its ``useSegm = None`` trap)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from poserepro.evaluation.coco import METRIC_NAMES, check_oks, evaluate_keypoints, load_coco, write_results
from poserepro.keypoints import COCO_SIGMAS

pytest.importorskip("faster_coco_eval")

ANN = "/work/shared/fixtures/coco-mini/person_keypoints_mini.json"


def _results(noise: float, seed: int = 0, drop_every: int = 0) -> list[dict]:
    """The fixture's labelled persons as predictions, keypoints jittered by ``noise`` px, random scores."""
    rng = np.random.default_rng(seed)
    res = []
    for i, ann in enumerate(json.load(open(ANN))["annotations"]):
        if ann["num_keypoints"] == 0 or (drop_every and i % drop_every == 0):
            continue
        kp = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, noise, size=(kp.shape[0], 2))
        kp[:, 2] = rng.uniform(0.2, 1.0, size=kp.shape[0])
        res.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                    "score": float(rng.uniform(0.3, 1.0))})
    return res


@pytest.mark.parametrize(("noise", "drop_every"), [(0.0, 0), (4.0, 0), (9.0, 3)])
def test_faster_coco_eval_equals_pycocotools(tmp_path, noise: float, drop_every: int) -> None:
    path = write_results(tmp_path / "res.json", _results(noise, drop_every=drop_every))
    ref = evaluate_keypoints(ANN, path, backend="pycocotools")
    fast = evaluate_keypoints(ANN, path, backend="faster-coco-eval")
    assert tuple(fast) == METRIC_NAMES
    for k in METRIC_NAMES:
        assert fast[k] == pytest.approx(ref[k], abs=1e-12), k
    if noise:
        assert 0.0 < ref["AP"] < 1.0
    # explicit sigmas are passed through (the default is COCO's)
    same = evaluate_keypoints(ANN, path, backend="faster-coco-eval", sigmas=COCO_SIGMAS)
    assert same == fast
    wide = evaluate_keypoints(ANN, path, backend="faster-coco-eval", sigmas=np.asarray(COCO_SIGMAS) * 3)
    if noise:
        assert wide["AP"] > fast["AP"]


def test_box_iou_would_give_other_numbers_and_is_refused() -> None:
    """HRNet's ``params.useSegm = None`` makes faster-coco-eval score keypoint results by box IoU: different
    numbers, which :func:`check_oks` refuses (so this test fails if our evaluator ever runs with that iouType)."""
    from faster_coco_eval import COCOeval_faster

    res = _results(9.0, seed=1)
    gt = load_coco(ANN, backend="faster-coco-eval")
    with contextlib.redirect_stdout(io.StringIO()):
        oks = COCOeval_faster(gt, gt.loadRes(res), iouType="keypoints", print_function=print)
        check_oks(oks)
        trap = COCOeval_faster(gt, gt.loadRes(res), iouType="keypoints", print_function=print)
        trap.params.useSegm = None  # the idiom of HRNet's evaluate_keypoints
    assert trap.params.iouType == "bbox"
    with pytest.raises(RuntimeError, match="OKS"):
        check_oks(trap)
    with contextlib.redirect_stdout(io.StringIO()):
        for ev in (oks, trap):
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
    assert oks.stats[0] != pytest.approx(trap.stats[0], abs=1e-3)
    ours = evaluate_keypoints(ANN, res, backend="faster-coco-eval")
    assert ours["AP"] == pytest.approx(float(oks.stats[0]), abs=1e-12)


def test_cli_eval_with_the_fast_backend(tmp_path) -> None:
    from typer.testing import CliRunner

    from poserepro.cli.main import app

    path = write_results(tmp_path / "res.json", _results(4.0))
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["eval", "--results", str(path), "--ann", ANN, "--backend", "faster-coco-eval",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["AP"] == pytest.approx(evaluate_keypoints(ANN, path)["AP"], abs=1e-12)
