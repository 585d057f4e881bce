"""Position-embedding tables of another input size: the one place where a checkpoint trained at one
``data.input_size`` is fitted to a model built at another (evaluation at unseen resolutions, TransPose Fig. 8 /
ICCV Fig. 5; COCO 256x192 → MPII 256x256 transfer; ``poserepro explain`` at any size).

* A **sine** table is a function of the grid: the model's own table (recomputed for its grid) is kept.
* A **learnable** table ``(L, d)`` is reshaped to its 2-D training grid and resized bilinearly
  (``align_corners=False``) to the model's grid, exactly what
  :class:`~poserepro.models.layers.position.PositionEmbedding2D` does on the fly for an unseen grid.

The training grid is not stored in the table, so it is inferred from ``L`` and the model's grid: the grid of the
same aspect ratio first (a test resolution of the same 4:3 crop), else the same height (the COCO → MPII
transfer), else the same width.
* The **MHSA position tensors** of a BTranspose / BoTNet backbone are fitted by the MHSA module itself
  (:meth:`~poserepro.models.backbones.botnet.GridMHSA.fit_tables`, the rule its ``forward`` applies to an unseen
  grid): the factorised absolute ``pos_w`` / ``pos_h`` are resized linearly along their axis, a relative
  ``(2N−1, d)`` table is read at offset ``k·N/n`` for offset ``k`` of the new ``n``-cell axis
  (:func:`~poserepro.models.backbones.botnet.resize_relative_table`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError


def source_grid(length: int, grid: tuple[int, int]) -> tuple[int, int] | None:
    """The ``(h, w)`` training grid of a learnable table with ``length`` tokens, for a model grid ``grid``
    (``None`` when no candidate fits): same aspect ratio, else same height, else same width."""
    gh, gw = grid
    scale = math.sqrt(length / float(gh * gw))
    h, w = round(gh * scale), round(gw * scale)
    if h * w == length and h * gw == w * gh:
        return h, w
    if length % gh == 0:
        return gh, length // gh
    if length % gw == 0:
        return length // gw, gw
    return None


def resize_learnable_table(table: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of an ``(h*w, d)`` token-major table from ``old_grid`` to ``new_grid`` (``(h, w)``)."""
    d = table.shape[1]
    img = table.t().reshape(1, d, old_grid[0], old_grid[1]).float()
    img = F.interpolate(img, size=new_grid, mode="bilinear", align_corners=False)
    return img.reshape(d, new_grid[0] * new_grid[1]).t().to(table.dtype).contiguous()


def fit_position_tables(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> list[str]:
    """Fit every :class:`PositionEmbedding2D` table and every backbone MHSA position tensor in ``state`` whose shape
    differs from ``model``'s, in place.

    Returns the keys that were fitted. Raises a one-line :class:`CheckpointError` for a learnable table whose
    training grid cannot be inferred (or whose width ``d`` differs), or an MHSA tensor of other heads / width.
    """
    from ..models.layers.position import PositionEmbedding2D

    own = model.state_dict()
    done = []
    for name, m in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if not isinstance(m, PositionEmbedding2D) or key not in state or key not in own:
            continue
        old, new = state[key], own[key]
        if tuple(old.shape) == tuple(new.shape):
            continue
        if m.kind == "sine":
            state[key] = new.detach().clone()
        else:
            grid = source_grid(int(old.shape[0]), m.grid) if old.dim() == 2 else None
            if grid is None or old.shape[1] != new.shape[1]:
                raise CheckpointError(f"{source}: cannot resize the learnable position table {key} of shape "
                                      f"{tuple(old.shape)} to the {m.grid[0]}x{m.grid[1]} grid of this model")
            state[key] = resize_learnable_table(old, grid, m.grid)
        done.append(key)
    return done + _fit_mhsa_tables(model, state, own, source)


def _fit_mhsa_tables(model: nn.Module, state: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                     source: str) -> list[str]:
    """The MHSA part of :func:`fit_position_tables` (each MHSA module fits its own tensors to its grid)."""
    from ..models.backbones.botnet import GridMHSA

    done = []
    for name, m in model.named_modules():
        if not isinstance(m, GridMHSA):
            continue
        keys = {t: f"{name}.{t}" if name else t for t in m.position_tables}
        if not all(k in state and k in own for k in keys.values()):
            continue
        if all(tuple(state[k].shape) == tuple(own[k].shape) for k in keys.values()):
            continue
        with torch.no_grad():
            fitted = m.fit_tables({t: state[k] for t, k in keys.items()})
        for t, k in keys.items():
            if tuple(fitted[t].shape) != tuple(own[k].shape):
                raise CheckpointError(f"{source}: cannot fit the MHSA position tensor {k} of shape "
                                      f"{tuple(state[k].shape)} to the {m.grid[0]}x{m.grid[1]} grid of this model "
                                      f"(it expects {tuple(own[k].shape)}: other heads or width)")
            state[k] = fitted[t].contiguous()
            done.append(k)
    return done
