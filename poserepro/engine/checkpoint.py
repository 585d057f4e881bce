"""Checkpoints and atomic file writes.

A checkpoint holds everything needed to resume: model, optimizer, scheduler, scaler, epoch, recipe, and RNG
state. Files are written atomically (temporary file in the same directory, fsync, ``os.replace``) so an
interrupted save never corrupts the previous checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic text write (UTF-8)."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Atomic JSON write."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint` (or a plain state dict) with ``weights_only=True``.

    Raises :class:`CheckpointError` for a missing, truncated or non-PyTorch file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist: check the path or pass --weights")
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(
            f"checkpoint {p} is corrupt or not a PyTorch file ({msg}): re-save or re-download it"
        ) from None
    except Exception as e:  # pickle.UnpicklingError and friends
        raise CheckpointError(
            f"checkpoint {p} is corrupt or not a PyTorch checkpoint ({type(e).__name__}): re-save or re-download it"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {p} holds a {type(obj).__name__}, not a state dict")
    return obj


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


def load_model_weights(model: torch.nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load model weights from a checkpoint file; shape / key mismatches become one-line CheckpointErrors.

    ``official:NAME``, a URL, or a file in an official code base's layout is converted first
    (:func:`poserepro.convert.load_official_into`).
    """
    from ..convert import load_official_into, looks_official

    if str(path).startswith(("official:", "http://", "https://")):
        load_official_into(model, path)
        return
    raw = load_checkpoint(path)
    if looks_official(raw.get("model", raw) if isinstance(raw.get("model"), dict) else raw):
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
    state = model_state_from(load_checkpoint(path))
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
