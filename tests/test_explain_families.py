"""Explain figures of every family on randomly initialised smoke models: shapes, hand-checkable content
(softmax rows sum to 1, the Deformable-DETR initial sampling pattern, cosine-similarity identities, read-outs
equal to inference), the default forward left untouched, and PNG + JSON through the library and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from poserepro import create_model
from poserepro.errors import PoseReproError
from poserepro.explain import (
    dependency_areas,
    position_similarity,
    q2q_attention,
    query_classes,
    refinement,
    sampling_points,
)
from poserepro.explain.figures import Subject, draw
from poserepro.keypoints import COCO

from .conftest import tiny_overrides

H, W = 128, 96
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread(one_thread) -> None:  # noqa: ANN001
    torch.manual_seed(0)


def crops(n: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.randn(3, H, W, generator=g), "joints": torch.rand(17, 2, generator=g) * torch.tensor(
        [W, H]), "joints_vis": torch.ones(17)} for _ in range(n)]


def subject(model: torch.nn.Module, label: str, n: int = 3) -> Subject:
    return Subject(model.eval(), label, COCO.keypoint_names, crops(n), [f"img{i}.jpg" for i in range(n)], 1,
                   COCO.skeleton)


def png_ok(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 2000


# ------------------------------------------------------------------------------------------------ BTranspose


def test_btranspose_mhsa_dependency_rows_and_untouched_forward(tmp_path: Path) -> None:
    model = create_model("btranspose_smoke").eval()
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        plain = model(x)
        hm, attns = model.forward_with_attention(x, include_mhsa=True)
    torch.testing.assert_close(hm, plain, rtol=1e-5, atol=1e-6)  # asking for the maps changes nothing
    assert all(not m.keep_attention and m.last_attn is None for m in model.backbone.mhsa_modules())
    maps = dependency_areas(model, x[0], include_mhsa=True)
    assert maps.layers == ("MHSA 1", "encoder 1", "encoder 2")
    assert maps.dependency.shape == (3, 17, H, W) and maps.grid_dependency.shape == (3, 17, H // 8, W // 8)
    np.testing.assert_allclose(maps.grid_dependency.sum(axis=(2, 3)), 1.0, rtol=1e-5)
    # the MHSA row of a keypoint is the backbone's own head-averaged attention row at its grid cell
    fy, fx = (maps.keypoints[0, 1] // 8).astype(int), (maps.keypoints[0, 0] // 8).astype(int)
    np.testing.assert_allclose(maps.grid_dependency[0, 0].ravel(), attns[0][0, fy * (W // 8) + fx].numpy(),
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(PoseReproError, match="MHSA"):
        dependency_areas(create_model("transpose_r_smoke"), x[0], include_mhsa=True)


def test_btranspose_two_runs_side_by_side_png_and_json(tmp_path: Path) -> None:
    a, b = create_model("btranspose_smoke"), create_model("btranspose_smoke", mhsa_heads=4)
    out, js = tmp_path / "dep.png", tmp_path / "dep.json"
    path, summary = draw("dependency", subject(a, "runs/a"), out, js, compare=subject(b, "runs/b"),
                         joints=[0, 9], layers=[1, -1])
    assert path == out and png_ok(out) and "4 layer rows" in summary
    data = json.loads(js.read_text())
    assert [r["run"] for r in data["runs"]] == ["runs/a", "runs/b"] and data["joints"] == ["nose", "left_wrist"]
    assert data["runs"][0]["layers"] == ["MHSA 1", "encoder 2"]
    assert "runs/a vs runs/b" in data["caption"] and "img1.jpg" in data["caption"] and "nose" in data["caption"]
    want = dependency_areas(b.eval(), crops(3)[1]["image"], include_mhsa=True).grid_dependency[[0, 2]][:, [0, 9]]
    np.testing.assert_allclose(np.array(data["runs"][1]["dependency_grid"]), want, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------ TransPose PE


def test_position_similarity_identities_and_hand_case(tmp_path: Path) -> None:
    model = create_model("transpose_r_smoke", pos_embed="learnable")
    sim = position_similarity(model)
    s = sim.similarity
    assert sim.grid == (16, 12) and s.shape == (192, 192)
    np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-6)
    np.testing.assert_allclose(s, s.T, atol=1e-6)
    assert (np.abs(s) <= 1.0).all()
    # a hand-made table: location i holds the unit vector e_{i mod 64}, plus e_0 for the odd locations
    table = torch.zeros(192, 64)
    table[torch.arange(192), torch.arange(192) % 64] = 1.0
    table[1::2, 0] += 1.0
    with torch.no_grad():
        model.pos_embed.weight.copy_(table)
    s = position_similarity(model).similarity
    assert s[0, 64] == pytest.approx(1.0) and s[2, 3] == pytest.approx(0.0, abs=1e-7)
    assert s[0, 1] == pytest.approx(1 / math.sqrt(2), rel=1e-6) and s[1, 3] == pytest.approx(0.5, rel=1e-6)
    assert position_similarity(model).map_of(0, 1)[0, 1] == pytest.approx(1.0)
    # the sine table: a location is more like its neighbour than the far corner
    sine = position_similarity(create_model("transpose_r_smoke")).similarity
    assert (sine[0, 1] > sine[0, 191]) and (sine[100, 101] > sine[100, 0])
    with pytest.raises(PoseReproError, match="no position embedding"):
        position_similarity(create_model("transpose_r_smoke", pos_embed="none"))
    out, js = tmp_path / "pos.png", tmp_path / "pos.json"
    draw("position", subject(create_model("transpose_r_smoke", pos_embed="learnable"), "runs/pe"), out, js,
         position_step=4)
    data = json.loads(js.read_text())
    assert png_ok(out) and data["grid"] == [16, 12] and len(data["similarity"]) == 192
    np.testing.assert_allclose(np.diag(np.array(data["similarity"])), 1.0, atol=1e-6)


# ------------------------------------------------------------------------------------------------ TFPose


def test_tfpose_q2q_mean_rows_sum_to_one_and_forward_untouched(tmp_path: Path) -> None:
    model = create_model("tfpose_smoke").eval()
    xs = torch.stack([c["image"] for c in crops(3)])
    with torch.no_grad():
        plain = model(xs)["coords"]
        with_w = model(xs, need_weights=True)
    torch.testing.assert_close(with_w["coords"], plain)
    qa = q2q_attention(model, [{"image": xs[:2]}, {"image": xs[2:]}])
    assert qa.count == 3 and qa.attention.shape == (3, 17, 17)
    np.testing.assert_allclose(qa.attention.sum(-1), 1.0, rtol=1e-5)
    one = torch.stack([ex["q2q"] for ex in with_w["attention"]], 1).mean(0).numpy()  # the same 3 crops at once
    np.testing.assert_allclose(qa.attention, one, rtol=1e-4, atol=1e-6)
    with pytest.raises(PoseReproError, match="q2q"):
        q2q_attention(create_model("tfpose_smoke", q2q=False), [{"image": xs}])
    js = tmp_path / "q2q.json"
    draw("q2q", subject(model, "runs/tf"), tmp_path / "q2q.png", js, layers=[2, 3], batch_size=2)
    data = json.loads(js.read_text())
    assert png_ok(tmp_path / "q2q.png") and data["count"] == 3 and "decoder layers 2, 3" in data["caption"]
    np.testing.assert_allclose(np.array(data["attention"]).sum(-1), 1.0, rtol=1e-5)


def test_tfpose_sampling_points_follow_the_deformable_init(tmp_path: Path) -> None:
    model = create_model("tfpose_smoke").eval()  # sampling-offset weights start at 0: offsets are the bias
    img = crops(1)[0]["image"]
    sp = sampling_points(model, img, layer=0, level=0)
    heads, points = 4, 4
    assert sp.points.shape == (17, heads * points, 2) and sp.stride == 8
    ref = (model.init_coords.sigmoid().detach() * torch.tensor([W, H])).numpy()
    np.testing.assert_allclose(sp.reference, ref, rtol=1e-5)
    # head h, point p sits at ref + (cos, sin)(2πh/H)/max|·| · (p + 1) feature cells = · stride pixels
    theta = np.arange(heads) * 2 * np.pi / heads
    d = np.stack([np.cos(theta), np.sin(theta)], -1)
    d = d / np.abs(d).max(-1, keepdims=True)
    want = ref[:, None, None] + d[None, :, None] * (np.arange(points) + 1)[None, None, :, None] * 8
    np.testing.assert_allclose(sp.points, want.reshape(17, -1, 2), rtol=1e-5, atol=1e-3)
    inside = (sp.points[..., 0] >= 0) & (sp.points[..., 0] < W) & (sp.points[..., 1] >= 0) & (sp.points[..., 1] < H)
    np.testing.assert_array_equal(sp.inside, inside)
    assert sp.inside.mean() > 0.5
    # each head's softmax runs over levels x points: the per-level shares add up to 1
    shares = sum(sampling_points(model, img, 0, lv).weights.reshape(17, heads, points).sum(-1) for lv in range(3))
    np.testing.assert_allclose(shares, 1.0, rtol=1e-5)
    js = tmp_path / "s.json"
    draw("sampling", subject(model, "runs/tf"), tmp_path / "s.png", js, joints=[5, 6], layers=[-1])
    data = json.loads(js.read_text())
    assert png_ok(tmp_path / "s.png") and [q["joint"] for q in data["queries"]] == ["left_shoulder", "right_shoulder"]
    assert data["layer"] == 3 and len(data["queries"][0]["points"]) == heads * points
    with pytest.raises(PoseReproError, match="out of range"):
        sampling_points(model, img, layer=3)


# ------------------------------------------------------------------------------------------------ PRTR


def test_prtr_refinement_one_estimate_per_decoder_layer(tmp_path: Path) -> None:
    model = create_model("prtr_smoke", dec_layers=3, aux_loss=False).eval()  # the hook needs no aux outputs
    img = crops(1)[0]["image"]
    ref = refinement(model, img)
    assert ref.keypoints.shape == (3, 17, 2) and ref.scores.shape == (3, 17)
    assert ref.query_coords.shape == (3, 50, 2) and ref.query_probs.shape == (3, 50, 18)
    np.testing.assert_allclose(ref.query_probs.sum(-1), 1.0, rtol=1e-5)
    with torch.no_grad():
        kp, sc = model.decode(model(img[None]))  # the last layer's read-out is the model's prediction
    np.testing.assert_allclose(ref.keypoints[-1], kp[0].numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ref.scores[-1], sc[0].numpy(), rtol=1e-5, atol=1e-6)
    hm = ref.query_heatmap(0, 0, (W, H), sigma=2.0)
    assert hm.shape == (H, W) and hm.max() <= ref.query_probs[0, :, 0].sum() + 1e-6
    js = tmp_path / "r.json"
    draw("refinement", subject(model, "runs/prtr"), tmp_path / "r.png", js, joints=[9])
    data = json.loads(js.read_text())
    assert png_ok(tmp_path / "r.png") and len(data["keypoints"]) == 3 and data["joint"] == "left_wrist"
    with pytest.raises(PoseReproError, match="two-stage PRTR"):
        refinement(create_model("tfpose_smoke"), img)


def test_prtr_query_class_distribution(tmp_path: Path) -> None:
    model = create_model("prtr_smoke").eval()
    xs = torch.stack([c["image"] for c in crops(3)])
    qc = query_classes(model, [{"image": xs[:1]}, {"image": xs[1:]}])
    assert qc.count == 3 and qc.distribution.shape == (50, 18)
    np.testing.assert_allclose(qc.distribution.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(qc.mean_probs.sum(1), 1.0, rtol=1e-5)
    with torch.no_grad():
        arg = model(xs)["pred_logits"].argmax(-1)  # (3, Q) hand count
    want = np.stack([(arg == c).float().mean(0).numpy() for c in range(18)], 1)
    np.testing.assert_allclose(qc.distribution, want, atol=1e-6)
    np.testing.assert_array_equal(qc.predicted, arg.numpy())
    assert qc.locations.shape == (3, 50, 2) and (qc.locations >= 0).all()
    assert (qc.locations[..., 0] <= W).all() and (qc.locations[..., 1] <= H).all()
    js = tmp_path / "q.json"
    draw("queries", subject(model, "runs/prtr"), tmp_path / "q.png", js, queries=5, batch_size=2)
    data = json.loads(js.read_text())
    assert png_ok(tmp_path / "q.png") and len(data["shown"]) == 5 and data["classes"][-1] == "background"
    np.testing.assert_allclose(np.array(data["distribution"]).sum(1), 1.0, rtol=1e-6)
    draw("query-locations", subject(model, "runs/prtr"), tmp_path / "l.png", tmp_path / "l.json")
    assert png_ok(tmp_path / "l.png") and np.array(json.loads((tmp_path / "l.json").read_text())["locations"]).shape \
        == (3, 50, 2)


# ------------------------------------------------------------------------------------------------ CLI


def test_explain_cli_figures_on_tiny_data(tmp_path: Path, tiny_synth: Path) -> None:
    from poserepro.cli.main import app

    runner = CliRunner()
    sets = [x for o in tiny_overrides(tiny_synth) for x in ("--set", o)]
    w = tmp_path / "tf.pth"
    torch.save(create_model("tfpose_smoke").state_dict(), w)
    out, js = tmp_path / "q2q.png", tmp_path / "q2q.json"
    r = runner.invoke(app, ["explain", "tfpose-smoke", "--weights", str(w), "--figure", "q2q", "--max-persons", "4",
                            "--out", str(out), "--json", str(js), *sets])
    assert r.exit_code == 0, r.output
    assert png_ok(out) and json.loads(js.read_text())["count"] == 4
    r = runner.invoke(app, ["explain", "tfpose-smoke", "--weights", str(w), "--figure", "queries", *sets])
    assert r.exit_code != 0 and "two-stage PRTR" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["explain", "tfpose-smoke", "--weights", str(w), "--figure", "nope", *sets])
    assert r.exit_code != 0 and "--figure must be" in r.output
    r = runner.invoke(app, ["explain", "tfpose-smoke", "--weights", str(w), "--joints", "elbow", *sets])
    assert r.exit_code != 0 and "unknown joint" in r.output
