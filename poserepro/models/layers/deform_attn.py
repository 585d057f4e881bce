"""Multi-scale deformable attention (Zhu et al., Deformable DETR) in pure PyTorch, and the deformable
encoder / decoder layers built on it (post-norm, Deformable-DETR layout and parameter names).

Sampling uses :func:`torch.nn.functional.grid_sample` (bilinear, zero padding, ``align_corners=False``), the same
semantics as the official CUDA kernel: a normalised location ``(x, y) ∈ [0, 1]²`` of a level of size
``(H_l, W_l)`` reads the feature map at pixel coordinates ``(x·W_l − 0.5, y·H_l − 0.5)`` (pixel centres at
``i + 0.5``), bilinearly, and values outside the map are zero.

Three implementations of the sampling give the same values to float rounding (``tests/test_deform_attn.py``):
Deformable DETR's per-level ``grid_sample`` core (:func:`ms_deform_attn_sample_per_level`, used for training and
traced graphs), a gather of the four bilinear taps of every point from zero-bordered value maps with one
``embedding_bag`` (:func:`ms_deform_attn_gather`, inference: no ``(B·H, d_h, Lq, L·P)`` samples tensor, no layout
copies), and, for few queries, sampling before ``value_proj`` (:meth:`MSDeformAttn._sample_then_project`).

Shapes: batch-first. ``spatial_shapes`` is a list of ``(H_l, W_l)`` python ints (no device sync); the flattened
value sequence is the levels' row-major maps concatenated in that order.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiheadAttention
from .dropout import Dropout
from .transformer import Activation, _act

SpatialShapes = Sequence[tuple[int, int]]


def ms_deform_attn_sample_per_level(
    value: torch.Tensor,
    spatial_shapes: SpatialShapes,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The core of multi-scale deformable attention as Deformable DETR's pure-PyTorch code computes it: one
    :func:`~torch.nn.functional.grid_sample` per level, the samples stacked, weighted and summed.

    Args:
        value: ``(B, S, H, d_h)`` with ``S = Σ_l H_l·W_l`` (heads split).
        spatial_shapes: ``[(H_l, W_l)]`` for the ``L`` levels.
        sampling_locations: ``(B, Lq, H, L, P, 2)`` normalised ``(x, y)`` in ``[0, 1]`` (may fall outside).
        attention_weights: ``(B, Lq, H, L, P)`` (already normalised over ``L·P``).

    Returns:
        ``(B, Lq, H·d_h)``.
    """
    b, _, n_heads, d_h = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    sizes = [h * w for h, w in spatial_shapes]
    per_level = value.split(sizes, dim=1)
    grids = 2.0 * sampling_locations - 1.0
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        # (B, H_l·W_l, H, d_h) -> (B·H, d_h, H_l, W_l)
        v = per_level[lvl].permute(0, 2, 3, 1).reshape(b * n_heads, d_h, h, w)
        # (B, Lq, H, P, 2) -> (B·H, Lq, P, 2)
        g = grids[:, :, :, lvl].transpose(1, 2).reshape(b * n_heads, lq, n_points, 2)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    # (B·H, d_h, Lq, L·P)
    stacked = torch.stack(sampled, dim=-2).flatten(-2)
    weights = attention_weights.transpose(1, 2).reshape(b * n_heads, 1, lq, n_levels * n_points)
    out = (stacked * weights).sum(-1)  # (B·H, d_h, Lq)
    return out.view(b, n_heads * d_h, lq).transpose(1, 2)


def zero_bordered_table(x: torch.Tensor, spatial_shapes: SpatialShapes) -> torch.Tensor:
    """``x (B, S, C)`` with every level's ``(H_l, W_l)`` map given a zero border, one pixel before and two after
    in each direction: ``(B, S', C)``, ``S' = Σ_l (H_l + 3)(W_l + 3)``, levels in order, each row-major; pixel
    ``(i, j)`` of level ``l`` is row ``start'_l + (i + 1)(W_l + 3) + j + 1``."""
    b, _, c = x.shape
    table = x.new_zeros(b, sum((h + 3) * (w + 3) for h, w in spatial_shapes), c)
    src = dst = 0
    for h, w in spatial_shapes:
        n = (h + 3) * (w + 3)
        table[:, dst:dst + n].view(b, h + 3, w + 3, c)[:, 1:h + 1, 1:w + 1].copy_(
            x[:, src:src + h * w].view(b, h, w, c))
        src, dst = src + h * w, dst + n
    return table


def bilinear_taps(
    spatial_shapes: SpatialShapes, pixels: torch.Tensor, attention_weights: torch.Tensor,
    rows_per_pixel: int, head_rows: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The four bilinear taps of every sampling point as rows of a :func:`zero_bordered_table`, and their weights.

    ``pixels (B, Lq, H, L, P, 2)`` are the points' pixel coordinates on their level, ``(x·W_l − 0.5,
    y·H_l − 0.5)`` for a normalised ``(x, y)`` (``grid_sample`` with ``align_corners=False``). They are clamped to
    ``[−1, W_l] × [−1, H_l]``: a point further out has all four taps outside the map both before and after the
    clamp, so it still reads exactly zero with zero gradient, and inside that range nothing changes; the taps of
    a clamped point lie in the border, and taps outside the map read its zeros, which is ``grid_sample``'s zero
    padding (values and gradients alike). The table's rows are ``(b, pixel, r)`` for ``r < rows_per_pixel``;
    with ``head_rows`` head ``h`` reads row ``r = h`` (heads split into rows, ``rows_per_pixel = H``), otherwise
    ``r = 0`` (one shared row per pixel).

    Returns ``(index (B·Lq·H, L·P·4), weight (B·Lq·H, L·P·4))``: weight = attention weight × bilinear weight.
    """
    b, lq, n_heads, n_levels, n_points, _ = pixels.shape
    dev = pixels.device
    padded = [(h + 3) * (w + 3) for h, w in spatial_shapes]
    sp = sum(padded)
    r = rows_per_pixel
    itype = torch.int32 if b * sp * r < 2**31 else torch.int64
    wh = torch.tensor([[w, h] for h, w in spatial_shapes], device=dev, dtype=pixels.dtype)[:, None]  # (L, 1, 2)
    pix = torch.clamp(pixels, min=torch.full_like(wh, -1.0), max=wh)
    # in [−1, W_l]: the far taps reach W_l + 1, inside the border; a NaN point reads a valid row with a NaN
    # weight (NaN out, as grid_sample gives) instead of an undefined index
    top_left = torch.nan_to_num(pix.detach().floor(), nan=-1.0)
    frac = pix - top_left
    stride = [w + 3 for _, w in spatial_shapes]
    mult = torch.tensor([[r, k * r] for k in stride], device=dev, dtype=itype)[:, None]  # (L, 1, 2)
    lin = top_left.to(itype) * mult
    lin = lin[..., 0] + lin[..., 1]  # (B, Lq, H, L, P)
    first, acc = [], 0
    for k, n in zip(stride, padded):
        first.append(acc + k + 1)  # the bordered map's pixel (0, 0): one row and one column in
        acc += n
    corner = torch.tensor([[(first[i] + k) * r for k in (0, 1, stride[i], stride[i] + 1)] for i in range(n_levels)],
                          device=dev, dtype=itype)  # (L, 4): the taps (y0, x0), (y0, x0+1), (y0+1, x0), (y0+1, x0+1)
    base = (torch.arange(b, device=dev, dtype=itype) * (sp * r)).view(b, 1, 1, 1)
    if head_rows:
        base = base + torch.arange(n_heads, device=dev, dtype=itype).view(1, n_heads, 1, 1)
    const = (base + corner).view(b, 1, -1, n_levels, 1, 4)
    index = (lin[..., None] + const).view(b * lq * n_heads, n_levels * n_points * 4)
    both = torch.stack([1.0 - frac, frac], dim=-2)  # (…, 2: near / far tap, 2: x / y)
    wy = both[..., 1] * attention_weights[..., None]
    weight = (wy[..., :, None] * both[..., None, :, 0]).view(b * lq * n_heads, n_levels * n_points * 4)
    return index, weight


def level_pixels(spatial_shapes: SpatialShapes, sampling_locations: torch.Tensor) -> torch.Tensor:
    """Normalised ``(B, Lq, H, L, P, 2)`` locations → pixel coordinates ``(x·W_l − 0.5, y·H_l − 0.5)``."""
    wh = torch.tensor([[w, h] for h, w in spatial_shapes], device=sampling_locations.device,
                      dtype=sampling_locations.dtype)[:, None]
    return sampling_locations * wh - 0.5


def gather_sample(
    value: torch.Tensor, spatial_shapes: SpatialShapes, pixels: torch.Tensor, attention_weights: torch.Tensor,
) -> torch.Tensor:
    """:func:`ms_deform_attn_gather` on pixel coordinates (:func:`level_pixels`); ``value (B, S, H, d_h)``."""
    b, _, n_heads, d_h = value.shape
    lq = pixels.shape[1]
    table = zero_bordered_table(value.reshape(b, -1, n_heads * d_h), spatial_shapes)
    index, weight = bilinear_taps(spatial_shapes, pixels, attention_weights, n_heads, True)
    out = F.embedding_bag(index, table.view(-1, d_h), mode="sum", per_sample_weights=weight.to(table.dtype))
    return out.view(b, lq, n_heads * d_h)


def ms_deform_attn_gather(
    value: torch.Tensor,
    spatial_shapes: SpatialShapes,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """:func:`ms_deform_attn_sample_per_level`'s result computed as one weighted gather: the value maps get a zero
    border (:func:`zero_bordered_table`), every sampling point becomes its four taps (:func:`bilinear_taps`) and
    one :func:`~torch.nn.functional.embedding_bag` (``mode="sum"``, ``per_sample_weights``) sums the
    ``L·P·4`` weighted rows of each ``(batch, query, head)``. Nothing of size ``(B·H, d_h, Lq, L·P)`` is built
    and no layout copies of the samples are made. Same shapes as :func:`ms_deform_attn_sample_per_level`;
    differentiable (``embedding_bag``'s backward sorts the taps, so training uses the per-level path for large
    query sets, see :func:`ms_deform_attn_sample`)."""
    return gather_sample(value, spatial_shapes, level_pixels(spatial_shapes, sampling_locations), attention_weights)


def ms_deform_attn_sample(
    value: torch.Tensor,
    spatial_shapes: SpatialShapes,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """The core of multi-scale deformable attention: bilinear sampling + weighted sum (arguments and shapes as
    :func:`ms_deform_attn_sample_per_level`).

    Without gradients (inference) this is :func:`ms_deform_attn_gather`; when a gradient is needed it is
    :func:`ms_deform_attn_sample_per_level` (``grid_sample``'s backward is faster than ``embedding_bag``'s, which
    sorts the millions of taps of an encoder layer), and also while tracing (FLOP counts and exports see
    Deformable DETR's ``grid_sample`` graph). Both compute the same values to float rounding.
    """
    needs_grad = torch.is_grad_enabled() and (
        value.requires_grad or sampling_locations.requires_grad or attention_weights.requires_grad)
    if needs_grad or torch.jit.is_tracing():
        return ms_deform_attn_sample_per_level(value, spatial_shapes, sampling_locations, attention_weights)
    return ms_deform_attn_gather(value, spatial_shapes, sampling_locations, attention_weights)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention with Deformable-DETR parameter names and initialisation.

    Args:
        d_model: width ``d``.
        n_levels: feature levels ``L``.
        n_heads: heads ``H`` (``d`` divisible by ``H``).
        n_points: sampling points ``P`` per head and level.

    Each query predicts ``H·L·P`` offsets (``sampling_offsets``) and attention logits (``attention_weights``,
    softmax jointly over ``L·P`` per head). Initialisation: offset weights 0, offset bias = the head's direction
    ``(cos θ_h, sin θ_h)``, ``θ_h = 2πh/H``, scaled so its largest component is 1, times ``p + 1`` for point ``p``
    (same for every level); attention weights and bias 0 (uniform attention); value / output projections
    Xavier-uniform with zero bias.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The Deformable-DETR initialisation (see the class docstring)."""
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        direction = torch.stack([theta.cos(), theta.sin()], dim=-1)
        direction = direction / direction.abs().amax(dim=-1, keepdim=True)
        scale = torch.arange(1, self.n_points + 1, dtype=torch.float32)
        bias = direction[:, None, None, :] * scale[None, None, :, None]  # (H, 1, P, 2)
        bias = bias.expand(self.n_heads, self.n_levels, self.n_points, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value: torch.Tensor,
        spatial_shapes: SpatialShapes,
        padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Attend ``query (B, Lq, d)`` to the flattened multi-level ``value (B, S, d)``.

        Args:
            reference_points: ``(B, Lq, L, 2)`` normalised ``(x, y)`` per level, or ``(B, Lq, L, 4)`` boxes
                ``(cx, cy, w, h)`` (offsets are then scaled by ``w, h / (2P)``).
            spatial_shapes: ``[(H_l, W_l)]``.
            padding_mask: ``(B, S)``, ``True`` at padded positions (their values are zeroed).
            need_weights: also return ``(sampling_locations (B, Lq, H, L, P, 2), attention_weights
                (B, Lq, H, L, P))`` for visualisation.

        Returns:
            ``(out (B, Lq, d), None | (locations, weights))``.

        Three ways to the same values (float rounding apart): few queries against many value tokens (the decoder)
        sample the unprojected values and project the samples (:meth:`_sample_then_project`); otherwise
        ``value_proj`` runs over all tokens and the samples are gathered (:func:`gather_sample`) when no gradient
        is needed, or taken by Deformable DETR's per-level ``grid_sample`` core when one is (its backward is the
        faster one). Traced graphs always take the last (Deformable DETR's graph for FLOP counts and exports).
        """
        b, lq, _ = query.shape
        s = value.shape[1]
        if sum(h * w for h, w in spatial_shapes) != s:
            raise ValueError(f"spatial_shapes {list(spatial_shapes)} do not add up to the value length {s}")
        h, lv, p = self.n_heads, self.n_levels, self.n_points
        if reference_points.shape[-1] not in (2, 4):
            raise ValueError(f"reference_points must end in 2 or 4 values, got {reference_points.shape[-1]}")
        offsets = self.sampling_offsets(query).view(b, lq, h, lv, p, 2)
        weights = self.attention_weights(query).view(b, lq, h, lv * p).softmax(-1).view(b, lq, h, lv, p)
        # traced graphs (fvcore FLOP counts, TorchScript / ONNX export) keep Deformable DETR's computation
        canonical = torch.jit.is_tracing()
        few_queries = (not canonical and padding_mask is None
                       and lq * (h * lv * p * 4 + self.d_model) < s * self.d_model)
        grad = canonical or (torch.is_grad_enabled() and (offsets.requires_grad or value.requires_grad))
        locations = None
        if need_weights or (grad and not few_queries):
            locations = self._locations(reference_points, offsets, spatial_shapes)
        if few_queries or not grad:
            pixels = self._pixels(reference_points, offsets, spatial_shapes)
        if few_queries:
            sampled = self._sample_then_project(value, spatial_shapes, pixels, weights)
        else:
            v = self.value_proj(value)
            if padding_mask is not None:
                v = v.masked_fill(padding_mask[..., None], 0.0)
            v = v.view(b, s, h, self.d_model // h)
            if grad:
                sampled = ms_deform_attn_sample_per_level(v, spatial_shapes, locations, weights)
            else:
                sampled = gather_sample(v, spatial_shapes, pixels, weights)
        out = self.output_proj(sampled)
        return out, ((locations, weights) if need_weights else None)

    def _locations(self, reference_points: torch.Tensor, offsets: torch.Tensor,
                   spatial_shapes: SpatialShapes) -> torch.Tensor:
        """Normalised sampling locations ``(B, Lq, H, L, P, 2)`` (Deformable DETR's formula)."""
        p = self.n_points
        if reference_points.shape[-1] == 2:
            norm = torch.tensor([[w_, h_] for h_, w_ in spatial_shapes], dtype=offsets.dtype, device=offsets.device)
            return reference_points[:, :, None, :, None, :] + offsets / norm[None, None, None, :, None, :]
        return reference_points[:, :, None, :, None, :2] + offsets / p * reference_points[:, :, None, :, None, 2:] * 0.5

    def _pixels(self, reference_points: torch.Tensor, offsets: torch.Tensor,
                spatial_shapes: SpatialShapes) -> torch.Tensor:
        """The locations' pixel coordinates on their levels (:func:`level_pixels`); for point references directly
        ``offset + ref·(W_l, H_l) − 0.5`` (an offset is in pixels of its level), one pass over the offsets."""
        if reference_points.shape[-1] == 2:
            wh = torch.tensor([[w_, h_] for h_, w_ in spatial_shapes], dtype=offsets.dtype, device=offsets.device)
            centre = reference_points * wh - 0.5  # (B, Lq, L, 2): small
            return offsets + centre[:, :, None, :, None, :]
        return level_pixels(spatial_shapes, self._locations(reference_points, offsets, spatial_shapes))

    def _sample_then_project(
        self, value: torch.Tensor, spatial_shapes: SpatialShapes, pixels: torch.Tensor, weights: torch.Tensor,
    ) -> torch.Tensor:
        """``ms_deform_attn_sample(value_proj(value))`` for few queries, with the projection moved after the
        sampling (both are linear): each ``(batch, query, head)`` gathers its ``L·P·4`` weighted taps of the
        unprojected ``(d + 1)``-wide rows (``value`` and a channel of ones, zero on the border, whose sample is the
        weight mass that multiplies the bias), then applies its head's rows of ``value_proj``. Costs
        ``Lq·(H·L·P·4 + d)·d`` instead of ``S·d²`` (the decoder: 17 queries against ~1,000 memory tokens)."""
        b, s, d = value.shape
        lq, n_heads = pixels.shape[1], self.n_heads
        table = zero_bordered_table(torch.cat([value, value.new_ones(b, s, 1)], dim=-1), spatial_shapes)
        index, tap_w = bilinear_taps(spatial_shapes, pixels, weights, 1, False)
        taps = F.embedding_bag(index, table.view(-1, d + 1), mode="sum", per_sample_weights=tap_w.to(table.dtype))
        proj = torch.cat([self.value_proj.weight, self.value_proj.bias[:, None]], dim=1)
        proj = proj.view(n_heads, d // n_heads, d + 1).to(taps.dtype)
        out = torch.einsum("nhk,hjk->nhj", taps.view(b * lq, n_heads, d + 1), proj)
        return out.reshape(b, lq, d)


def _ffn_act(act: object, x: torch.Tensor) -> torch.Tensor:
    """The FFN activation; ReLU in place on the fresh ``linear1`` output (its backward needs only the result)."""
    return torch.relu_(x) if act is F.relu else act(x)  # type: ignore[operator]


def encoder_reference_points(
    spatial_shapes: SpatialShapes, n_levels: int, device: torch.device | None = None
) -> torch.Tensor:
    """Pixel-centre reference points of every token for every level, ``(S, L, 2)`` normalised ``(x, y)``.

    With unpadded inputs (all valid ratios 1, as for top-down crops) the point of a token is its own pixel centre
    ``((j + 0.5) / W_l, (i + 0.5) / H_l)``, repeated for each of the ``n_levels`` levels it samples from.
    """
    refs = []
    for h, w in spatial_shapes:
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        refs.append(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1))
    ref = torch.cat(refs, dim=0)
    return ref[:, None, :].expand(ref.shape[0], n_levels, 2)


class DeformableEncoderLayer(nn.Module):
    """Post-norm deformable encoder layer: ``x = LN(x + MSDA(x+pos, ref, x)); x = LN(x + FFN(x))``."""

    def __init__(
        self, d_model: int = 256, dim_feedforward: int = 1024, dropout: float = 0.1, activation: Activation = "relu",
        n_levels: int = 4, n_heads: int = 8, n_points: int = 4,
    ) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.activation = _act(activation)
        self.dropout2 = Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout3 = Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor | None, reference_points: torch.Tensor,
        spatial_shapes: SpatialShapes, padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``src (B, S, d)``, ``pos (B|1, S, d)``, ``reference_points (B|1, S, L, 2)`` → ``(B, S, d)``."""
        q = src if pos is None else src + pos
        ref = reference_points.expand(src.shape[0], *reference_points.shape[1:])
        src2, _ = self.self_attn(q, ref, src, spatial_shapes, padding_mask)
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout2(_ffn_act(self.activation, self.linear1(src))))
        return self.norm2(src + self.dropout3(src2))


class DeformableEncoder(nn.Module):
    """``num_layers`` clones of a :class:`DeformableEncoderLayer` (no final norm)."""

    def __init__(self, layer: DeformableEncoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor | None, spatial_shapes: SpatialShapes,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``src (B, S, d)`` → memory ``(B, S, d)``."""
        if not self.layers:
            return src
        n_levels = self.layers[0].self_attn.n_levels
        ref = encoder_reference_points(spatial_shapes, n_levels, src.device).to(src.dtype)[None]
        out = src
        for layer in self.layers:
            out = layer(out, pos, ref, spatial_shapes, padding_mask)
        return out


class DeformableDecoderLayer(nn.Module):
    """Post-norm deformable decoder layer (Deformable-DETR order):

    1. query self-attention ``q = k = tgt + query_pos, v = tgt`` → add & LN (``norm2``; skipped with
       ``self_attn=False``),
    2. deformable cross-attention to the memory with query ``tgt + query_pos`` around the reference points → add &
       LN (``norm1``),
    3. FFN → add & LN (``norm3``).
    """

    def __init__(
        self, d_model: int = 256, dim_feedforward: int = 1024, dropout: float = 0.1, activation: Activation = "relu",
        n_levels: int = 4, n_heads: int = 8, n_points: int = 4, self_attn: bool = True,
    ) -> None:
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn: MultiheadAttention | None = None
        if self_attn:
            self.self_attn = MultiheadAttention(d_model, n_heads, dropout=dropout)
            self.dropout2 = Dropout(dropout)
            self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.activation = _act(activation)
        self.dropout3 = Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout4 = Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self, tgt: torch.Tensor, query_pos: torch.Tensor | None, reference_points: torch.Tensor,
        memory: torch.Tensor, spatial_shapes: SpatialShapes, padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``tgt (B, Q, d)``, ``query_pos (B|1, Q, d)``, ``reference_points (B, Q, L, 2|4)``, ``memory (B, S, d)``.

        Returns ``(out (B, Q, d), extras)``; with ``need_weights`` ``extras`` holds ``q2q`` (B, Q, Q) attention and
        the deformable ``locations`` / ``weights``.
        """
        extras: dict[str, torch.Tensor] = {}
        if self.self_attn is not None:
            q = k = tgt if query_pos is None else tgt + query_pos
            tgt2, attn = self.self_attn(q, k, tgt, need_weights=need_weights)
            if attn is not None:
                extras["q2q"] = attn
            tgt = self.norm2(tgt + self.dropout2(tgt2))
        q = tgt if query_pos is None else tgt + query_pos
        tgt2, sampling = self.cross_attn(q, reference_points, memory, spatial_shapes, padding_mask, need_weights)
        if sampling is not None:
            extras["locations"], extras["weights"] = sampling
        tgt = self.norm1(tgt + self.dropout1(tgt2))
        tgt2 = self.linear2(self.dropout3(_ffn_act(self.activation, self.linear1(tgt))))
        return self.norm3(tgt + self.dropout4(tgt2)), extras
