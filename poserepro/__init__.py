"""poserepro: reproduction suite for transformer-based 2D human pose estimation."""

from __future__ import annotations

import os as _os

# OpenMP threads that busy-wait between parallel regions starve everything else on a small or shared CPU
# (measured on 2 loaded cores: 5.5 s vs 1.1 s per smoke training step). Must be set before torch loads
# its OpenMP runtime; a value the user exported wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402
from .models.registry import create_model, list_models, register_model  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "register_model"]
