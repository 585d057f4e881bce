"""Multi-scale deformable attention: grid_sample core vs a direct per-point bilinear reference, the gather
sampler and the sample-then-project path vs the per-level grid_sample core (values and gradients),
initialisation, layers."""

from __future__ import annotations

import math

import pytest
import torch

from poserepro.models.layers.deform_attn import (
    DeformableDecoderLayer,
    DeformableEncoder,
    DeformableEncoderLayer,
    MSDeformAttn,
    encoder_reference_points,
    ms_deform_attn_gather,
    ms_deform_attn_sample,
    ms_deform_attn_sample_per_level,
)

SHAPES = [(5, 7), (3, 4), (1, 1), (2, 3)]  # odd sizes, a 1×1 level

pytestmark = pytest.mark.usefixtures("one_thread")  # a loaded 2-core machine: avoid OpenMP spinning


def _bilinear_reference(value, shapes, locations, weights):
    """Loop over every (batch, query, head, level, point): bilinear read at pixel (x·W − 0.5, y·H − 0.5), zero
    outside the map, weighted sum."""
    b, _, n_heads, d_h = value.shape
    lq = locations.shape[1]
    starts = [0]
    for h, w in shapes:
        starts.append(starts[-1] + h * w)
    out = torch.zeros(b, lq, n_heads, d_h, dtype=value.dtype)
    for bi in range(b):
        for q in range(lq):
            for hd in range(n_heads):
                acc = torch.zeros(d_h, dtype=value.dtype)
                for lv, (hh, ww) in enumerate(shapes):
                    fmap = value[bi, starts[lv]:starts[lv + 1], hd].reshape(hh, ww, d_h)
                    for p in range(locations.shape[4]):
                        x, y = locations[bi, q, hd, lv, p].tolist()
                        px, py = x * ww - 0.5, y * hh - 0.5
                        x0, y0 = math.floor(px), math.floor(py)
                        s = torch.zeros(d_h, dtype=value.dtype)
                        for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
                            for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
                                if 0 <= xx < ww and 0 <= yy < hh:
                                    s = s + wy * wx * fmap[yy, xx]
                        acc = acc + weights[bi, q, hd, lv, p] * s
                out[bi, q, hd] = acc
    return out.reshape(b, lq, n_heads * d_h)


def test_sampling_matches_bilinear_reference_with_borders():
    g = torch.Generator().manual_seed(0)
    b, lq, n_heads, d_h, n_points = 2, 5, 2, 3, 4
    s = sum(h * w for h, w in SHAPES)
    value = torch.randn(b, s, n_heads, d_h, generator=g, dtype=torch.float64)
    loc = torch.rand(b, lq, n_heads, len(SHAPES), n_points, 2, generator=g, dtype=torch.float64) * 1.3 - 0.15
    # points exactly on / near the borders and corners
    loc[0, 0, 0, :, 0] = torch.tensor([0.0, 0.0], dtype=torch.float64)
    loc[0, 0, 0, :, 1] = torch.tensor([1.0, 1.0], dtype=torch.float64)
    loc[0, 0, 1, :, 2] = torch.tensor([1e-3, 0.999], dtype=torch.float64)
    loc[1, 1, 0, :, 3] = torch.tensor([-0.02, 0.5], dtype=torch.float64)
    loc[1, 2, 1, :, 0] = torch.tensor([0.5, 1.04], dtype=torch.float64)
    w = torch.rand(b, lq, n_heads, len(SHAPES), n_points, generator=g, dtype=torch.float64)
    w = w / w.sum(dim=(-1, -2), keepdim=True)
    got = ms_deform_attn_sample(value, SHAPES, loc, w)
    ref = _bilinear_reference(value, SHAPES, loc, w)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_sampling_gradcheck():
    g = torch.Generator().manual_seed(1)
    shapes = [(3, 2), (1, 2)]
    value = torch.randn(1, 8, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    # keep points away from pixel-centre kinks where bilinear interpolation is not differentiable
    loc = (torch.rand(1, 3, 2, 2, 2, 2, generator=g, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    w = torch.rand(1, 3, 2, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, lo, ww: ms_deform_attn_sample(v, shapes, lo, ww), (value, loc, w))


def test_deformable_detr_initialisation():
    m = MSDeformAttn(d_model=32, n_levels=3, n_heads=8, n_points=4)
    assert torch.count_nonzero(m.sampling_offsets.weight) == 0
    assert torch.count_nonzero(m.attention_weights.weight) == 0
    assert torch.count_nonzero(m.attention_weights.bias) == 0
    assert torch.count_nonzero(m.value_proj.bias) == 0 and torch.count_nonzero(m.output_proj.bias) == 0
    bias = m.sampling_offsets.bias.detach().view(8, 3, 4, 2)
    # head h points along angle 2πh/8, the larger component scaled to 1, times (point index + 1), all levels equal
    expect_dirs = torch.tensor([[1, 0], [1, 1], [0, 1], [-1, 1], [-1, 0], [-1, -1], [0, -1], [1, -1]],
                               dtype=torch.float32)
    for p in range(4):
        for lv in range(3):
            torch.testing.assert_close(bias[:, lv, p], expect_dirs * (p + 1), atol=1e-5, rtol=0)
    # zero attention weights → uniform attention over L·P
    q = torch.randn(2, 5, 32)
    logits = m.attention_weights(q).view(2, 5, 8, 12).softmax(-1)
    torch.testing.assert_close(logits, torch.full_like(logits, 1 / 12))


def test_module_offsets_normalised_per_level():
    """With zero offsets and uniform weights the module reads each level bilinearly at the reference point."""
    torch.manual_seed(0)
    shapes = [(4, 6), (2, 3)]
    m = MSDeformAttn(d_model=8, n_levels=2, n_heads=2, n_points=2).double()
    torch.nn.init.zeros_(m.sampling_offsets.bias)
    value = torch.randn(1, 30, 8, dtype=torch.float64)
    query = torch.randn(1, 3, 8, dtype=torch.float64)
    ref = torch.rand(1, 3, 2, 2, dtype=torch.float64)
    out, (loc, w) = m(query, ref, value, shapes, need_weights=True)
    torch.testing.assert_close(loc, ref[:, :, None, :, None, :].expand_as(loc))
    v = m.value_proj(value).view(1, 30, 2, 4)
    expect = m.output_proj(_bilinear_reference(v, shapes, loc, w))
    torch.testing.assert_close(out, expect)
    # an offset of one pixel moves the sample by 1/W_l, 1/H_l of the level
    m.sampling_offsets.bias.data.view(2, 2, 2, 2)[..., 0] = 1.0
    _, (loc2, _) = m(query, ref, value, shapes, need_weights=True)
    dx = (loc2 - loc)[..., 0][0, 0, 0, :, 0]
    torch.testing.assert_close(dx, torch.tensor([1 / 6, 1 / 3], dtype=torch.float64))


def test_padding_mask_zeroes_values():
    m = MSDeformAttn(8, 1, 2, 1)
    value = torch.randn(1, 6, 8)
    mask = torch.ones(1, 6, dtype=torch.bool)
    out, _ = m(torch.randn(1, 2, 8), torch.rand(1, 2, 1, 2), value, [(2, 3)], padding_mask=mask)
    torch.testing.assert_close(out, m.output_proj.bias.expand_as(out))


def test_encoder_reference_points_are_pixel_centres():
    ref = encoder_reference_points([(2, 4), (1, 2)], n_levels=2)
    assert ref.shape == (10, 2, 2)
    torch.testing.assert_close(ref[0, 0], torch.tensor([0.125, 0.25]))
    torch.testing.assert_close(ref[7, 1], torch.tensor([0.875, 0.75]))
    torch.testing.assert_close(ref[9, 0], torch.tensor([0.75, 0.5]))


@pytest.mark.parametrize("q2q", [True, False])
def test_layers_shapes_and_q2q_switch(q2q):
    shapes = [(4, 3), (2, 2)]
    enc = DeformableEncoder(DeformableEncoderLayer(16, 32, 0.0, n_levels=2, n_heads=4, n_points=2), 2)
    src = torch.randn(2, 16, 16)
    mem = enc(src, torch.randn(1, 16, 16), shapes)
    assert mem.shape == src.shape
    dec = DeformableDecoderLayer(16, 32, 0.0, n_levels=2, n_heads=4, n_points=2, self_attn=q2q)
    assert (dec.self_attn is not None) == q2q
    out, extras = dec(torch.randn(2, 5, 16), torch.randn(1, 5, 16), torch.rand(2, 5, 2, 2), mem, shapes,
                      need_weights=True)
    assert out.shape == (2, 5, 16)
    assert extras["locations"].shape == (2, 5, 4, 2, 2, 2)
    assert ("q2q" in extras) == q2q


def _edge_locations(shapes, b, lq, n_heads, n_points, g, dtype, nudge=0.0):
    """Random locations well inside and far outside every level, plus points exactly on the map's edge pixel
    centres, on the clamp limits (pixel −1 and W_l / H_l), just inside / outside them and at the corners
    (moved by ``nudge`` pixels: in float32 a point exactly on a kink of the bilinear map may round to either side,
    where the one-sided derivatives differ)."""
    loc = torch.rand(b, lq, n_heads, len(shapes), n_points, 2, generator=g, dtype=dtype) * 3.0 - 1.0
    for lv, (h, w) in enumerate(shapes):
        wh = torch.tensor([w, h], dtype=dtype)
        edges = [(-1.0, -1.0), (-1.0, 0.0), (0.0, -1.0), (w, h), (w - 1, h - 1), (w, 0.0), (-0.5, h - 0.5),
                 (w - 0.5, -0.25), (-1.25, 0.3), (w + 0.01, 0.7), (0.3, h + 2.5), (-0.999, h - 0.001)]
        for i, (px, py) in enumerate(edges):
            loc[i % b, (i // b) % lq, i % n_heads, lv, i % n_points] = (
                torch.tensor([px, py], dtype=dtype) + 0.5 + nudge) / wh
    return loc


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gather_sampler_matches_per_level_grid_sample(dtype):
    """The gather sampler (zero-bordered table, clamped taps, one embedding_bag) against Deformable DETR's
    per-level grid_sample, values and all three gradients, with points outside the maps and on the borders."""
    g = torch.Generator().manual_seed(3)
    shapes = [(4, 8), (2, 4), (1, 2), (3, 5)]  # powers of two (exact edge points) and odd sizes
    b, lq, n_heads, d_h, n_points = 2, 7, 3, 4, 3
    s = sum(h * w for h, w in shapes)
    value = torch.randn(b, s, n_heads, d_h, generator=g, dtype=dtype, requires_grad=True)
    nudge = 0.0 if dtype == torch.float64 else 1e-2
    loc = _edge_locations(shapes, b, lq, n_heads, n_points, g, dtype, nudge).requires_grad_()
    w = torch.rand(b, lq, n_heads, len(shapes), n_points, generator=g, dtype=dtype)
    w = (w / w.sum(dim=(-1, -2), keepdim=True)).requires_grad_()
    grad_out = torch.randn(b, lq, n_heads * d_h, generator=g, dtype=dtype)
    ref = ms_deform_attn_sample_per_level(value, shapes, loc, w)
    ref_grads = torch.autograd.grad(ref, (value, loc, w), grad_out)
    got = ms_deform_attn_gather(value, shapes, loc, w)
    got_grads = torch.autograd.grad(got, (value, loc, w), grad_out)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(got, ref, **tol)
    for a, e in zip(got_grads, ref_grads):
        torch.testing.assert_close(a, e, **tol)
    assert got.abs().max() > 0.1 and ref_grads[1].abs().max() > 0.1  # not vacuous
    with torch.no_grad():  # the dispatcher: no gradient → the gather path
        torch.testing.assert_close(ms_deform_attn_sample(value, shapes, loc, w), ref, **tol)


def test_gather_sampler_float32_relative_error_at_encoder_scale():
    """Float32 at TFPose's encoder shape (3 levels, 8 heads, 4 points): within 1e-6 of the output scale."""
    g = torch.Generator().manual_seed(4)
    shapes = [(8, 6), (4, 3), (2, 2)]
    s = sum(h * w for h, w in shapes)
    value = torch.randn(2, s, 8, 32, generator=g)
    loc = torch.rand(2, s, 1, 3, 1, 2, generator=g) + 0.1 * torch.randn(2, s, 8, 3, 4, 2, generator=g)
    w = torch.rand(2, s, 8, 3, 4, generator=g).softmax(-1)
    ref = ms_deform_attn_sample_per_level(value, shapes, loc, w)
    got = ms_deform_attn_gather(value, shapes, loc, w)
    assert (got - ref).abs().max() <= 1e-6 * ref.abs().max()


def _project_first(m, query, reference_points, value, shapes):
    """Deformable DETR's MSDeformAttn.forward: value_proj over all tokens, per-level grid_sample core."""
    b, lq, _ = query.shape
    h, lv, p = m.n_heads, m.n_levels, m.n_points
    v = m.value_proj(value).view(b, value.shape[1], h, m.d_model // h)
    off = m.sampling_offsets(query).view(b, lq, h, lv, p, 2)
    w = m.attention_weights(query).view(b, lq, h, lv * p).softmax(-1).view(b, lq, h, lv, p)
    if reference_points.shape[-1] == 2:
        norm = torch.tensor([[w_, h_] for h_, w_ in shapes], dtype=query.dtype)
        loc = reference_points[:, :, None, :, None, :] + off / norm[None, None, None, :, None, :]
    else:
        loc = reference_points[:, :, None, :, None, :2] + off / p * reference_points[:, :, None, :, None, 2:] * 0.5
    return m.output_proj(ms_deform_attn_sample_per_level(v, shapes, loc, w))


@pytest.mark.parametrize("lq", [3, 30])  # few queries: sample-then-project; as many as tokens: project first
@pytest.mark.parametrize("ref_dim", [2, 4])
def test_module_paths_match_deformable_detr_forward_and_gradients(lq, ref_dim):
    torch.manual_seed(5)
    shapes = [(4, 6), (2, 3)]
    m = MSDeformAttn(d_model=16, n_levels=2, n_heads=2, n_points=3).double()
    for lin in (m.sampling_offsets, m.attention_weights, m.value_proj):
        torch.nn.init.normal_(lin.weight, std=0.3)
        torch.nn.init.normal_(lin.bias)  # a non-zero value bias: the mass channel of sample-then-project matters
    value = torch.randn(2, 30, 16, dtype=torch.float64, requires_grad=True)
    query = torch.randn(2, lq, 16, dtype=torch.float64, requires_grad=True)
    ref = torch.rand(2, lq, 2, ref_dim, dtype=torch.float64) * 1.4 - 0.2
    if ref_dim == 4:
        ref[..., 2:] = ref[..., 2:].abs() + 0.1
    params = [query, value, *m.parameters()]
    expect = _project_first(m, query, ref, value, shapes)
    g = torch.randn_like(expect)
    expect_grads = torch.autograd.grad(expect, params, g)
    got, _ = m(query, ref, value, shapes)
    got_grads = torch.autograd.grad(got, params, g)
    torch.testing.assert_close(got, expect, rtol=1e-10, atol=1e-10)
    for a, e in zip(got_grads, expect_grads):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)
    with torch.no_grad():  # inference: gather (or sample-then-project) path
        torch.testing.assert_close(m(query, ref, value, shapes)[0], expect, rtol=1e-10, atol=1e-10)
    assert [n for n, _ in m.state_dict().items()] == [
        f"{a}.{b}" for a in ("sampling_offsets", "attention_weights", "value_proj", "output_proj")
        for b in ("weight", "bias")]


def test_gather_sampler_nan_location_gives_nan_like_grid_sample():
    """A diverged (NaN) sampling location makes its query's output NaN, as the per-level core does, and no
    undefined table index is read; the other queries are untouched."""
    g = torch.Generator().manual_seed(6)
    shapes = [(4, 5), (2, 3)]
    value = torch.randn(1, 26, 2, 3, generator=g)
    loc = torch.rand(1, 3, 2, 2, 2, 2, generator=g)
    loc[0, 1, 0, 0, 0, 0] = float("nan")
    w = torch.rand(1, 3, 2, 2, 2, generator=g)
    got, ref = ms_deform_attn_gather(value, shapes, loc, w), ms_deform_attn_sample_per_level(value, shapes, loc, w)
    assert torch.isnan(got[0, 1, :3]).all() and torch.isnan(ref[0, 1, :3]).all()
    keep = ~torch.isnan(ref)
    torch.testing.assert_close(got[keep], ref[keep])
