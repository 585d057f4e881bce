"""Multi-scale deformable attention: grid_sample core vs a direct per-point bilinear reference, initialisation,
layers."""

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
    ms_deform_attn_sample,
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
