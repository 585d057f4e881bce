"""Does a state dict fit a model? One-line :class:`~poserepro.errors.CheckpointError` messages when it does not."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CheckpointError


def model_state_from(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model state dict inside a poserepro checkpoint, or ``obj`` itself when it is a plain state dict."""
    state = obj.get("model", obj)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError("checkpoint holds no model state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_state_fits(
    state: dict[str, torch.Tensor], model: torch.nn.Module, subject: str, target: str, strict: bool = True,
) -> None:
    """Raise a one-line :class:`CheckpointError` unless ``state`` fits ``model.state_dict()``.

    Shapes must agree on every shared key; with ``strict`` the key sets must be equal too.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise CheckpointError(
            f"{subject} does not fit {target}: {k} has shape {tuple(state[k].shape)} but the model expects "
            f"{tuple(own[k].shape)} ({len(bad)} mismatches); is it for another model variant or num_joints?"
        )
    if strict and (missing or unexpected):
        raise CheckpointError(
            f"{subject} does not fit {target}: {len(missing)} missing key(s) (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}); is it for another model?"
        )
