"""Loading model weights into a model: poserepro checkpoints, official checkpoints (converted by
:mod:`.official` / :mod:`.prtr`), and transfer between joint sets (COCO → MPII) with resized position tables.

Every mismatch becomes a one-line :class:`~poserepro.errors.CheckpointError` that says what does not fit.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError
from ..io import load_torch
from .fit import check_state_fits, model_state_from
from .official import load_official_into, looks_official


def load_model_weights(model: torch.nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load model weights from a checkpoint file; shape / key mismatches become one-line CheckpointErrors.

    ``official:NAME``, a URL, or a file in an official code base's layout (TransPose, BTranspose, PRTR; plain,
    ``module.``-prefixed or a training ``checkpoint.pth`` dict) is converted through its own code base's key map
    first (:func:`poserepro.weights.official.load_official_into`).
    """
    if str(path).startswith(("official:", "http://", "https://")):
        load_official_into(model, path)
        return
    raw = load_torch(path)
    inner = next((raw[k] for k in ("state_dict", "model") if isinstance(raw.get(k), dict)), raw)
    if looks_official(inner):
        load_official_into(model, path)
        return
    state = model_state_from(raw)
    check_state_fits(state, model, f"checkpoint {path}", "this model", strict)
    model.load_state_dict(state, strict=strict)


def load_for_transfer(
    model: torch.nn.Module, path: str | Path, reinit: tuple[str, ...] = ("head.final_layer",),
) -> dict[str, list[str]]:
    """Load a checkpoint of another task (e.g. COCO, 17 joints) except the layers named in ``reinit``.

    The modules in ``reinit`` (e.g. the final 1x1 joint layer) get a fresh PyTorch-default init (uniform, as
    TransPose's MPII fine-tuning describes: "a uniform-initialized linear layer"); every other weight must be
    present in the checkpoint with the same shape.

    Returns:
        ``{"loaded": [...state keys...], "reinitialised": [...state keys...]}``.

    Raises:
        CheckpointError: a ``reinit`` module does not exist, or any other key is missing / unexpected / of a
            different shape.
    """
    state = model_state_from(load_torch(path))
    own = model.state_dict()

    def is_new(key: str) -> bool:
        return any(key == p or key.startswith(p + ".") for p in reinit)

    keep = {k: v for k, v in state.items() if not is_new(k)}
    adapted = _adapt_position_tables(model, keep, own)
    missing = [k for k in own if not is_new(k) and k not in keep]
    unexpected = [k for k in keep if k not in own]
    bad = [k for k in keep if k in own and tuple(keep[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        if bad:
            what = f"{bad[0]} has shape {tuple(keep[bad[0]].shape)} but the model expects {tuple(own[bad[0]].shape)}"
        else:
            what = (f"{len(missing)} missing key(s) (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                    f"(e.g. {unexpected[:2]})")
        raise CheckpointError(f"checkpoint {path} cannot be transferred to this model apart from {list(reinit)}: "
                              f"{what}; is it for the same architecture?")
    modules = dict(model.named_modules())
    new_keys = [k for k in own if is_new(k)]
    for name in reinit:
        if name not in modules:
            raise CheckpointError(f"transfer: the model has no module {name!r} to re-initialise")
        for m in modules[name].modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    model.load_state_dict(keep, strict=False)
    return {"loaded": sorted(keep), "reinitialised": new_keys, "position_tables_adapted": adapted}


def _adapt_position_tables(model: torch.nn.Module, keep: dict[str, torch.Tensor],
                           own: dict[str, torch.Tensor]) -> list[str]:
    """Fit position-embedding tables of another input size (COCO 256x192 → MPII 256x256) in ``keep``, in place.

    Sine tables are functions of the grid: the model's own table is kept. Learnable tables are bilinearly resized
    like :class:`~poserepro.models.layers.position.PositionEmbedding2D` does for unseen grids; the old grid is
    taken to have the new grid's height (same input height), else it is a CheckpointError.
    """
    import torch.nn.functional as F

    from ..models.layers.position import PositionEmbedding2D

    done = []
    for name, m in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if not isinstance(m, PositionEmbedding2D) or key not in keep or key not in own:
            continue
        old, new = keep[key], own[key]
        if tuple(old.shape) == tuple(new.shape):
            continue
        if m.kind == "sine":
            keep[key] = new.clone()
        else:
            gh, gw = m.grid
            if old.dim() != 2 or old.shape[1] != new.shape[1] or old.shape[0] % gh:
                raise CheckpointError(f"cannot resize the learnable position table {key} of shape "
                                      f"{tuple(old.shape)} to the {gh}x{gw} grid of this model")
            table = old.t().reshape(1, old.shape[1], gh, old.shape[0] // gh)
            table = F.interpolate(table.float(), size=(gh, gw), mode="bilinear", align_corners=False)
            keep[key] = table.reshape(old.shape[1], gh * gw).t().to(old.dtype).contiguous()
        done.append(key)
    return done
