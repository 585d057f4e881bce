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


class ModelArgumentError(PoseReproError, ValueError):
    """A model constructor refused its keyword arguments (a one-line error that is also a ``ValueError``)."""


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
    _check_sizes(name, overrides)
    if not overrides:
        return fn()
    try:
        return fn(**overrides)
    except (TypeError, ValueError, RuntimeError) as e:  # a constructor refusing the given values
        given = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        raise ModelArgumentError(f"model {name!r} cannot be built with {given}: "
                             f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e


def _check_sizes(name: str, overrides: dict[str, Any]) -> None:
    """The arguments whose nonsense values a constructor would accept silently: ``num_joints`` (>= 1) and
    ``input_size`` (two sizes of at least 8 px)."""
    k = overrides.get("num_joints")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ModelArgumentError(f"model {name!r}: num_joints must be a whole number >= 1, got {k!r}")
    size = overrides.get("input_size")
    if size is not None and (not isinstance(size, (list, tuple)) or len(size) != 2
                             or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in size)):
        raise ModelArgumentError(f"model {name!r}: input_size must be two whole sizes (w, h) of at least 8 px, "
                             f"got {size!r}")
