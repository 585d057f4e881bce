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
from .position import fit_position_tables


def load_model_weights(model: torch.nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load model weights from a checkpoint file; shape / key mismatches become one-line CheckpointErrors.

    A checkpoint trained at another ``data.input_size`` loads into a model built at this one: sine position
    tables are recomputed for the model's grid, learnable ones resized bilinearly over the 2-D grid and BTranspose's
    MHSA position tensors fitted by their module's own rule
    (:func:`poserepro.weights.position.fit_position_tables`, shared by eval, the sweeps, explain and transfer).

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
    state = dict(model_state_from(raw))
    fit_position_tables(model, state, f"checkpoint {path}")  # trained at another data.input_size
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
    adapted = fit_position_tables(model, keep, "transfer")  # e.g. COCO 256x192 -> MPII 256x256
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
