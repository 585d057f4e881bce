"""``torch.hub`` entry points (``hubconf.py`` at the repository root): every registered model by name, and with
``pretrained=True`` its released checkpoint from the weights catalogue.

    model = torch.hub.load("REPO", "transpose_r_a4", pretrained=True)       # REPO: owner/name or a local clone

The checkpoint is downloaded with :func:`~poserepro.weights.catalogue.fetch_entry` (resumable, verified, into
``$POSEREPRO_WEIGHTS``, from ``$POSEREPRO_WEIGHTS_MIRROR`` when set) and loaded through the official key map
(:func:`~poserepro.weights.state.load_model_weights`). Only the models the authors released checkpoints for
can be ``pretrained`` (:func:`released_models`); the others raise a one-line error that names them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import CheckpointError
from ..models.registry import create_model, list_models
from .catalogue import CATALOGUE, CatalogueEntry, fetch_entry
from .state import load_model_weights


def released_models() -> dict[str, CatalogueEntry]:
    """Registered model name → the catalogue entry of its released checkpoint (``kind="official"``)."""
    return {e.arch: e for e in CATALOGUE.values() if e.kind == "official"}


def hub_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` (``kwargs`` go to its constructor); ``pretrained`` loads its released
    checkpoint. Returns the model in eval mode."""
    model = create_model(name, **kwargs)
    if pretrained:
        entry = released_models().get(name.replace("-", "_"))
        if entry is None:
            raise CheckpointError(f"no released checkpoint for {name}: pretrained=True works for "
                                  f"{', '.join(sorted(released_models()))}; train one with poserepro")
        load_model_weights(model, fetch_entry(entry))
    return model.eval()


def entrypoint(name: str) -> Callable[..., nn.Module]:
    """A ``torch.hub`` function for model ``name`` with a docstring that says what it builds."""

    def build(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return hub_model(name, pretrained, **kwargs)

    entry = released_models().get(name)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"poserepro model {name} (keyword arguments go to its constructor). "
                     + (f"pretrained=True loads the released {entry.name} ({entry.note})." if entry else
                        "No released checkpoint: pretrained=True is an error."))
    return build


def entrypoints() -> dict[str, Callable[..., nn.Module]]:
    """Every registered model's hub function, by name."""
    return {name: entrypoint(name) for name in list_models()}
