"""poserepro: reproduction suite for transformer-based 2D human pose estimation."""

from __future__ import annotations

__version__ = "0.1.0"

from .registry import create_model, list_models, register_model  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "register_model"]
