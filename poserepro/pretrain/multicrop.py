"""The backbone of a registered pose model as a DINO trunk, and the multi-crop wrapper.

:func:`pose_backbone` builds a registered heatmap model and takes its CNN backbone (the module that
``model.init: dino:PATH`` later fills, :func:`poserepro.weights.keymaps.backbone_module`). Its last feature map
is average-pooled to one vector per crop (``pool="avg"``, what DINO does for ResNet-50 with ``fc`` removed),
flattened (``pool="flatten"``: what BTranspose's fork feeds its head; it needs one crop size, i.e. no local crops),
or average-pooled over a fixed ``grid`` of ``(gw, gh)`` cells and flattened (``pool="grid"``: the layout of the
map kept at a coarse resolution, the same size for every crop resolution, so it works with local crops).
:func:`pose_trunk` with ``trunk="encoder"`` is what BTranspose's released fork pretrains instead: the whole pose
model up to its Transformer encoder (backbone, 1×1 reduce, position embedding, encoder; the heatmap head removed),
whose ``(B, d, h, w)`` memory is flattened into the DINO head (256 × 32 × 24 = 196,608-d at 256×192). Its state
dict keeps the pose model's names, and ``model.init: dino:PATH`` takes its ``backbone.*`` tensors, as the fork's
fine-tuning does.

:class:`MultiCropWrapper` runs the backbone once per group of consecutive crops of the same resolution,
concatenates the features and runs the head once (facebookresearch/dino ``MultiCropWrapper``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RecipeError
from ..models.registry import create_model
from ..weights.keymaps import backbone_module

Pool = Literal["avg", "flatten", "grid"]
Trunk = Literal["backbone", "encoder"]


def _pose_model(model_name: str, model_args: dict[str, Any] | None, input_size: tuple[int, int]) -> nn.Module:
    args = dict(model_args or {})
    args.setdefault("input_size", tuple(input_size))
    try:
        return create_model(model_name, **args)
    except TypeError:  # a builder without input_size
        args.pop("input_size")
        return create_model(model_name, **args)


def pose_backbone(model_name: str, model_args: dict[str, Any] | None = None,
                  input_size: tuple[int, int] = (192, 256)) -> nn.Module:
    """The CNN backbone of the registered model ``model_name`` built with ``model_args`` at ``input_size``
    ``(w, h)`` (BTranspose's MHSA position tensors are sized by it)."""
    return backbone_module(_pose_model(model_name, model_args, input_size))


def pose_trunk(model_name: str, model_args: dict[str, Any] | None = None, input_size: tuple[int, int] = (192, 256),
               trunk: Trunk = "backbone") -> nn.Module:
    """The DINO trunk: the CNN backbone (``"backbone"``, :func:`pose_backbone`) or the pose model up to its
    encoder (``"encoder"``, the BTranspose fork's: the model with its head replaced by ``nn.Identity``, so that it
    returns the encoder memory as a ``(B, d, h, w)`` map). A model without an encoder is a :class:`RecipeError`."""
    if trunk == "backbone":
        return pose_backbone(model_name, model_args, input_size)
    model = _pose_model(model_name, model_args, input_size)
    if not callable(getattr(model, "encode", None)) or not isinstance(getattr(model, "head", None), nn.Module):
        raise RecipeError(f"model.trunk=encoder needs a model with a Transformer encoder and a heatmap head "
                         f"(TransPose, BTranspose); {model_name} has none: use model.trunk=backbone")
    model.head = nn.Identity()
    return model


def pool_features(out: Any, pool: Pool = "avg", grid: tuple[int, int] = (2, 2)) -> torch.Tensor:
    """A backbone's output (a feature map ``(B, C, h, w)`` or a list of them: the last is used) → ``(B, D)``:
    ``D = C`` (avg), ``C·h·w`` (flatten) or ``C·gh·gw`` (grid, ``grid = (gw, gh)``, channel-major as ``flatten``)."""
    if isinstance(out, (list, tuple)):
        out = out[-1]
    if out.dim() == 4:
        if pool == "avg":
            return out.mean(dim=(2, 3))
        if pool == "grid":
            return F.adaptive_avg_pool2d(out, (grid[1], grid[0])).flatten(1)
        return out.flatten(1)
    return out.flatten(1)


@torch.no_grad()
def feature_dim(backbone: nn.Module, input_size: tuple[int, int], pool: Pool = "avg",
                grid: tuple[int, int] = (2, 2)) -> int:
    """``D`` of :func:`pool_features` for crops of ``input_size`` ``(w, h)`` (one dummy forward, eval mode)."""
    was = backbone.training
    backbone.eval()
    try:
        d = pool_features(backbone(torch.zeros(1, 3, input_size[1], input_size[0])), pool, grid).shape[1]
    finally:
        backbone.train(was)
    return int(d)


def resolution_groups(crops: Sequence[torch.Tensor]) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of consecutive crops with the same spatial size (``(H, W)``)."""
    groups: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(crops) + 1):
        if i == len(crops) or crops[i].shape[-2:] != crops[start].shape[-2:]:
            groups.append((start, i))
            start = i
    return groups


class MultiCropWrapper(nn.Module):
    """``forward(crops [(B, 3, H_i, W_i)] * n) -> (n·B, out_dim)`` in crop order: one backbone pass per
    resolution group (:func:`resolution_groups`), pooled, concatenated, one head pass.
    ``backbone_features(crops)`` gives the pooled features ``(n·B, D)`` without the head (the k-NN probe)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, pool: Pool = "avg",
                 grid: tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.pool: Pool = pool
        self.grid = tuple(grid)

    def backbone_features(self, crops: Sequence[torch.Tensor]) -> torch.Tensor:
        feats = [pool_features(self.backbone(torch.cat(list(crops[a:b]))), self.pool, self.grid)
                 for a, b in resolution_groups(crops)]
        return torch.cat(feats)

    def forward(self, crops: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        if isinstance(crops, torch.Tensor):
            crops = [crops]
        return self.head(self.backbone_features(crops))
