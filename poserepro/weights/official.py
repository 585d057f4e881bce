"""Official checkpoints → poserepro state dicts (TransPose-R/H, BTranspose, SimpleBaseline / HRNet-code layouts).

The official models are plain ``state_dict()`` dumps whose module tree matches ours up to a few prefixes, so the
conversion is a key map plus one reshape:

=====================================  ==========================================================
official key                           poserepro key
=====================================  ==========================================================
``module.*`` (DataParallel)            prefix dropped
``model_alpha.*`` (BTranspose)         prefix dropped, then as below
``pos_embedding`` ``(L, 1, d)``        ``pos_embed.weight`` ``(L, d)``
``global_encoder.layers.N.*``          ``encoder.layers.N.*`` (same names inside: packed ``in_proj``)
``reduce.*``                           ``reduce.*``
``deconv_layers.*`` / ``final_layer.*``  ``head.deconv_layers.*`` / ``head.final_layer.*``
``…conv2.0.rel_h`` / ``…conv2.0.rel_w``  ``…conv2.0.pos_w`` / ``…conv2.0.pos_h`` (BTranspose MHSA; the
                                       official names are swapped w.r.t. the axis they span)
anything else (stem, layers, HRNet)    ``backbone.*``
=====================================  ==========================================================

:func:`load_official` loads a file, URL or ``official:NAME`` (a released TransPose checkpoint, downloaded with resume
into the weights cache) with ``torch.load(weights_only=True)``, converts it and loads it strictly; every failure is a
one-line :class:`~poserepro.errors.CheckpointError`.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, UnknownNameError, suggest
from ..io import verify_tensors
from .fit import check_state_fits


@dataclass(frozen=True)
class OfficialWeights:
    """A released checkpoint: where it is and which registered model it fits."""

    url: str
    model: str
    sha256: str | None = None  # not published by the authors; None = size/hash not checked
    size: int | None = None
    note: str = ""


_TP_RELEASE = "https://github.com/yangsenius/TransPose/releases/download/Hub/"

#: Released TransPose COCO checkpoints (README model zoo / hubconf.py of yangsenius/TransPose).
OFFICIAL_WEIGHTS: dict[str, OfficialWeights] = {
    "tp_r_256x192_enc3_d256_h1024_mh8": OfficialWeights(
        _TP_RELEASE + "tp_r_256x192_enc3_d256_h1024_mh8.pth", "transpose_r_a3", note="GT-box AP 73.8"),
    "tp_r_256x192_enc4_d256_h1024_mh8": OfficialWeights(
        _TP_RELEASE + "tp_r_256x192_enc4_d256_h1024_mh8.pth", "transpose_r_a4", note="GT-box AP 75.1"),
    "tp_h_32_256x192_enc4_d64_h128_mh1": OfficialWeights(
        _TP_RELEASE + "tp_h_32_256x192_enc4_d64_h128_mh1.pth", "transpose_h_s", note="GT-box AP 76.1"),
    "tp_h_48_256x192_enc4_d96_h192_mh1": OfficialWeights(
        _TP_RELEASE + "tp_h_48_256x192_enc4_d96_h192_mh1.pth", "transpose_h_a4", note="GT-box AP 77.5"),
    "tp_h_48_256x192_enc6_d96_h192_mh1": OfficialWeights(
        _TP_RELEASE + "tp_h_48_256x192_enc6_d96_h192_mh1.pth", "transpose_h_a6", note="GT-box AP 78.1"),
}


def official_name(text: str) -> str:
    """``official:NAME`` / ``NAME`` / ``NAME.pth`` / a registered model name → the key of :data:`OFFICIAL_WEIGHTS`."""
    name = text.removeprefix("official:").removesuffix(".pth")
    if name in OFFICIAL_WEIGHTS:
        return name
    by_model = {w.model: k for k, w in OFFICIAL_WEIGHTS.items()}
    if name.replace("-", "_") in by_model:
        return by_model[name.replace("-", "_")]
    raise UnknownNameError(
        f"no released weights named {name!r}{suggest(name, list(OFFICIAL_WEIGHTS) + list(by_model))}; "
        f"known: {', '.join(OFFICIAL_WEIGHTS)}"
    )


def weights_cache_dir() -> Path:
    """``$POSEREPRO_WEIGHTS`` or ``~/.cache/poserepro/weights``."""
    return Path(os.environ.get("POSEREPRO_WEIGHTS", Path.home() / ".cache" / "poserepro" / "weights"))


def convert_key(key: str) -> str:
    """Map one official state-dict key onto the poserepro name (see the module table)."""
    while key.startswith("module."):
        key = key[len("module."):]
    key = key.removeprefix("model_alpha.")
    if key == "pos_embedding":
        return "pos_embed.weight"
    if key.startswith("global_encoder."):
        return "encoder." + key[len("global_encoder."):]
    if key.startswith(("deconv_layers.", "final_layer.")):
        return "head." + key
    if key.startswith("reduce."):
        return key
    if key.endswith(".conv2.0.rel_h"):
        key = key[: -len("rel_h")] + "pos_w"
    elif key.endswith(".conv2.0.rel_w"):
        key = key[: -len("rel_w")] + "pos_h"
    return "backbone." + key


def convert_state_dict(
    official: dict[str, torch.Tensor], model_name: str | None = None, model: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Convert an official state dict to poserepro names and shapes.

    If ``model`` (or ``model_name``, built with its defaults) is given the result is checked against its
    ``state_dict()``: every key must be present with the same shape and nothing may be left over, else a
    one-line :class:`CheckpointError` names the first problem.
    """
    out: dict[str, torch.Tensor] = {}
    for k, v in official.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"official checkpoint entry {k!r} is a {type(v).__name__}, not a tensor")
        new = convert_key(k)
        if new == "pos_embed.weight" and v.dim() == 3:
            v = v.reshape(v.shape[0], v.shape[2])
        if new in out:
            raise CheckpointError(f"official keys collide on {new!r}: is this a checkpoint of one model?")
        out[new] = v
    if model is None and model_name is not None:
        from ..models.registry import create_model

        model = create_model(model_name)
    if model is not None:
        check_compatible(out, model, model_name or type(model).__name__)
    return out


def check_compatible(state: dict[str, torch.Tensor], model: nn.Module, what: str) -> None:
    """Raise a one-line :class:`CheckpointError` unless ``state`` fits ``model.state_dict()`` exactly."""
    check_state_fits(state, model, "checkpoint", what)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() and zipfile.is_zipfile(path):
            raise CheckpointError(
                f"weights file {path} holds Python objects besides tensors; refusing to unpickle it "
                "(torch.load weights_only=True): re-save its state_dict"
            ) from None
        raise CheckpointError(f"weights file {path} is corrupt or not a PyTorch checkpoint") from None
    except Exception as e:  # truncated zip, garbage bytes, wrong format: all the same to the user
        msg = (str(e).splitlines() or [""])[0][:80] or type(e).__name__
        raise CheckpointError(f"weights file {path} is corrupt or not a PyTorch checkpoint ({msg})") from None
    obj = verify_tensors(obj, path, "weights file")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"weights file {path} holds no state dict of tensors")
    return obj


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (``torch.load(weights_only=True)``; a ``state_dict`` or ``model`` entry is
    unwrapped); a missing, corrupt or foreign file raises a one-line :class:`CheckpointError`."""
    return _read_state_dict(path)


def fetch_weights(spec: str, cache_dir: Path | None = None) -> Path:
    """A local path for ``spec``: ``official:NAME`` or an ``http(s)://`` URL is downloaded (resumable) into the
    cache; anything else is taken as a path."""
    if spec.startswith(("official:", "http://", "https://")):
        from ..data.download import download_file

        if spec.startswith("official:"):
            entry = OFFICIAL_WEIGHTS[official_name(spec)]
            url, size, sha256 = entry.url, entry.size, entry.sha256
        else:
            url, size, sha256 = spec, None, None
        dest = (cache_dir or weights_cache_dir()) / url.rsplit("/", 1)[-1]
        return download_file(url, dest, size=size, sha256=sha256, md5=None)
    return Path(spec).expanduser()


def load_official(path_or_url: str | Path, model_name: str | None = None, **model_kwargs: Any) -> nn.Module:
    """Build ``model_name`` (default: the model an ``official:NAME`` spec belongs to) and load official weights.

    ``path_or_url``: a file, an ``http(s)`` URL or ``official:NAME`` (see :data:`OFFICIAL_WEIGHTS`).
    ``model_kwargs`` go to :func:`~poserepro.models.registry.create_model` (e.g. ``num_joints``). Returns the model in
    eval mode. Raises :class:`CheckpointError` for a missing, corrupt or mismatching file.
    """
    from ..models.registry import create_model

    spec = str(path_or_url)
    if model_name is None:
        if not spec.startswith("official:"):
            raise CheckpointError(f"say which model {spec} is for (model_name / --model)")
        model_name = OFFICIAL_WEIGHTS[official_name(spec)].model
    model = create_model(model_name, **model_kwargs)
    state = convert_state_dict(_read_state_dict(fetch_weights(spec)), model_name, model)
    model.load_state_dict(state, strict=True)
    return model.eval()


#: code bases whose checkpoint layouts :func:`convert_official` reads
CODE_BASES = ("transpose", "btranspose", "prtr")


def code_base_of(state: dict[str, Any]) -> str | None:
    """Which official code base wrote ``state`` (a state dict, ``module.``-prefixed or not): ``"prtr"`` (its
    ``backbone.0.body.*`` Joiner keys, or PRTR's query/keypoint heads), ``"btranspose"`` (``model_alpha.*``),
    ``"transpose"`` (TransPose / HRNet-code keys), or ``None`` for poserepro's own layout."""
    keys = [k.removeprefix("module.") for k in state]
    if any(k.startswith("backbone.0.body.") for k in keys) or (
            "query_embed.weight" in keys and any(k.startswith("kpt_embed.") for k in keys)):
        return "prtr"
    if any(k.startswith("model_alpha.") for k in keys):
        return "btranspose"
    if any(k == "pos_embedding" or k.startswith(("global_encoder.", "final_layer.", "deconv_layers."))
           for k in keys):
        return "transpose"
    return None


def looks_official(state: dict[str, Any]) -> bool:
    """Whether a state dict is in an official code base's layout rather than ours."""
    return code_base_of(state) is not None


def convert_official(state: dict[str, torch.Tensor], code: str | None = None,
                     model: nn.Module | None = None, what: str = "") -> dict[str, torch.Tensor]:
    """An official state dict → ours through its own code base's key map (``code`` detected from the keys when
    ``None``); checked against ``model`` when given."""
    code = code or code_base_of(state)
    if code not in CODE_BASES:
        raise CheckpointError(f"cannot tell which code base wrote this checkpoint; pass --from-code "
                              f"{'|'.join(CODE_BASES)}" if code is None else
                              f"unknown code base {code!r}; use one of {', '.join(CODE_BASES)}")
    if code == "prtr":
        from .prtr import convert_state_dict as convert_prtr

        out = convert_prtr(state)
        if model is not None:
            check_compatible(out, model, what or type(model).__name__)
        return out
    return convert_state_dict(state, None, model)


def load_official_into(model: nn.Module, path_or_url: str | Path, code: str | None = None) -> None:
    """Load official weights (file, URL or ``official:NAME``; any code base, any layout its code writes) into an
    already built ``model`` (strict, converted).

    For the training / evaluation entry points that build the model from a recipe: ``--weights official:NAME``.
    """
    spec = str(path_or_url)
    state = convert_official(_read_state_dict(fetch_weights(spec)), code, model)
    from .position import fit_position_tables

    fit_position_tables(model, state, spec)  # official weights are 256x192: fit PE tables to this input size
    model.load_state_dict(state, strict=True)


def convert_file(src: str | Path, model_name: str | None, dest: str | Path | None = None,
                 code: str | None = None) -> tuple[Path, str]:
    """Convert an official checkpoint (path, URL or ``official:NAME``) into a poserepro weights file
    ``{"model": state_dict, "model_name": ..., "source": ...}`` loadable by ``--weights``; returns
    ``(file, model name)``. A PRTR checkpoint names its model by itself (its backbone); the others need
    ``model_name``. ``dest`` defaults to ``<model>.pth`` in the current folder."""
    from ..io import atomic_torch_save
    from ..models.registry import create_model

    spec = str(src)
    if model_name is None and spec.startswith("official:"):
        model_name = OFFICIAL_WEIGHTS[official_name(spec)].model
    raw = _read_state_dict(fetch_weights(spec))
    code = code or code_base_of(raw)
    if model_name is None and code == "prtr":
        from .prtr import detect_backbone

        model_name = detect_backbone(raw)
    if model_name is None:
        raise CheckpointError(f"say which model {spec} is for (--model)")
    state = convert_official(raw, code, create_model(model_name), model_name)
    dest = Path(dest) if dest is not None else Path(f"{model_name}.pth")
    atomic_torch_save(dest, {"model": state, "model_name": model_name, "source": spec})
    return dest, model_name
