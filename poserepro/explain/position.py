"""Cosine similarity of a position-embedding table (TransPose v1 Appendix A, Fig. 9): for every pair of grid
locations the cosine of their embedding vectors; the map of location (y, x) is its row reshaped to the grid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import PoseReproError
from .common import pyplot, save_figure


@dataclass
class PositionSimilarity:
    """``similarity``: ``(L, L)`` cosine similarities, ``L = h·w`` in row-major (y, x) order; ``grid``: ``(h, w)``;
    ``kind``: the table's kind (``learnable`` / ``sine``)."""

    similarity: np.ndarray
    grid: tuple[int, int]
    kind: str

    def map_of(self, y: int, x: int) -> np.ndarray:
        """The ``(h, w)`` similarity map of grid location ``(y, x)``."""
        h, w = self.grid
        return self.similarity[y * w + x].reshape(h, w)


@torch.no_grad()
def position_similarity(model: nn.Module) -> PositionSimilarity:
    """Cosine similarities of the model's stored position-embedding table (``model.pos_embed``, TransPose /
    BTranspose): ``cos(e_i, e_j) = e_i·e_j / (|e_i| |e_j|)`` over its training grid."""
    pe = getattr(model, "pos_embed", None)
    weight = getattr(pe, "weight", None)
    if pe is None or not hasattr(pe, "grid"):
        raise PoseReproError(f"{type(model).__name__} has no 2-D position-embedding table; use a TransPose or "
                             "BTranspose model")
    if weight is None:
        raise PoseReproError("the model has no position embedding (pos_embed none): nothing to compare")
    table = weight.detach().float()
    unit = table / table.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = (unit @ unit.t()).clamp(-1.0, 1.0)
    return PositionSimilarity(sim.numpy(), (int(pe.grid[0]), int(pe.grid[1])), str(pe.kind))


def render_position_similarity(sim: PositionSimilarity, out: str | Path, step: int = 2, caption: str = "",
                               dpi: int = 100) -> Path:
    """A grid of maps: the panel in row y, column x is the similarity map of location (y, x); every ``step``-th
    location is shown (the paper shows every 4th of 32×24). PNG, atomically."""
    plt = pyplot()
    h, w = sim.grid
    ys, xs = list(range(0, h, step)), list(range(0, w, step))
    fig, axes = plt.subplots(len(ys), len(xs), figsize=(0.55 * len(xs) + 0.4, 0.55 * len(ys) + 0.6),
                             squeeze=False)
    for r, y in enumerate(ys):
        for c, x in enumerate(xs):
            ax = axes[r][c]
            ax.imshow(sim.map_of(y, x), cmap="viridis", vmin=-1.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(str(y), fontsize=5)
            if r == 0:
                ax.set_title(str(x), fontsize=5)
    fig.suptitle(f"{sim.kind} PE, cosine similarity ({h}x{w}; panel y, x)", fontsize=7)
    fig.subplots_adjust(left=0.04, right=0.99, top=0.9, bottom=0.07, wspace=0.05, hspace=0.05)
    return save_figure(fig, out, caption, dpi)


def position_numbers(sim: PositionSimilarity, step: int) -> dict:
    """The numbers behind the figure: the full ``(L, L)`` similarity matrix and the grid."""
    return {"figure": "position", "kind": sim.kind, "grid": list(sim.grid), "step": step,
            "similarity": sim.similarity}
