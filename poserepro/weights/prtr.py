"""Load the released PRTR two-stage checkpoints (mlpc-ucsd/PRTR model zoo) into :class:`poserepro.models.prtr.PRTR`.

The official models are ``PoseTransformer(backbone=Joiner(Backbone, PositionEmbeddingSine), transformer, …)``, so
their keys differ from ours only by the ``Joiner`` index: ``backbone.0.body.*`` → ``backbone.body.*``. Everything
else (``transformer.encoder.layers.N.*``, ``transformer.decoder.*``, ``class_embed``, ``kpt_embed.layers.N``,
``query_embed``, ``input_proj``) is identical, parameters and buffers alike (FrozenBatchNorm's four buffers for
ResNet, BatchNorm incl. ``num_batches_tracked`` for HRNet). Checkpoints saved from ``DataParallel`` carry a
``module.`` prefix, which is stripped.

Note: the official ResNet models were trained on BGR input normalised with the RGB ImageNet statistics
(``COLOR_RGB: false``); evaluate them with ``data.color_rgb: false`` (exact) or build the model with
``bgr_input=True`` and feed RGB (channels flipped inside; the normalisation statistics then differ slightly).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import verify_tensors

_PREFIXES = (("module.", ""),)
_RENAMES = (("backbone.0.body.", "backbone.body."),)


def official_key_to_ours(key: str) -> str:
    """Map one official state-dict key to ours (strip ``module.``, ``backbone.0.body.`` → ``backbone.body.``)."""
    for old, new in _PREFIXES:
        if key.startswith(old):
            key = new + key[len(old):]
    for old, new in _RENAMES:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _unwrap(obj: object) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for k in ("state_dict", "model", "model_state_dict"):
            inner = obj.get(k)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj  # type: ignore[return-value]
    raise CheckpointError("not a PRTR checkpoint: expected a state dict (or {'state_dict': ...})")


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official PRTR state dict → ours (keys renamed, tensors unchanged)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in _unwrap(state).items():
        nk = official_key_to_ours(k)
        if nk in out:
            raise CheckpointError(f"two official keys map to {nk!r}")
        out[nk] = v
    return out


def detect_backbone(state: Mapping[str, torch.Tensor]) -> str:
    """Registered model name for an official state dict: ``prtr_r50``, ``prtr_r101`` or ``prtr_hrnet_w32``."""
    keys = [official_key_to_ours(k) for k in _unwrap(state)]
    if any(k.startswith("backbone.body.stage4.") for k in keys):
        return "prtr_hrnet_w32"
    blocks = {k.split(".")[3] for k in keys if k.startswith("backbone.body.layer3.")}
    if len(blocks) == 6:
        return "prtr_r50"
    if len(blocks) == 23:
        return "prtr_r101"
    raise CheckpointError(f"unrecognised PRTR backbone ({len(blocks)} blocks in layer3)")


def load_official(
    model: nn.Module, state_or_path: Mapping[str, torch.Tensor] | str | Path, strict: bool = True
) -> None:
    """Load an official PRTR checkpoint (a state dict or a ``.pth`` path) into ``model``; raises
    :class:`~poserepro.errors.CheckpointError` listing missing / unexpected keys and shape mismatches."""
    if isinstance(state_or_path, (str, Path)):
        try:
            raw = torch.load(str(state_or_path), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as e:
            raise CheckpointError(f"cannot read PRTR checkpoint {state_or_path}: {e}") from None
        raw = verify_tensors(raw, state_or_path, "PRTR checkpoint")
    else:
        raw = state_or_path
    state = convert_state_dict(raw)
    own = model.state_dict()
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if bad or (strict and (missing or unexpected)):
        parts = []
        if bad:
            parts.append(f"shape mismatches: {', '.join(bad[:5])}")
        if missing:
            parts.append(f"missing: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected: {', '.join(unexpected[:5])}{' …' if len(unexpected) > 5 else ''}")
        raise CheckpointError("PRTR checkpoint does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=strict)
