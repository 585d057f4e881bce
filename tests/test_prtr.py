"""PRTR two-stage and end-to-end: official parameter counts and fvcore GFLOPs, the set criterion with re-matching,
Hungarian read-out, flip test, smoke training steps."""

from __future__ import annotations

import pytest
import torch

from poserepro.bench.flops import flops_fvcore
from poserepro.codecs.set_prediction import decode_set, joint_probabilities, set_readout
from poserepro.codecs.whole_image import predict_image_results, predict_with_boxes
from poserepro.keypoints import COCO_FLIP_PAIRS
from poserepro.losses.set_criterion import KeypointSetCriterion
from poserepro.models.prtr import prtr_hrnet_w32, prtr_r50, prtr_r101, prtr_smoke
from poserepro.models.prtr_e2e import e2e_loss, prtr_e2e_smoke
from poserepro.models.registry import create_model

# name -> (official parameter count, paper GFLOPs 384x288, official fvcore 384x288, paper 512x384, fvcore 512x384)
OFFICIAL = {
    "prtr_r50": (41_505_236, 11.0, 11.051, 18.8, 18.932),
    "prtr_r101": (60_445_140, 19.1, 19.233, 33.4, 33.478),
    "prtr_hrnet_w32": (57_234_004, 21.6, 21.803, 37.8, 38.048),
}
BUILDERS = {"prtr_r50": prtr_r50, "prtr_r101": prtr_r101, "prtr_hrnet_w32": prtr_hrnet_w32}

pytestmark = pytest.mark.usefixtures("one_thread")  # a loaded 2-core machine: avoid OpenMP spinning


@pytest.fixture(scope="module")
def big_models():
    """The three paper models, built once for the module (counting is input-size independent)."""
    torch.manual_seed(0)
    return {name: build().eval() for name, build in BUILDERS.items()}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_parameter_counts_equal_official(big_models, name):
    assert sum(p.numel() for p in big_models[name].parameters()) == OFFICIAL[name][0]


def test_resnet_backbone_frozen_bn_and_stages(big_models):
    m = big_models["prtr_r50"]
    names = {n for n, _ in m.named_parameters()}
    assert not any(".bn" in n or "downsample.1" in n for n in names if n.startswith("backbone."))
    frozen = {n.split(".")[2] for n, p in m.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "layer1"}
    assert not any("transformer.encoder.norm" in n for n in names)


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_gflops_384x288_within_2pct_of_paper(big_models, name):
    g = flops_fvcore(big_models[name], torch.randn(1, 3, 384, 288)) / 1e9
    _, paper, official, _, _ = OFFICIAL[name]
    assert abs(g - paper) / paper < 0.02
    assert g == pytest.approx(official, abs=1e-3)  # the official implementation, counted the same way


@pytest.mark.parametrize(
    "name", ["prtr_r50", pytest.param("prtr_r101", marks=pytest.mark.slow),
             pytest.param("prtr_hrnet_w32", marks=pytest.mark.slow)]
)
def test_gflops_512x384_within_2pct_of_paper(big_models, name):
    g = flops_fvcore(big_models[name], torch.randn(1, 3, 512, 384)) / 1e9
    _, _, _, paper, official = OFFICIAL[name]
    assert abs(g - paper) / paper < 0.02
    assert g == pytest.approx(official, abs=1e-3)


def test_registry_input_size_and_ablation_args():
    m = create_model("prtr_smoke", input_size=(64, 96), num_queries=17, class_fixed_queries=True)
    assert m.input_size == (64, 96) and m.num_queries == 17 and m.output_type == "set"
    with pytest.raises(ValueError):
        create_model("prtr_smoke", num_queries=50, class_fixed_queries=True)


# ------------------------------------------------------------------------------------------------ criterion


def _one_hot_logits(assign: dict[int, int], q: int, k: int, big: float = 30.0) -> torch.Tensor:
    logits = torch.zeros(1, q, k + 1)
    for query in range(q):
        logits[0, query, assign.get(query, k)] = big
    return logits


def test_criterion_rematches_every_aux_layer():
    k, q = 3, 4
    targets = torch.tensor([[[0.1, 0.2], [0.5, 0.5], [0.9, 0.7]]])
    weights = torch.ones(1, k)

    def layer(assign: dict[int, int]) -> dict:
        coords = torch.full((1, q, 2), 0.3)
        for query, joint in assign.items():
            coords[0, query] = targets[0, joint]
        return {"pred_logits": _one_hot_logits(assign, q, k), "pred_coords": coords}

    last = layer({0: 2, 1: 0, 2: 1})
    aux = layer({3: 0, 2: 2, 0: 1})  # a different permutation: only a fresh matching makes it perfect
    crit = KeypointSetCriterion(num_joints=k)
    total, parts = crit({**last, "aux_outputs": [aux]}, targets, weights)
    for key in ("loss_ce", "loss_kpts", "loss_ce_0", "loss_kpts_0"):
        assert float(parts[key]) < 1e-6, key
    assert float(total) < 1e-5
    # reusing the last layer's matching for the aux layer would have cost a lot
    classes_of_last = torch.tensor([[2, 0, 1, k]])
    stale = torch.nn.functional.cross_entropy(aux["pred_logits"].transpose(1, 2), classes_of_last,
                                              crit.empty_weight)
    assert float(stale) > 10


def test_criterion_values_match_official_normalisation():
    g = torch.Generator().manual_seed(0)
    k, q, b = 4, 6, 2
    out = {"pred_logits": torch.randn(b, q, k + 1, generator=g), "pred_coords": torch.rand(b, q, 2, generator=g)}
    targets = torch.rand(b, k, 2, generator=g)
    weights = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    crit = KeypointSetCriterion(num_joints=k, eos_coef=0.1)
    parts = crit.layer_losses(out, targets, weights)
    from poserepro.codecs.matching import match_keypoints

    idx = match_keypoints(out["pred_logits"], out["pred_coords"], targets)
    cls = torch.full((b, q), k)
    l1 = []
    for i, (j, qq) in enumerate(idx):
        cls[i, qq] = j
        l1.append((out["pred_coords"][i, qq] - targets[i, j]).abs() * weights[i, j][:, None])
    w = torch.ones(k + 1)
    w[-1] = 0.1
    ce = torch.nn.functional.cross_entropy(out["pred_logits"].transpose(1, 2), cls, w)
    torch.testing.assert_close(parts["loss_ce"], ce)
    torch.testing.assert_close(parts["loss_kpts"], torch.cat(l1).mean() * k)


# ------------------------------------------------------------------------------------------------ read-out


def test_readout_background_switch_and_scores():
    logits = torch.tensor([[[5.0, 0.0, 9.0], [0.0, 4.0, 9.0], [1.0, 1.0, -5.0]]])  # Q=3, K=2, bg last
    coords = torch.tensor([[[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]])
    c, s = set_readout(logits, coords)
    torch.testing.assert_close(c, coords[:, :2])
    p = logits[..., :2].softmax(-1)
    torch.testing.assert_close(s, torch.stack([p[0, 0, 0], p[0, 1, 1]])[None])
    p_bg = joint_probabilities(logits, include_bg_logit=True)
    torch.testing.assert_close(p_bg, logits.softmax(-1)[..., :2])
    _, s_bg = set_readout(logits, coords, include_bg_logit=True)
    assert (s_bg < s).all()  # the background logit eats probability mass


def _mirror(out: dict, pairs) -> dict:
    k = out["pred_logits"].shape[-1] - 1
    perm = list(range(k + 1))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    coords = out["pred_coords"].clone()
    coords[..., 0] = 1 - coords[..., 0]
    return {"pred_logits": out["pred_logits"][..., perm], "pred_coords": coords}


def test_flip_test_of_equivariant_outputs_is_identity():
    g = torch.Generator().manual_seed(0)
    out = {"pred_logits": torch.randn(2, 30, 18, generator=g), "pred_coords": torch.rand(2, 30, 2, generator=g)}
    flipped = _mirror(out, COCO_FLIP_PAIRS)
    c0, s0 = decode_set(out, (288, 384), COCO_FLIP_PAIRS)
    c1, s1 = decode_set(out, (288, 384), COCO_FLIP_PAIRS, flip_outputs=flipped)
    torch.testing.assert_close(c0, c1)
    torch.testing.assert_close(s0, s1)
    assert c0.shape == (2, 17, 2) and float(c0[..., 0].max()) <= 288


# ------------------------------------------------------------------------------------------------ smoke


def _batch(b: int, size=(96, 128), seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    joints = torch.rand(b, 17, 2, generator=g) * torch.tensor([float(size[0]), float(size[1])])
    vis = (torch.rand(b, 17, generator=g) > 0.2).float()
    return {"image": torch.randn(b, 3, size[1], size[0], generator=g), "joints": joints, "joints_vis": vis}


def test_prtr_smoke_forward_backward_decode():
    torch.manual_seed(0)
    m = prtr_smoke(input_size=(64, 96))
    batch = _batch(2, (64, 96))
    out = m(batch["image"])
    assert out["pred_logits"].shape == (2, 50, 18) and out["pred_coords"].shape == (2, 50, 2)
    assert len(out["aux_outputs"]) == 1
    total, parts = m.loss(out, batch)
    assert {"loss_ce", "loss_kpts", "loss_ce_0", "loss_kpts_0"} <= set(parts)
    total.backward()
    assert m.class_embed.weight.grad is not None and m.backbone.body.conv1.weight.grad is not None
    m.eval()
    with torch.no_grad():
        coords, scores = m.decode(m(batch["image"]), m(batch["image"].flip(3)))
    assert coords.shape == (2, 17, 2) and scores.shape == (2, 17)
    assert (coords[..., 0] <= 64).all() and (coords[..., 1] <= 96).all()


def test_bgr_input_flips_channels():
    torch.manual_seed(0)
    m = prtr_smoke(input_size=(64, 96)).eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        ref = m(x.flip(1))["pred_coords"]
        m.bgr_input = True
        torch.testing.assert_close(m(x)["pred_coords"], ref)


# ------------------------------------------------------------------------------------------------ end-to-end


def _e2e_targets(g: torch.Generator, n_persons: list[int]) -> list[dict]:
    out = []
    for n in n_persons:
        c = torch.rand(n, 2, generator=g) * 0.5 + 0.25
        wh = torch.rand(n, 2, generator=g) * 0.3 + 0.2
        kp = torch.cat([c[:, None] + (torch.rand(n, 17, 2, generator=g) - 0.5) * wh[:, None],
                        torch.full((n, 17, 1), 2.0)], dim=-1)
        out.append({"boxes": torch.cat([c, wh], -1), "keypoints": kp})
    return out


def test_e2e_loss_and_predict_on_tiny_batch():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    m = prtr_e2e_smoke(input_size=(96, 96), max_persons=5)
    images = torch.randn(2, 3, 96, 96, generator=g)
    targets = _e2e_targets(g, [7, 1])
    out = m(images, targets)
    assert out["kpt_batch"].tolist().count(0) == 5 and out["kpt_batch"].tolist().count(1) == 1
    total, parts = m.loss(out, targets)
    assert torch.isfinite(total) and "kpt_loss_kpts" in parts and "det_loss_giou_0" in parts
    # the keypoint loss alone reaches the detector's box head through the differentiable crop
    m.zero_grad()
    m.det_criterion.weights = (0.0, 0.0, 0.0)
    e2e_loss(m, images, targets)[0].backward()
    assert m.bbox_embed.layers[-1].weight.grad.abs().sum() > 0
    res = predict_image_results(m, images, [11, 12], torch.tensor([[640.0, 480.0], [320.0, 240.0]]))
    assert len(res) == 2 * min(m.eval_persons, m.query_embed.num_embeddings)
    r = res[0]
    assert set(r) == {"image_id", "category_id", "keypoints", "score"} and len(r["keypoints"]) == 51
    xs = torch.tensor(r["keypoints"][0::3])
    assert r["image_id"] in (11, 12) and (xs >= 0).all() and (xs <= 640).all()


def test_e2e_gt_crop_jitter_stays_within_its_bounds():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    targets = _e2e_targets(g, [3, 2])
    gt = torch.cat([t["boxes"] for t in targets])
    exact = prtr_e2e_smoke(input_size=(96, 96), train_crop="gt")
    out = exact(torch.randn(2, 3, 96, 96, generator=g), targets)
    order = [int(out["kpt_target"][n]) + 3 * int(out["kpt_batch"][n]) for n in range(len(out["kpt_batch"]))]
    torch.testing.assert_close(out["kpt_boxes"], gt[order])  # no jitter: the GT boxes themselves
    jit = prtr_e2e_smoke(input_size=(96, 96), train_crop="gt", crop_jitter=0.2)
    boxes = gt.repeat(200, 1)
    j = jit.jitter_boxes(boxes)
    shift = (j[:, :2] - boxes[:, :2]) / boxes[:, 2:]
    scale = j[:, 2:] / boxes[:, 2:]
    assert shift.abs().max() <= 0.2 + 1e-6 and shift.abs().max() > 0.15  # uniform over ±0.2 of w / h
    assert (scale - 1).abs().max() <= 0.2 + 1e-6 and (scale - 1).abs().max() > 0.15
    with pytest.raises(ValueError, match="crop_jitter"):
        prtr_e2e_smoke(crop_jitter=1.5)


def test_e2e_predict_with_given_boxes_and_box_results():
    """Diagnostics of scripts/calibrate.py: keypoints on given (e.g. GT) boxes; the detector's boxes in pixels."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    m = prtr_e2e_smoke(input_size=(96, 96))
    images = torch.randn(2, 3, 96, 96, generator=g)
    given = [t["boxes"] for t in _e2e_targets(g, [2, 1])]
    sizes = torch.tensor([[640.0, 480.0], [320.0, 240.0]])
    kpts, boxes = predict_with_boxes(m, images, given, [11, 12], sizes)
    assert [r["image_id"] for r in kpts] == [11, 11, 12] and len(boxes) == 2 * m.query_embed.num_embeddings
    for r, box, size in zip(kpts, torch.cat(given), sizes[[0, 0, 1]]):
        xy = torch.tensor(r["keypoints"]).reshape(17, 3)[:, :2] / size
        lo = box[:2] - 0.5 * m.crop_enlarge * box[2:]
        hi = box[:2] + 0.5 * m.crop_enlarge * box[2:]
        assert ((xy >= lo - 1e-5) & (xy <= hi + 1e-5)).all()  # inside the enlarged crop of the box it was given
    det = m.eval().detect(images)[1]["pred_boxes"][1, 0]
    x, y, w, h = boxes[m.query_embed.num_embeddings]["bbox"]
    torch.testing.assert_close(torch.tensor([x + w / 2, y + h / 2, w, h]) / sizes[1].repeat(2), det)
    assert predict_with_boxes(m, images, [torch.zeros(0, 4), torch.zeros(0, 4)], [11, 12], sizes)[0] == []


def _detr_sine(h: int, w: int, d: int, offset: float = 0.0) -> torch.Tensor:
    """DETR's PositionEmbeddingSine (normalize=True, scale 2π, T 10000) on an all-valid mask, (h·w, d)."""
    ones = torch.ones(1, h, w)
    y = ones.cumsum(1)
    x = ones.cumsum(2)
    y = (y - offset) / (y[:, -1:, :] + 1e-6) * 2 * torch.pi
    x = (x - offset) / (x[:, :, -1:] + 1e-6) * 2 * torch.pi
    npf = d // 2
    dim_t = 10000 ** (2 * (torch.arange(npf) // 2) / npf)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3)[0].reshape(h * w, d)


def test_position_embedding_is_detrs():
    from poserepro.models.layers.detr import SineCache

    pe = SineCache(256)(12, 9, torch.zeros(1))
    torch.testing.assert_close(pe, _detr_sine(12, 9, 256), atol=1e-5, rtol=1e-5)


def test_whole_image_dataset_normalises_and_flips(tmp_path):
    import json

    import cv2
    import numpy as np

    from poserepro.data.whole_image import WholeImageDataset, collate_whole_images
    from poserepro.keypoints import COCO_FLIP_PAIRS

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.jpg"), np.zeros((50, 100, 3), np.uint8))
    kps = [0.0] * 51
    kps[3:6] = [20.0, 10.0, 2.0]  # left eye (index 1) at (20, 10)
    ann = {"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 50}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 5, 40, 30], "keypoints": kps,
                            "num_keypoints": 1, "iscrowd": 0, "area": 1200}],
           "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    ds = WholeImageDataset(tmp_path / "ann.json", tmp_path / "img", (64, 32))
    images, targets, ids, sizes, _ = collate_whole_images([ds[0]])
    assert images.shape == (1, 3, 32, 64) and ids == [7] and sizes.tolist() == [[100.0, 50.0]]
    torch.testing.assert_close(targets[0]["boxes"], torch.tensor([[0.3, 0.4, 0.4, 0.6]]))
    torch.testing.assert_close(targets[0]["keypoints"][0, 1], torch.tensor([0.2, 0.2, 2.0]))
    flipped = WholeImageDataset(tmp_path / "ann.json", tmp_path / "img", (64, 32), train=True, flip_prob=1.0,
                                flip_pairs=COCO_FLIP_PAIRS)[0]
    torch.testing.assert_close(flipped["boxes"], torch.tensor([[0.7, 0.4, 0.4, 0.6]]))
    torch.testing.assert_close(flipped["keypoints"][0, 2], torch.tensor([0.8, 0.2, 2.0]))  # became the right eye


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_bench_paper_numbers_per_input_size(name):
    """`poserepro bench` puts the paper's per-input-size numbers beside PRTR rows (none at TransPose's 256x192)."""
    from poserepro.bench.paper_numbers import paper_numbers

    official, g384, f384, g512, f512 = OFFICIAL[name]
    for hw, paper_g, fv in (((384, 288), g384, f384), ((512, 384), g512, f512)):
        row = paper_numbers(name, hw)
        assert row is not None and row.gflops == paper_g and row.official_params == official
        assert row.gflops_convention == "fvcore" and row.official_gflops_fvcore == fv
    assert paper_numbers(name, (256, 192)) is None


def test_e2e_trains_and_evaluates_through_the_training_loop(tiny_synth, tmp_path):
    """`poserepro train/eval prtr-e2e-smoke`: whole synthetic images in, COCO results for whole images out."""
    import json

    from poserepro.engine import build_model, evaluate, train
    from poserepro.recipes import load_recipe

    from .conftest import tiny_overrides

    rec = load_recipe("prtr-e2e-smoke", tiny_overrides(tiny_synth) + ["train.max_steps_per_epoch=2"])
    res = train(rec, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert res.checkpoint.is_file() and log[0]["steps"] == 2 and "det_loss_ce" in log[0]
    model = build_model(rec)
    model.load_state_dict(torch.load(res.checkpoint, map_location="cpu", weights_only=True)["model"])
    ev = evaluate(model, rec, tmp_path / "ev", split="val")
    assert ev.results_file.name == "results_val_e2e.json" and ev.num_crops == 8
    assert 0.0 <= ev.metrics["AP"] <= 1.0 and set(ev.metrics) >= {"AP", "AP50", "AR"}
    val_ids = {im["id"] for im in json.loads(ev.ann_file.read_text())["images"]}
    results = json.loads(ev.results_file.read_text())
    assert results and all(r["image_id"] in val_ids and len(r["keypoints"]) == 51 for r in results)
