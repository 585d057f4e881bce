"""A registry of named models: ``register_model``, ``create_model``, ``list_models``.

Each paper variant is a small function decorated with :func:`register_model` that calls one private builder
with explicit arguments; ``create_model(name, **overrides)`` forwards keyword overrides to it. Importing this
module imports its package, :mod:`poserepro.models`, first, and that registers every model.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from ..errors import PoseReproError, UnknownNameError, suggest

_MODELS: dict[str, Callable[..., nn.Module]] = {}
F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Register ``fn`` under its ``__name__``; it must return an ``nn.Module``."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} registered twice")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a shell-style ``pattern`` (e.g. ``"transpose_*"``)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The builder function registered as ``name`` (hyphens are accepted for underscores)."""
    key = name.replace("-", "_")
    if key not in _MODELS:
        raise UnknownNameError(f"unknown model {name!r}{suggest(key, list(_MODELS))}; see `poserepro list models`")
    return _MODELS[key]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword ``overrides`` of its constructor arguments."""
    fn = model_entrypoint(name)
    params = inspect.signature(fn).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in overrides if k not in params and not accepts_any]
    if unknown:
        raise PoseReproError(
            f"model {name!r} takes no argument(s) {', '.join(unknown)}; it takes: {', '.join(params)}"
        )
    return fn(**overrides)
