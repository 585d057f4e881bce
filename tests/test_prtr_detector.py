"""PRTR's person detector (paper §4.1) and the new PRTR models: parameter counts against the official DETR /
torchvision layouts, the DETR set criterion on hand-computed cases, DETR's post-processing, padding masks and
DETR's augmentation, the skip of persons without keypoints, and `poserepro detect` writing a box file that the
two-stage models read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from poserepro.losses.set_criterion import DetectionSetCriterion
from poserepro.models.layers.position import sine_embedding
from poserepro.models.person_detr import box_results, masked_sine_embedding
from poserepro.models.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

MANIFESTS = Path("/work/shared/fixtures/official-state-dict-keys")


def _manifest(stem: str) -> dict[str, list[int]]:
    spec = json.loads((MANIFESTS / f"{stem}.keys.json").read_text())
    return spec["keys"]


def _numel(shape: list[int]) -> int:
    return math.prod(shape) if shape else 1


def _frozen_bn_buffer(key: str) -> bool:
    """torchvision / DETR ResNet BatchNorm tensors (FrozenBatchNorm2d buffers in DETR and PRTR)."""
    parts = key.split(".")
    return any(p.startswith("bn") for p in parts) or ".downsample.1." in key


# ------------------------------------------------------------------------------------------------ counts
@pytest.mark.skipif(not MANIFESTS.is_dir(), reason="official key manifests not available")
@pytest.mark.parametrize("depth,stem", [(50, "detr-r50-e632da11"), pytest.param(101, "detr-r101-2c7b67e5",
                                                                              marks=pytest.mark.slow)])
def test_detector_parameter_count_is_detrs_with_two_classes(depth, stem):
    """DETR's own count (its tensors less the FrozenBN buffers) with ``class_embed`` cut from 92 rows to 2."""
    keys = _manifest(stem)
    official = sum(_numel(s) for k, s in keys.items() if not (k.startswith("backbone.") and _frozen_bn_buffer(k)))
    ours = sum(p.numel() for p in create_model(f"prtr_detector_r{depth}").parameters())
    assert ours == official - (92 - 2) * (256 + 1)
    assert ours == {50: 41_501_638, 101: 60_441_542}[depth]


@pytest.mark.skipif(not MANIFESTS.is_dir(), reason="official key manifests not available")
def test_prtr_r152_is_prtr_r101_plus_resnet152s_extra_blocks():
    """No official PRTR-R152 layout is published (only its MPII checkpoints): the count is PRTR-R101's official
    60,445,140 plus what torchvision's ResNet-152 adds to ResNet-101 (BatchNorm frozen as in PRTR)."""
    def conv_params(stem: str) -> int:
        return sum(_numel(s) for k, s in _manifest(stem).items() if not _frozen_bn_buffer(k) and not k.startswith("fc"))

    extra = conv_params("resnet152-b121ed2d") - conv_params("resnet101-5d3b4d8f")
    ours = sum(p.numel() for p in create_model("prtr_r152").parameters())
    assert ours == 60_445_140 + extra == 76_042_708


@pytest.mark.slow
@pytest.mark.skipif(not MANIFESTS.is_dir(), reason="official key manifests not available")
def test_e2e_hrnet_w48_count_and_backbone_equal_to_the_classifier_layout():
    """No official end-to-end code exists: the count (100,645,210) is of our module; its backbone equals the
    HRNet-W48 ImageNet classifier's conv1..stage4 tensors (less BatchNorm statistics), by name and shape."""
    m = create_model("prtr_e2e_hrnet_w48")
    keys = _manifest("hrnetv2_w48_imagenet_pretrained")
    body = {"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3",
            "transition3", "stage4"}
    cls = {k: s for k, s in keys.items() if k.split(".")[0] in body and not k.endswith(
        ("running_mean", "running_var", "num_batches_tracked"))}
    ours = {k.removeprefix("backbone."): list(p.shape) for k, p in m.named_parameters() if k.startswith("backbone.")}
    assert ours == cls
    assert sum(p.numel() for p in m.parameters()) == 100_645_210


#: fvcore GFLOPs (poserepro.bench.flops.flops_fvcore: 1 multiply-add = 1, PRTR's convention) of our modules at
#: batch 1 — no official code counts these. DETR's paper gives 86 GFLOPs for DETR-R50 as an average over COCO val
#: images (a different counter): ours at 1066x800 (a 640x480 image at DETR's test scale) is 81.25, 6 % below.
FLOPS = {
    "prtr_detector_smoke": ((128, 128), 0.464862),
    "prtr_detector_r50": ((800, 1066), 81.247360),
    "prtr_r152": ((384, 384), 36.241883),
    "prtr_e2e_hrnet_w48": ((800, 800), 253.836864),  # eval graph: 20 person crops through the keypoint Transformer
}


@pytest.mark.parametrize("name", [
    "prtr_detector_smoke", pytest.param("prtr_detector_r50", marks=pytest.mark.slow),
    pytest.param("prtr_r152", marks=pytest.mark.slow), pytest.param("prtr_e2e_hrnet_w48", marks=pytest.mark.slow)])
def test_gflops_pinned(name):
    from poserepro.bench.flops import flops_fvcore

    (h, w), gflops = FLOPS[name]
    torch.manual_seed(0)
    assert flops_fvcore(create_model(name).eval(), torch.randn(1, 3, h, w)) / 1e9 == pytest.approx(gflops, abs=1e-5)


# ------------------------------------------------------------------------------------------------ criterion
def _outputs(logits, boxes, aux=None):
    out = {"pred_logits": torch.tensor([logits], dtype=torch.float32),
           "pred_boxes": torch.tensor([boxes], dtype=torch.float32)}
    out["aux_outputs"] = aux or []
    return out


def test_set_criterion_hand_computed():
    """1 person, 2 queries: query 0 (p = σ(2)) predicts the box 0.1 to the right, query 1 a distant box."""
    crit = DetectionSetCriterion(1, eos_coef=0.1)
    tgt = [{"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}]
    out = _outputs([[2.0, 0.0], [0.0, 2.0]], [[0.6, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]])
    (q, t), = crit.match(out, tgt)
    assert q.tolist() == [0] and t.tolist() == [0]
    total, parts = crit(out, tgt)
    nll = math.log(1 + math.exp(-2))  # both queries: -log softmax of their target class (person / no-object)
    assert parts["loss_ce"].item() == pytest.approx(nll, rel=1e-5)  # weighted mean (1·nll + 0.1·nll) / 1.1
    assert parts["loss_bbox"].item() == pytest.approx(0.1, rel=1e-5)
    # IoU 0.02 / 0.06 = 1/3, hull 0.06 = union: GIoU 1/3
    assert parts["loss_giou"].item() == pytest.approx(2 / 3, rel=1e-5)
    assert total.item() == pytest.approx(nll + 5 * 0.1 + 2 * 2 / 3, rel=1e-5)


def test_set_criterion_rematches_the_auxiliary_layers():
    crit = DetectionSetCriterion(1)
    tgt = [{"boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}]
    aux = _outputs([[0.0, 2.0], [2.0, 0.0]], [[0.1, 0.1, 0.1, 0.1], [0.5, 0.5, 0.2, 0.2]])
    out = _outputs([[2.0, 0.0], [0.0, 2.0]], [[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]], [aux])
    _, parts = crit(out, tgt)
    assert parts["loss_bbox_0"].item() == pytest.approx(0.0, abs=1e-6)  # matched to its own query 1
    assert parts["loss_giou_0"].item() == pytest.approx(0.0, abs=1e-6)
    assert parts["loss_ce_0"].item() == pytest.approx(parts["loss_ce"].item(), rel=1e-6)


def test_detector_loss_backpropagates_and_images_without_persons_are_fine():
    torch.manual_seed(0)
    m = create_model("prtr_detector_smoke", input_size=(64, 64))
    out = m(torch.randn(2, 3, 64, 64))
    tgt = [{"boxes": torch.tensor([[0.5, 0.5, 0.3, 0.6]])}, {"boxes": torch.zeros(0, 4)}]
    total, parts = m.loss(out, tgt)
    total.backward()
    assert math.isfinite(parts["loss"]) and "loss_giou_0" in parts
    assert m.bbox_embed.layers[-1].weight.grad.abs().sum() > 0


def test_box_results_are_detrs_postprocessing():
    out = {"pred_logits": torch.tensor([[[1.0, 0.0], [0.0, 3.0]]]),
           "pred_boxes": torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.95, 0.5, 0.2, 0.2]]])}
    res = box_results(out, [7], torch.tensor([[200.0, 100.0]]))
    assert [r["image_id"] for r in res] == [7, 7] and {r["category_id"] for r in res} == {1}
    assert res[0]["score"] == pytest.approx(1 / (1 + math.exp(-1)))  # most confident first
    assert res[0]["bbox"] == pytest.approx([80.0, 30.0, 40.0, 40.0])
    assert res[1]["score"] == pytest.approx(1 / (1 + math.exp(3)))
    assert res[1]["bbox"] == pytest.approx([170.0, 40.0, 30.0, 20.0])  # clipped at the right border (x1 = 200)
    assert len(box_results(out, [7], torch.tensor([[200.0, 100.0]]), top_k=1)) == 1


# ------------------------------------------------------------------------------------------------ padding, aug
def test_masked_sine_embedding_is_detrs():
    mask = torch.zeros(1, 6, 9, dtype=torch.bool)
    torch.testing.assert_close(masked_sine_embedding(mask, 32)[0], sine_embedding(6, 9, 32), atol=1e-6, rtol=0)
    padded = torch.ones(1, 8, 12, dtype=torch.bool)
    padded[:, :6, :9] = False  # a 6x9 image in an 8x12 batch: its valid part has its own embedding
    pe = masked_sine_embedding(padded, 32)[0].reshape(8, 12, 32)[:6, :9].reshape(54, 32)
    torch.testing.assert_close(pe, sine_embedding(6, 9, 32), atol=1e-6, rtol=0)


def test_detr_resize_sizes_and_padded_batch():
    from poserepro.data.whole_image import detr_size, pad_batch

    assert detr_size(640, 480, 800, 1333) == (1066, 800)
    assert detr_size(480, 640, 800, 1333) == (800, 1066)
    assert detr_size(1000, 200, 800, 1333) == (1335, 267)  # DETR's rounding: the short side is cut to 267
    assert detr_size(800, 600, 600, None) == (800, 600)
    images, mask = pad_batch([torch.ones(3, 4, 6), torch.ones(3, 5, 3)])
    assert images.shape == (2, 3, 5, 6) and mask.shape == (2, 5, 6)
    assert (~mask[0]).sum() == 24 and mask[0, 4].all() and (~mask[1]).sum() == 15 and mask[1, :, 3:].all()
    assert images[1, :, :, 3:].abs().sum() == 0


def _tiny_coco(tmp_path: Path) -> Path:
    """Two persons on one 100x50 image: A with 2 labelled keypoints, B without any."""
    import cv2

    (tmp_path / "img").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "img" / "a.jpg"), np.full((50, 100, 3), 127, np.uint8))
    kps = [0.0] * 51
    kps[15:18] = [20.0, 15.0, 2.0]   # left shoulder
    kps[27:30] = [30.0, 40.0, 1.0]   # left knee
    anns = [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 5, 40, 40], "keypoints": kps,
             "num_keypoints": 2, "iscrowd": 0, "area": 1600},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [70, 20, 10, 10], "keypoints": [0] * 51,
             "num_keypoints": 0, "iscrowd": 0, "area": 100}]
    data = {"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50}], "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json"


def test_persons_without_keypoints_are_skipped(tmp_path):
    from poserepro.data.whole_image import WholeImageDataset
    from poserepro.evaluation.boxes import evaluate_boxes

    ann = _tiny_coco(tmp_path)
    assert len(WholeImageDataset(ann, tmp_path / "img", (64, 32))[0]["boxes"]) == 2
    kept = WholeImageDataset(ann, tmp_path / "img", (64, 32), min_keypoints=1)[0]
    torch.testing.assert_close(kept["boxes"], torch.tensor([[0.3, 0.5, 0.4, 0.8]]))
    dets = [{"image_id": 7, "category_id": 1, "bbox": [10.0, 5.0, 40.0, 40.0], "score": 0.9}]
    pruned = evaluate_boxes(ann, dets, min_keypoints=1)
    full = evaluate_boxes(ann, dets)
    assert pruned["AP"] == pytest.approx(1.0)
    assert full["AP"] == pytest.approx(51 / 101, abs=1e-6)  # recall stops at 1/2 of the 101 recall points


def test_detr_train_transform_keeps_boxes_and_joints_together(tmp_path):
    """DETR's augmentation moves boxes and joints with the pixels; a crop drops the persons it leaves out."""
    from poserepro.data.whole_image import WholeImageDataset
    from poserepro.keypoints import COCO_FLIP_PAIRS

    ann = _tiny_coco(tmp_path)
    ds = WholeImageDataset(ann, tmp_path / "img", (64, 32), train=True, resize="detr", scales=(60, 80),
                           max_size=200, flip_prob=0.5, min_keypoints=1, flip_pairs=COCO_FLIP_PAIRS)
    sizes, flips = set(), 0
    for epoch in range(12):
        ds.set_epoch(epoch)
        it = ds[0]
        h, w = it["image"].shape[1:]
        sizes.add((w, h))
        assert min(w, h) in (60, 80) or max(w, h) == 200
        boxes, kps = it["boxes"], it["keypoints"]
        assert len(boxes) <= 1 and ((boxes >= 0) & (boxes <= 1 + 1e-6)).all()
        for b, k in zip(boxes, kps):
            vis = k[:, 2] > 0
            lo, hi = b[:2] - b[2:] / 2, b[:2] + b[2:] / 2
            assert ((k[vis, :2] >= lo - 1e-5) & (k[vis, :2] <= hi + 1e-5)).all()
            flips += int(bool(k[6, 2] > 0))  # the shoulder became the right one
    assert len(sizes) > 1 and flips > 0


# ------------------------------------------------------------------------------------------------ detect
def test_detect_writes_a_box_file_the_two_stage_models_read(tiny_synth, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from poserepro.cli.main import app
    from poserepro.data.boxes import load_detections
    from poserepro.data.splits import person_records
    from poserepro.engine import train
    from poserepro.recipes import load_recipe

    from .conftest import tiny_overrides

    monkeypatch.setenv("POSEREPRO_RESULTS", str(tmp_path / "results"))
    rec = load_recipe("prtr-detector-smoke", tiny_overrides(tiny_synth) + ["train.max_steps_per_epoch=2"])
    res = train(rec, tmp_path / "run")
    log = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert res.checkpoint.is_file() and "loss_giou" in log
    out = tmp_path / "dets.json"
    r = CliRunner().invoke(app, ["detect", str(tmp_path / "run"), "--split", "val", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "COCO person boxes" in r.output and "persons with keypoints" in r.output
    dets = json.loads(out.read_text())
    val = json.loads((tiny_synth / "annotations" / "person_keypoints_val.json").read_text())
    ids = {im["id"] for im in val["images"]}
    assert len(dets) == len(ids) * 5 and {d["image_id"] for d in dets} == ids  # 5 queries per image
    assert all(set(d) == {"image_id", "category_id", "bbox", "score"} and 0 <= d["score"] <= 1 for d in dets)
    assert sum(len(v) for v in load_detections(out, ids).values()) == len(dets)
    two_stage = load_recipe("prtr-smoke", tiny_overrides(tiny_synth))
    records, _ = person_records(two_stage, "val", use_gt_boxes=False, det_file=out)
    assert len(records) == len(dets)
    rows = (tmp_path / "results" / "detections.csv").read_text()
    assert "prtr-detector-smoke" in rows and ",AP_kpt," in rows


def test_detect_test_dev_writes_only_the_file(tiny_synth, tmp_path):
    """test-dev has no public ground truth: the box file is written and checked, no AP is computed."""
    import shutil

    from poserepro.engine import build_model
    from poserepro.engine.detect import detect
    from poserepro.recipes import load_recipe

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "test2017").mkdir()
    val = json.loads((tiny_synth / "annotations" / "person_keypoints_val.json").read_text())
    images = val["images"][:2]
    for im in images:
        shutil.copy(tiny_synth / "images" / "val" / im["file_name"], root / "test2017" / im["file_name"])
    info = {"images": images, "categories": val["categories"]}
    (root / "annotations" / "image_info_test-dev2017.json").write_text(json.dumps(info))
    rec = load_recipe("prtr-detector-smoke", ["data.dataset=coco", f"data.root={root}", "train.device=cpu"])
    torch.manual_seed(0)
    res = detect(build_model(rec), rec, tmp_path / "td.json", split="test-dev", top_k=3)
    assert res.metrics == {} and res.num_images == 2 and res.num_boxes == 6
    assert {d["image_id"] for d in json.loads(res.dets_file.read_text())} == {im["id"] for im in images}
    with pytest.raises(Exception, match="not a person detector"):
        detect(create_model("prtr_smoke"), rec, tmp_path / "x.json", split="test-dev")


def test_e2e_crops_of_a_padded_batch_sample_the_valid_image():
    """In a padded batch the crop grid is rescaled to the image's valid part: the crops (so the keypoint outputs)
    of a box are those of the unpadded feature map."""
    from poserepro.models.prtr_e2e import prtr_e2e_smoke, valid_fraction

    torch.manual_seed(0)
    m = prtr_e2e_smoke(input_size=(64, 64)).eval()
    small = [torch.randn(1, c, 4, 4) for c in m.backbone.channels]
    padded = [torch.cat([f, torch.zeros_like(f)], dim=3) for f in small]  # the image fills the left half
    mask = torch.zeros(1, 64, 128, dtype=torch.bool)
    mask[:, :, 64:] = True
    valid = valid_fraction(mask)
    torch.testing.assert_close(valid, torch.tensor([[0.5, 1.0]]))
    assert valid_fraction(torch.zeros(1, 8, 8, dtype=torch.bool)) is None
    boxes = torch.tensor([[0.4, 0.5, 0.2, 0.3]])
    b = torch.zeros(1, dtype=torch.int64)
    with torch.no_grad():
        ref = m.keypoints(small, b, boxes)
        out = m.keypoints(padded, b, boxes, valid)
    torch.testing.assert_close(out["pred_coords"], ref["pred_coords"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["pred_logits"], ref["pred_logits"], atol=1e-5, rtol=1e-5)


def test_eval_points_a_detector_to_detect(tiny_synth, tmp_path):
    from typer.testing import CliRunner

    from poserepro.cli.main import app
    from poserepro.engine import build_model
    from poserepro.recipes import load_recipe

    from .conftest import tiny_overrides

    rec = load_recipe("prtr-detector-smoke", tiny_overrides(tiny_synth))
    torch.save({"model": build_model(rec).state_dict()}, tmp_path / "w.pth")
    sets = sum((["--set", o] for o in tiny_overrides(tiny_synth)), [])
    r = CliRunner().invoke(app, ["eval", "prtr-detector-smoke", "--weights", str(tmp_path / "w.pth"), *sets])
    assert r.exit_code != 0 and "poserepro detect" in r.output
