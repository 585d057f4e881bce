"""What every explain figure shares: the crop as RGB, the caption line, atomic PNG and JSON writes, joint
selection by name or index, and a plain loop over the crops of a split."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.coco import IMAGENET_MEAN, IMAGENET_STD
from ..errors import PoseReproError
from ..io import atomic_write_figure, atomic_write_json


def crop_rgb(image: torch.Tensor) -> np.ndarray:
    """A normalised crop ``(3, H, W)`` back to an RGB array ``(H, W, 3)`` in ``[0, 1]`` for drawing."""
    arr = image.detach().float().cpu().numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(arr, 0.0, 1.0)


def pyplot():  # noqa: ANN201 - matplotlib's pyplot module
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: str | Path, caption: str, dpi: int = 100) -> Path:
    """Put ``caption`` as one line under the figure, write it atomically as PNG and close it."""
    import textwrap

    plt = pyplot()
    width_in, height_in = fig.get_size_inches()
    chars = max(40, int(width_in * 72 / (6 * 0.55)))  # 6-pt characters across the figure, a little margin
    lines = textwrap.wrap(caption, chars) or [""]
    fig.text(0.5, 0.004, "\n".join(lines), ha="center", va="bottom", fontsize=6)
    need = (len(lines) * 8 + 4) / 72 / height_in  # 8 pt per caption line
    if fig.subplotpars.bottom < need:
        fig.subplots_adjust(bottom=need)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_figure(out, fig, dpi=dpi)
    plt.close(fig)
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def write_numbers(path: str | Path, numbers: dict[str, Any]) -> Path:
    """The numbers behind a figure as JSON (arrays as nested lists), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, numbers, indent=None, default=_jsonable)
    return path


def select_joints(spec: Sequence[str] | None, names: Sequence[str], num_joints: int) -> tuple[int, ...]:
    """Joint indices from names or 0-based indices (``None`` or empty = all ``num_joints``)."""
    if not spec:
        return tuple(range(num_joints))
    out: list[int] = []
    for item in spec:
        item = item.strip()
        if item.isdigit():
            j = int(item)
        elif item in names:
            j = list(names).index(item)
        else:
            raise PoseReproError(f"unknown joint {item!r}: use an index 0..{num_joints - 1} or one of "
                                 f"{', '.join(names)}")
        if not 0 <= j < num_joints:
            raise PoseReproError(f"joint index {j} is out of range 0..{num_joints - 1}")
        out.append(j)
    return tuple(out)


def joint_name(names: Sequence[str], j: int) -> str:
    """The name of joint ``j`` (its index when the layout has no names)."""
    return names[j] if j < len(names) else str(j)


def iterate_crops(dataset: Dataset, batch_size: int = 32, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Batches ``{"image" (B, 3, H, W), "joints", ...}`` of the first ``limit`` crops of ``dataset`` (all by
    default), in order, loaded in this process."""
    n = len(dataset) if limit is None else min(limit, len(dataset))  # type: ignore[arg-type]
    if n <= 0:
        raise PoseReproError("no persons to average over: the split is empty (or --max-persons is 0)")
    subset = torch.utils.data.Subset(dataset, range(n))
    yield from DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=0)
