"""One grammar for a model's starting point (``model.init`` in a recipe, ``--init`` on the command line).

=====================  ==================================================================================
spec                   meaning
=====================  ==================================================================================
``imagenet``           the ImageNet file of the model's backbone from the catalogue (ResNet-18/50/101/152,
                       HRNet-W32/W48: chosen by the backbone's architecture), into the backbone only
``imagenet:NAME``      that catalogue file; ``imagenet:PATH``: a local ImageNet classifier file
``detr:r50|r101``      DETR-R50/R101 COCO into the end-to-end PRTR detector; ``detr:PATH``: a local DETR file
``dino:PATH``          a DINO-pretrained backbone state dict (``backbone.`` or no prefix) into the backbone
``official:NAME``      a released pose checkpoint, whole model (:mod:`.official`)
``transfer:PATH``      a checkpoint of another joint set, all but ``head.final_layer`` (``load_for_transfer``)
a path or URL          a whole-model checkpoint, strict (:func:`.state.load_model_weights`)
=====================  ==================================================================================

:func:`resolve_init` parses a spec into an :class:`InitPlan` without touching the network; :func:`init_model`
fetches and loads it and returns a one-line report. Part loads use the key maps of :mod:`.keymaps`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import CheckpointError
from ..io import load_torch, verify_tensors
from .catalogue import CATALOGUE, CatalogueEntry, fetch_entry, get_entry
from .keymaps import dino_backbone_state, imagenet_name, load_backbone_file, load_detr, load_imagenet
from .official import load_official_into, official_name
from .state import load_for_transfer, load_model_weights

log = logging.getLogger("poserepro.weights")

Scheme = Literal["imagenet", "detr", "dino", "official", "transfer", "file"]
SCHEMES: tuple[str, ...] = ("imagenet", "detr", "dino", "official", "transfer")


@dataclass(frozen=True)
class InitPlan:
    """A parsed starting point: its scheme, and a catalogue entry or a local path / URL."""

    scheme: Scheme
    spec: str
    entry: CatalogueEntry | None = None
    path: str | None = None

    @property
    def source(self) -> str:
        """For reports: ``resnet50 (imagenet)`` or ``PATH (dino)``."""
        return f"{self.entry.name if self.entry else self.path} ({self.scheme})"


def _split(spec: str) -> tuple[str, str]:
    head, sep, rest = spec.partition(":")
    if sep and head in SCHEMES:
        return head, rest
    if spec in SCHEMES:
        return spec, ""
    return "file", spec


def _detr_entry(arg: str) -> CatalogueEntry | None:
    name = "detr_" + arg.lower().removeprefix("detr_").replace("-", "")
    return CATALOGUE.get(name) if name in ("detr_r50", "detr_r101") else None


def resolve_init(spec: str, model: nn.Module | None = None, backbone_entry: str | None = None) -> InitPlan:
    """Parse ``spec`` (see the module table). ``imagenet`` needs ``model`` (or ``backbone_entry``, its catalogue
    name) to choose the file. Raises a one-line :class:`CheckpointError` / ``UnknownNameError``."""
    scheme, arg = _split(spec.strip())
    if scheme == "imagenet":
        if arg and arg in CATALOGUE:
            entry = get_entry(arg)
            if entry.kind != "imagenet":
                raise CheckpointError(f"imagenet:{arg}: {arg} is a {entry.kind} file, not an ImageNet classifier")
            return InitPlan("imagenet", spec, entry)
        if arg:
            return InitPlan("imagenet", spec, path=arg)
        if backbone_entry is None:
            if model is None:
                raise CheckpointError("imagenet: needs the model to choose its backbone's ImageNet file")
            backbone_entry = imagenet_name(model)
        return InitPlan("imagenet", spec, get_entry(backbone_entry))
    if scheme == "detr":
        if not arg:
            raise CheckpointError("detr: say which DETR: detr:r50, detr:r101 or detr:PATH")
        entry = _detr_entry(arg)
        return InitPlan("detr", spec, entry) if entry else InitPlan("detr", spec, path=arg)
    if scheme == "official":
        return InitPlan("official", spec, CATALOGUE[official_name(arg)])
    if scheme in ("dino", "transfer"):
        if not arg:
            raise CheckpointError(f"{scheme}: needs a file: {scheme}:PATH")
        return InitPlan(scheme, spec, path=arg)
    return InitPlan("file", spec, path=arg)


def _local(plan: InitPlan, cache_dir: Path | None, mirror: str | None) -> Path:
    if plan.entry is not None:
        return fetch_entry(plan.entry, cache_dir, mirror)
    assert plan.path is not None
    return Path(plan.path).expanduser()


def _state(path: Path, scheme: str) -> dict[str, torch.Tensor]:
    """The tensors of a starting-point file: memory-mapped when the file allows it (zip format; only the part of
    the model it is for is then read), unwrapped from a ``state_dict`` / ``model`` / ``teacher`` (DINO) entry."""
    what = "DINO backbone file" if scheme == "dino" else f"{scheme} weights file"
    try:
        raw: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy (pre-zip) files such as the torchvision V1 ones cannot be mapped
        raw = load_torch(path, what=what)
    raw = verify_tensors(raw, path, what)
    for key in ("teacher", "state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
            break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{what} {path} holds no state dict of tensors")
    return raw


def init_model(model: nn.Module, spec: str, cache_dir: Path | None = None, mirror: str | None = None) -> str:
    """Load the starting point ``spec`` into ``model``; return (and log) a one-line report.

    ``cache_dir``: the weights cache (default ``$POSEREPRO_WEIGHTS``); ``mirror``: a host that keeps the official
    URL paths (default ``$POSEREPRO_WEIGHTS_MIRROR``). Raises a one-line :class:`CheckpointError` when the file is
    missing, corrupt, fails its checksum, or does not fill the part of the model it is for.
    """
    plan = resolve_init(spec, model)
    if plan.scheme == "transfer":
        done = load_for_transfer(model, plan.path or "", reinit=("head.final_layer",))
        line = f"loaded {len(done['loaded'])} tensors from {plan.path} (transfer); head.final_layer fresh"
    elif plan.scheme == "official":
        load_official_into(model, _local(plan, cache_dir, mirror))
        line = f"loaded every tensor of the model from {plan.source}"
    elif plan.scheme == "file":
        load_model_weights(model, plan.path or "", strict=True)
        line = f"loaded every tensor of the model from {plan.path}"
    else:
        state = _state(_local(plan, cache_dir, mirror), plan.scheme)
        if plan.scheme == "imagenet":
            return load_imagenet(model, state, plan.source).line()
        if plan.scheme == "detr":
            return load_detr(model, state, plan.source).line()
        backbone, other = dino_backbone_state(state)
        return load_backbone_file(model, backbone, plan.source, other=other).line()
    log.info(line)
    return line


# ------------------------------------------------------------------------------------------ recipes → files
_IMAGENET_BY_MODEL: dict[str, str | None] = {}


def _model_imagenet(model_name: str, model_args: dict[str, Any]) -> str | None:
    """The ImageNet catalogue name for a registered model (``None``: none fits), built once per model name: a
    recipe's args set its head and sizes, the registered model fixes the backbone."""
    from ..models.registry import create_model

    if model_name not in _IMAGENET_BY_MODEL:
        try:
            _IMAGENET_BY_MODEL[model_name] = imagenet_name(create_model(model_name, **model_args))
        except CheckpointError:
            _IMAGENET_BY_MODEL[model_name] = None
    return _IMAGENET_BY_MODEL[model_name]


def starting_entry(spec: str, model_name: str, model_args: dict[str, Any] | None = None) -> str | None:
    """The catalogue name a recipe's starting point resolves to (``None`` for local files and transfer)."""
    scheme, arg = _split(spec.strip())
    if scheme == "imagenet" and not arg:
        return _model_imagenet(model_name, dict(model_args or {}))
    if scheme == "file":
        return None
    plan = resolve_init(spec, backbone_entry="resnet50")  # the placeholder is never used for a named spec
    return plan.entry.name if plan.entry else None


@lru_cache(maxsize=1)
def used_by() -> dict[str, tuple[str, ...]]:
    """``{catalogue name: recipes starting from that file}``, from each recipe's ``model.weights`` or else
    ``model.init``. ``imagenet`` is resolved through the recipe's model (built once per model: a few seconds)."""
    from ..recipes import list_recipes, load_recipe

    out: dict[str, list[str]] = {}
    for stem in list_recipes():
        rec = load_recipe(stem)
        spec = rec.model.weights or rec.model.init
        name = starting_entry(spec, rec.model.name, rec.model.args) if spec else None
        if name is not None:
            out.setdefault(name, []).append(stem)
    return {k: tuple(v) for k, v in out.items()}


def catalogue_rows() -> list[dict[str, str]]:
    """One row per catalogue entry for ``poserepro weights list``: name, kind, size, sha256 prefix, source,
    used by (recipe stems)."""
    users = used_by()
    return [{"name": e.name, "kind": e.kind, "size": f"{e.size:,}" if e.size else "",
             "sha256": e.sha256_prefix or "", "source": e.source, "used_by": ", ".join(users.get(e.name, ()))}
            for e in CATALOGUE.values()]
