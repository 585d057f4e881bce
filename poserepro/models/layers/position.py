"""2-D position embeddings: sine (TransPose / DETR / Deformable-DETR variants), learnable, none.

All embeddings are returned token-major as ``(L, d)`` with ``L = h * w`` in row-major (y, x) order, the order in
which feature maps are flattened by ``x.flatten(2).transpose(1, 2)``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PEKind = Literal["sine", "learnable", "none"]


def sine_embedding(
    h: int,
    w: int,
    d_model: int,
    temperature: float = 10000.0,
    normalize: bool = True,
    offset: float = 0.0,
    scale: float = 2 * math.pi,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Fixed 2-D sine embedding, ``(h * w, d_model)``; first ``d/2`` channels encode y, the rest x.

    Positions are the cumulative sums of a grid of ones (1..h, 1..w). With ``normalize`` they are divided by the
    last value (+``eps``) after subtracting ``offset`` and multiplied by ``scale``. TransPose and DETR use
    ``offset=0``; Deformable DETR uses ``offset=0.5``. Within each axis, even channels hold ``sin`` and odd
    channels ``cos`` of the same frequency (interleaved), frequency ``temperature ** (2 * (i // 2) / (d / 2))``.
    """
    if d_model % 2:
        raise ValueError(f"sine position embedding needs an even d_model, got {d_model}")
    npf = d_model // 2
    y = torch.arange(1, h + 1, dtype=torch.float32)[:, None].expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float32)[None, :].expand(h, w)
    if normalize:
        y = (y - offset) / (h + eps) * scale
        x = (x - offset) / (w + eps) * scale
    dim_t = torch.arange(npf, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    px = x[..., None] / dim_t
    py = y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=-1).flatten(2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=-1).flatten(2)
    return torch.cat((py, px), dim=-1).reshape(h * w, d_model)


class PositionEmbedding2D(nn.Module):
    """Position embedding for an ``h × w`` token grid, ``forward(h, w) -> (h*w, d)`` or ``None``.

    ``kind="sine"`` keeps the table as a *non-trainable parameter* (as TransPose does, so it appears in the
    state dict and in parameter counts) and regenerates it when asked for another grid size (the normalisation
    makes it resolution-free). ``kind="learnable"`` is a trainable ``randn`` table that is bilinearly resized for
    an unseen grid. ``kind="none"`` returns ``None``.
    """

    def __init__(
        self,
        kind: PEKind,
        d_model: int,
        grid: tuple[int, int],
        *,
        temperature: float = 10000.0,
        offset: float = 0.0,
        count_sine: bool = True,
    ) -> None:
        super().__init__()
        if kind not in ("sine", "learnable", "none"):
            raise ValueError(f"unknown position embedding {kind!r}; use sine, learnable or none")
        self.kind: PEKind = kind
        self.d_model = d_model
        self.grid = (int(grid[0]), int(grid[1]))
        self.temperature = temperature
        self.offset = offset
        h, w = self.grid
        if kind == "sine":
            table = sine_embedding(h, w, d_model, temperature, offset=offset)
            if count_sine:
                self.weight = nn.Parameter(table, requires_grad=False)
            else:
                self.register_buffer("weight", table, persistent=False)
        elif kind == "learnable":
            self.weight = nn.Parameter(torch.randn(h * w, d_model))
        else:
            self.weight = None

    def forward(self, h: int, w: int) -> torch.Tensor | None:
        """Embedding for an ``h × w`` grid, ``(h*w, d)``, or ``None`` for ``kind="none"``."""
        if self.weight is None:
            return None
        if (h, w) == self.grid:
            return self.weight
        if self.kind == "sine":
            return sine_embedding(h, w, self.d_model, self.temperature, offset=self.offset).to(self.weight)
        gh, gw = self.grid
        table = self.weight.t().reshape(1, self.d_model, gh, gw)
        table = F.interpolate(table, size=(h, w), mode="bilinear", align_corners=False)
        return table.reshape(self.d_model, h * w).t()

    def extra_repr(self) -> str:
        return f"kind={self.kind}, d_model={self.d_model}, grid={self.grid}"
