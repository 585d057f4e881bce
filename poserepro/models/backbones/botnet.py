"""Bottleneck Transformer (BoTNet, Srinivas et al. 2021) blocks and the BTranspose backbone.

Two multi-head self-attention (MHSA) layers can replace the 3×3 conv of a bottleneck block:

* :class:`BTransposeMHSA` — what the official BTranspose code runs (FACTS §1.2): q/k/v 1×1 convs with bias, a
  *factorised absolute* position embedding (one ``(heads, d_h, 1, W)`` and one ``(heads, d_h, H, 1)`` tensor,
  ``randn`` init, summed by broadcasting), logits ``q_i·k_j + r_i·q_j`` with **no** ``1/√d_h`` scaling.
  Position parameters per block: ``w·(H + W)``; this is the configuration that reproduces every parameter count
  of the BTranspose paper.
* :class:`RelPosMHSA` — the BoTNet paper's relative-position logits: per-axis relative tables ``R_h (2H−1, d_h)``
  and ``R_w (2W−1, d_h)`` shared by the heads, ~N(0, d_h^−½), logits ``q_i·k_j + q_i·(R_h[y_j−y_i] + R_w[x_j−x_i])``
  with ``q`` scaled by ``d_h^−½`` once (lucidrains' port). Position parameters per block: ``(2H−1 + 2W−1)·d_h``,
  so a model using it is *smaller* than the published counts (C2A2 9.503M instead of 9.546M, C3A1 10.069M instead
  of 10.091M, Large 23.774M instead of 23.817M). q/k/v keep their bias so that only the position term differs.

Both take and return ``(B, C, H, W)`` maps; relative→absolute indexing is done with an index table (equivalent to
the pad-flatten-reshape ``rel_to_abs`` trick).

Other input sizes (one rule per kind, used both on the fly in ``forward`` and by ``fit_tables``, through which
:func:`poserepro.weights.position.fit_position_tables` fits a checkpoint trained at another ``data.input_size``):

* the factorised absolute tensors of :class:`BTransposeMHSA` are resized linearly along their axis
  (``align_corners=False``), as TransPose's learnable table is resized bilinearly over its grid;
* a relative table ``(2N−1, d)`` of an ``N``-cell axis becomes ``(2n−1, d)`` for ``n`` cells by reading the row
  of offset ``k`` at offset ``k·N/n`` of the trained table (linear between rows; the edge row beyond ±(N−1)),
  i.e. the offset spanning the same fraction of the image (:func:`resize_relative_table`).

At the training grid both are the identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import NormFactory, batch_norm

MHSAKind = Literal["btranspose", "botnet"]


def _resize_axis(t: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """Linearly resize tensor ``t`` along ``dim`` to length ``n`` (``align_corners=False``)."""
    if t.shape[dim] == n:
        return t
    moved = t.movedim(dim, -1)
    shape = moved.shape
    out = F.interpolate(moved.reshape(1, -1, shape[-1]), size=n, mode="linear", align_corners=False)
    return out.reshape(*shape[:-1], n).movedim(-1, dim)


def resize_relative_table(table: torch.Tensor, n: int) -> torch.Tensor:
    """Relative table ``(2N−1, d)`` of an ``N``-cell axis (row ``k + N − 1`` = offset ``k``) for an ``n``-cell axis.

    Row ``k`` of the result (``−(n−1) ≤ k ≤ n−1``) is the table read at offset ``k·N/n``: linear between its rows,
    its edge row beyond ±(N−1). E.g. ``N = 2 → n = 4`` reads offsets −1.5 … 1.5 in steps of 0.5, i.e. rows
    ``[0, 0, .5, 1, 1.5, 2, 2]``; ``N = 4 → n = 2`` reads rows ``[1, 3, 5]``. ``n = N`` returns ``table``.
    """
    big = (table.shape[0] + 1) // 2
    if n == big:
        return table
    offsets = torch.arange(-(n - 1), n, device=table.device, dtype=torch.float64) * (big / n)
    pos = (offsets + (big - 1)).clamp(0, 2 * big - 2)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=2 * big - 2)
    frac = (pos - lo).to(table.dtype)[:, None]
    return table[lo] * (1 - frac) + table[hi] * frac


class GridMHSA(nn.Module):
    """What both MHSA kinds share: 1×1 query/key/value convs (official names), the training grid, and attention
    that materialises its (head-averaged) map only when ``keep_attention`` is set.

    ``position_tables`` names the parameters tied to the grid; ``fit_tables`` resizes such tensors (of a
    checkpoint trained at another grid) to this module's grid with the same rule ``forward`` uses."""

    position_tables: tuple[str, ...] = ()

    def __init__(self, dim: int, grid: tuple[int, int], heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"MHSA width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.grid = (int(grid[0]), int(grid[1]))
        self.keep_attention = False
        self.last_attn: torch.Tensor | None = None
        self.query = nn.Conv2d(dim, dim, 1)
        self.key = nn.Conv2d(dim, dim, 1)
        self.value = nn.Conv2d(dim, dim, 1)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (B, C, H, W)`` → ``q, k, v`` of shape ``(B, heads, H·W, C/heads)`` (unscaled)."""
        b, c, h, w = x.shape
        nh, dh = self.heads, c // self.heads
        return tuple(m(x).view(b, nh, dh, h * w).transpose(-2, -1) for m in (self.query, self.key, self.value))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
               shape: torch.Size) -> torch.Tensor:
        """``softmax(q·kᵀ + bias)·v`` (no further scaling) back to ``(B, C, H, W)``."""
        if self.keep_attention:
            logits = q @ k.transpose(-2, -1)
            attn = (logits if bias is None else logits + bias).softmax(dim=-1)
            self.last_attn = attn.mean(dim=1).detach()
            out = attn @ v
        elif q.shape[-1] != v.shape[-1] and not torch.jit.is_tracing():
            # SDPA's fused (flash) CPU kernel needs one head width for q, k and v, else it takes the slow math
            # path; zero columns of v give zero output columns, sliced off (the same numbers). Not when traced
            # (fvcore's FLOP count): the model's FLOPs are those of the attention, not of the padding
            dv = v.shape[-1]
            out = F.scaled_dot_product_attention(q, k, F.pad(v, (0, q.shape[-1] - dv)), attn_mask=bias,
                                                 scale=1.0)[..., :dv]
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        return out.transpose(-2, -1).reshape(shape)

    def fit_tables(self, tables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``tables`` (named as ``position_tables``, trained at another grid) resized to this module's grid."""
        raise NotImplementedError


class BTransposeMHSA(GridMHSA):
    """MHSA of the official BTranspose code (see module docstring).

    Args:
        dim: channels ``C`` (split into ``heads`` groups of ``d_h = C / heads``).
        grid: ``(H, W)`` of the training feature map (32×24 for a 256×192 input).
        heads: attention heads.

    ``forward(x (B, C, H, W)) -> (B, C, H, W)``. With ``keep_attention = True`` the head-averaged attention
    ``(B, HW, HW)`` of the last call is kept in ``last_attn`` (dependency areas at the MHSA block).
    """

    def __init__(self, dim: int, grid: tuple[int, int], heads: int = 4) -> None:
        super().__init__(dim, grid, heads)
        dh = dim // heads
        # official names: rel_h spans the width axis, rel_w the height axis (names swapped there; see convert.py)
        self.pos_w = nn.Parameter(torch.randn(1, heads, dh, 1, self.grid[1]))
        self.pos_h = nn.Parameter(torch.randn(1, heads, dh, self.grid[0], 1))

    position_tables = ("pos_w", "pos_h")

    @staticmethod
    def _fit(pos_w: torch.Tensor, pos_h: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _resize_axis(pos_w, w, -1), _resize_axis(pos_h, h, -2)

    def position(self, h: int, w: int) -> torch.Tensor:
        """Position vectors ``(1, heads, d_h, h*w)`` for an ``h × w`` map (resized if not the training grid)."""
        pos_w, pos_h = self._fit(self.pos_w, self.pos_h, h, w)
        return (pos_w + pos_h).flatten(3)

    def fit_tables(self, tables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pos_w, pos_h = self._fit(tables["pos_w"], tables["pos_h"], *self.grid)
        return {"pos_w": pos_w, "pos_h": pos_h}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self.qkv(x)  # (B, nh, L, dh)
        r = self.position(h, w).transpose(-2, -1).expand(b, -1, -1, -1)  # (B, nh, L, dh)
        # logits[i, j] = q_i·k_j + r_i·q_j = [q_i, r_i]·[k_j, q_j]: one attention with doubled key width
        return self.attend(torch.cat((q, r), dim=-1), torch.cat((k, q), dim=-1), v, None, x.shape)


class RelPosMHSA(GridMHSA):
    """BoTNet MHSA with relative position logits (see module docstring).

    ``forward(x (B, C, H, W)) -> (B, C, H, W)``; ``keep_attention`` / ``last_attn`` as in :class:`BTransposeMHSA`.
    """

    def __init__(self, dim: int, grid: tuple[int, int], heads: int = 4) -> None:
        super().__init__(dim, grid, heads)
        dh = dim // heads
        self.rel_height = nn.Parameter(torch.randn(2 * self.grid[0] - 1, dh) * dh**-0.5)
        self.rel_width = nn.Parameter(torch.randn(2 * self.grid[1] - 1, dh) * dh**-0.5)

    position_tables = ("rel_height", "rel_width")

    def fit_tables(self, tables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"rel_height": resize_relative_table(tables["rel_height"], self.grid[0]),
                "rel_width": resize_relative_table(tables["rel_width"], self.grid[1])}

    @staticmethod
    def _abs_index(n: int, device: torch.device) -> torch.Tensor:
        """``idx[i, j] = j − i + n − 1``: the relative-table row for query ``i`` and key ``j``."""
        ar = torch.arange(n, device=device)
        return ar[None, :] - ar[:, None] + n - 1

    def position_logits(self, q: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """``q (B, nh, h, w, dh)`` → relative logits ``(B, nh, h*w, h*w)``."""
        rh = resize_relative_table(self.rel_height, h)[self._abs_index(h, q.device)]  # (h, h', dh)
        rw = resize_relative_table(self.rel_width, w)[self._abs_index(w, q.device)]  # (w, w', dh)
        lh = torch.einsum("bnyxd,ykd->bnyxk", q, rh)  # (B, nh, h, w, h')
        lw = torch.einsum("bnyxd,xkd->bnyxk", q, rw)  # (B, nh, h, w, w')
        logits = lh[..., :, None] + lw[..., None, :]  # (B, nh, h, w, h', w')
        b, nh = q.shape[:2]
        return logits.reshape(b, nh, h * w, h * w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        q = q * (c // self.heads) ** -0.5  # (B, nh, L, dh)
        bias = self.position_logits(q.reshape(b, self.heads, h, w, -1), h, w)
        return self.attend(q, k, v, bias, x.shape)


class BoTBottleneck(nn.Module):
    """The BTranspose bottleneck: 1×1 → [3×3 conv (stride s) | MHSA (+2×2 avg-pool if s=2)] → 1×1 (×4).

    Names follow the official code (``conv1``/``bn1``/``conv2``/``bn2``/``conv3``/``bn3``/``shortcut``; an MHSA
    ``conv2`` is ``Sequential(mhsa[, pool])``). The projection shortcut is a 1×1 conv **with bias** + BN.
    ``(B, C_in, H, W) → (B, 4·planes, H/s, W/s)``.
    """

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, mhsa: MHSAKind | None = None,
        grid: tuple[int, int] | None = None, heads: int = 4, norm: NormFactory | None = None,
    ) -> None:
        super().__init__()
        norm = norm or batch_norm()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = norm(planes)
        if mhsa is None:
            self.conv2: nn.Module = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        else:
            if grid is None:
                raise ValueError("an MHSA block needs the feature grid (H, W)")
            cls = BTransposeMHSA if mhsa == "btranspose" else RelPosMHSA
            layers: list[nn.Module] = [cls(planes, grid, heads)]
            if stride == 2:
                layers.append(nn.AvgPool2d(2, 2))
            self.conv2 = nn.Sequential(*layers)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = norm(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inplanes != out:
            self.shortcut = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride), norm(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


class BoTNet(nn.Module):
    """ResNet-50 stem + bottleneck groups, some of them MHSA groups (BTranspose "CxAy" backbones).

    Args:
        widths: bottleneck width per group (``4·width`` output channels).
        blocks: blocks per group.
        strides: stride of each group's first block (BTranspose: ``(1, 2, 1, 1)`` — one downsampling, to 1/8).
        mhsa_groups: 1-based indices of groups whose blocks use MHSA instead of the 3×3 conv.
        heads: MHSA heads.
        input_size: ``(width, height)`` of the training input, fixing the MHSA position grids.
        mhsa: ``"btranspose"`` (released code) or ``"botnet"`` (relative logits).

    ``forward(x (B, 3, H, W)) -> [(B, 4·widths[-1], H/8, W/8)]`` (a one-element list, like the other backbones).
    """

    def __init__(
        self, widths: Sequence[int], blocks: Sequence[int], strides: Sequence[int], mhsa_groups: Sequence[int],
        heads: int = 4, input_size: tuple[int, int] = (192, 256), mhsa: MHSAKind = "btranspose",
        norm: NormFactory | None = None,
    ) -> None:
        super().__init__()
        if mhsa not in ("btranspose", "botnet"):
            raise ValueError(f"unknown mhsa {mhsa!r}; use btranspose or botnet")
        norm = norm or batch_norm()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        grid = (input_size[1] // 4, input_size[0] // 4)
        stride_total = 4
        inplanes = 64
        for g, (width, n, s) in enumerate(zip(widths, blocks, strides), start=1):
            kind = mhsa if g in mhsa_groups else None
            layers = []
            for i in range(n):
                st = s if i == 0 else 1
                layers.append(BoTBottleneck(inplanes, width, st, kind, grid, heads, norm))
                inplanes = width * 4
                if st == 2:
                    grid = (grid[0] // 2, grid[1] // 2)
                    stride_total *= 2
            self.add_module(f"layer{g}", nn.Sequential(*layers))
        self.num_groups = len(widths)
        self.channels = [inplanes]
        self.strides = [stride_total]

    def mhsa_modules(self) -> list[nn.Module]:
        """Every MHSA layer, in forward order."""
        return [m for m in self.modules() if isinstance(m, GridMHSA)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for g in range(1, self.num_groups + 1):
            x = getattr(self, f"layer{g}")(x)
        return [x]
