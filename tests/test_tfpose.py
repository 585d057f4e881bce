"""TFPose: refinement σ(σ⁻¹(prev) + Δ) with detached references, auxiliary head, UDP targets, flip test, pinned
parameter counts and fvcore GFLOPs next to the paper's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poserepro.bench.flops import flops_fvcore
from poserepro.codecs.heatmap import encode_udp
from poserepro.codecs.regression import encode_udp_batch, flip_average
from poserepro.keypoints import COCO_FLIP_PAIRS
from poserepro.models.registry import create_model
from poserepro.models.tfpose import (
    PAPER_GFLOPS_NOTES,
    inverse_sigmoid,
    tfpose_r18_e0,
    tfpose_r18_e6,
    tfpose_r50_e4,
    tfpose_r50_e6,
    tfpose_smoke,
)

# measured parameter counts (training graph, auxiliary head included) and inference-graph fvcore GFLOPs at 256×192
PINNED = {
    "tfpose_r50_e4": (tfpose_r50_e4, 37_285_567, 7.709, 7.7),
    "tfpose_r50_e6": (tfpose_r50_e6, 38_749_951, 9.209, 9.2),
    "tfpose_r18_e0": (tfpose_r18_e0, 21_502_591, 3.599, 3.61),
    "tfpose_r18_e6": (tfpose_r18_e6, 25_730_303, 6.833, 6.77),
}

pytestmark = pytest.mark.usefixtures("one_thread")  # a loaded 2-core machine: avoid OpenMP spinning


@pytest.fixture(scope="module")
def paper_models():
    torch.manual_seed(0)
    return {name: spec[0]().eval() for name, spec in PINNED.items()}


@pytest.mark.parametrize("name", list(PINNED))
def test_parameter_counts_pinned(paper_models, name):
    assert sum(p.numel() for p in paper_models[name].parameters()) == PINNED[name][1]


@pytest.mark.parametrize("name", ["tfpose_r50_e4", "tfpose_r50_e6", "tfpose_r18_e0"])
def test_gflops_pinned_and_near_paper(paper_models, name):
    g = flops_fvcore(paper_models[name], torch.randn(1, 3, 256, 192)) / 1e9
    _, _, ours, paper = PINNED[name]
    assert g == pytest.approx(ours, abs=2e-3)
    assert abs(g - paper) / paper < 0.02
    assert f"{ours:.3f}" in PAPER_GFLOPS_NOTES


@pytest.mark.slow
def test_gflops_384x288(paper_models):
    g = flops_fvcore(paper_models["tfpose_r50_e6"], torch.randn(1, 3, 384, 288)) / 1e9
    assert g == pytest.approx(20.582, abs=2e-3) and abs(g - 20.4) / 20.4 < 0.01


def _batch(b: int, size=(64, 96), seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    joints = torch.rand(b, 17, 2, generator=g) * torch.tensor([float(size[0]), float(size[1])])
    vis = (torch.rand(b, 17, generator=g) > 0.2).float()
    return {"image": torch.randn(b, 3, size[1], size[0], generator=g), "joints": joints, "joints_vis": vis}


@pytest.fixture(scope="module")
def smoke():
    torch.manual_seed(0)
    return tfpose_smoke(input_size=(64, 96))


def test_smoke_forward_backward_and_decode(smoke):
    m = smoke.train()
    batch = _batch(2)
    out = m(batch["image"])
    assert out["coords"].shape == (2, 17, 2) and len(out["aux_coords"]) == 2
    assert out["heatmaps"].shape == (2, 17, 24, 16)
    total, parts = m.loss(out, batch)
    assert {"loss_reg", "loss_reg_d1", "loss_reg_d3", "loss_aux"} <= set(parts)
    assert total.item() == pytest.approx(parts["loss_reg"] + 50 * parts["loss_aux"], rel=1e-5)
    m.zero_grad()
    total.backward()
    assert m.transformer.encoder.layers[0].self_attn.sampling_offsets.weight.grad is not None
    assert m.aux_head.final_layer.weight.grad is not None and m.init_coords.grad is not None
    m.eval()
    with torch.no_grad():
        ev = m(batch["image"])
        assert "heatmaps" not in ev  # the auxiliary head is training-only
        coords, scores = m.decode(ev, m(batch["image"].flip(3)))
    assert coords.shape == (2, 17, 2) and torch.all(scores == 1)
    assert (coords >= 0).all() and (coords[..., 0] <= 64).all() and (coords[..., 1] <= 96).all()


def test_refinement_in_logit_space_with_detached_references():
    torch.manual_seed(0)
    m = tfpose_smoke(input_size=(64, 96)).eval()
    for head in m.coord_embed:  # leave the zero init so that Δ depends on the decoder state
        torch.nn.init.normal_(head.layers[-1].weight, std=0.1)
    deltas: list[torch.Tensor] = []
    hooks = [h.register_forward_hook(lambda _m, _i, o: deltas.append(o)) for h in m.coord_embed]
    out = m(torch.randn(1, 3, 96, 64))
    for h in hooks:
        h.remove()
    layers = list(out["aux_coords"]) + [out["coords"]]
    prev = m.init_coords.sigmoid()[None]
    for y, d in zip(layers, deltas):
        torch.testing.assert_close(y, (inverse_sigmoid(prev) + d).sigmoid())
        prev = y
    # ŷ_2 does not backpropagate into the first layer's offset head: ŷ_1 enters layer 2 detached ...
    m.zero_grad()
    layers[1].sum().backward(retain_graph=True)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.coord_embed[0].parameters())
    assert m.coord_embed[1].layers[0].weight.grad.abs().sum() > 0
    # ... while ŷ_1 trains its head and the learned initial estimate ŷ_0
    m.zero_grad()
    layers[0].sum().backward()
    assert m.coord_embed[0].layers[0].weight.grad.abs().sum() > 0
    assert m.init_coords.grad.abs().sum() > 0


def test_q2q_and_aux_switches():
    torch.manual_seed(0)
    on = tfpose_smoke(input_size=(64, 96))
    off = create_model("tfpose_smoke", input_size=(64, 96), q2q=False, aux_loss=False)
    assert all(layer.self_attn is None for layer in off.transformer.decoder)
    assert off.aux_head is None
    n_on, n_off = (sum(p.numel() for p in mm.parameters()) for mm in (on, off))
    assert n_on > n_off
    batch = _batch(2)
    out = off.train()(batch["image"])
    assert "heatmaps" not in out
    _, parts = off.loss(out, batch)
    assert "loss_aux" not in parts


def test_udp_targets_match_numpy_encoder():
    g = torch.Generator().manual_seed(0)
    joints = torch.rand(3, 17, 2, generator=g) * torch.tensor([80.0, 110.0]) - 5
    vis = (torch.rand(3, 17, generator=g) > 0.3).float()
    hm, w = encode_udp_batch(joints, vis, (72, 96), (18, 24), sigma=2.0)
    for i in range(3):
        ref_hm, ref_w = encode_udp(joints[i].numpy(), vis[i].numpy(), (72, 96), (18, 24), sigma=2.0)
        np.testing.assert_allclose(hm[i].numpy(), ref_hm, atol=1e-6)
        np.testing.assert_allclose(w[i].numpy(), ref_w)


def test_flip_test_of_equivariant_regression_is_identity():
    g = torch.Generator().manual_seed(0)
    coords = torch.rand(2, 17, 2, generator=g)
    perm = list(range(17))
    for a, b in COCO_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    mirrored = coords[:, perm].clone()
    mirrored[..., 0] = 1 - mirrored[..., 0]
    scores = torch.rand(2, 17, generator=g)
    c, s = flip_average(coords, scores, mirrored, scores[:, perm], COCO_FLIP_PAIRS)
    torch.testing.assert_close(c, coords)
    torch.testing.assert_close(s, scores)
    m = tfpose_smoke(input_size=(64, 96))
    c0, _ = m.decode({"coords": coords})
    c1, _ = m.decode({"coords": coords}, {"coords": mirrored})
    torch.testing.assert_close(c0, c1)


def test_position_embedding_is_deformable_detrs():
    """Deformable DETR's sine PE: normalised after a −0.5 offset; plus one learned embedding per level."""
    h, w, d = 3, 2, 64
    ones = torch.ones(h, w)
    y = (ones.cumsum(0) - 0.5) / (h + 1e-6) * 2 * torch.pi
    x = (ones.cumsum(1) - 0.5) / (w + 1e-6) * 2 * torch.pi
    dim_t = 10000 ** (2 * (torch.arange(d // 2) // 2) / (d // 2))
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=3).flatten(2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=3).flatten(2)
    ref = torch.cat((py, px), dim=2).reshape(h * w, d)
    m = tfpose_smoke(input_size=(64, 96))
    torch.testing.assert_close(m.transformer._pos(h, w, torch.zeros(1)), ref, atol=1e-5, rtol=1e-5)
    assert m.transformer.level_embed.shape == (3, 64)


def test_bench_paper_numbers():
    """`poserepro bench` rows for TFPose carry the paper's GFLOPs (fvcore is our counter for them)."""
    from poserepro.bench.paper_numbers import paper_numbers

    for name in ("tfpose_r50_e4", "tfpose_r50_e6"):
        row = paper_numbers(name)
        assert row is not None and row.gflops == PINNED[name][3] and row.gflops_convention == "fvcore"
    assert paper_numbers("tfpose_r50_e6", (384, 288)).gflops == 20.4
    assert paper_numbers("tfpose_r50_e4", (384, 288)) is None
