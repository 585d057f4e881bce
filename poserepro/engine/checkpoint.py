"""Training checkpoints: save and load the state a run resumes from.

A checkpoint holds model, optimizer, scaler, epoch, recipe and RNG state (and, with validation during training,
the best metric so far). Saving is atomic (:func:`poserepro.io.atomic_torch_save`), so an interrupted save never
corrupts the previous checkpoint; loading never runs code from the file (``weights_only=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..io import atomic_torch_save, load_torch


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` atomically."""
    atomic_torch_save(path, state)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint` (or a plain state dict) with ``weights_only=True``.

    Raises :class:`~poserepro.errors.CheckpointError` for a missing, truncated or non-PyTorch file.
    """
    return load_torch(path, map_location)
