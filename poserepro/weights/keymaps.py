"""Part-of-a-model loading: one explicit key map per source file, a one-line report, a one-line refusal.

* torchvision ResNet (V1 file): ``conv1 bn1 layer1..4`` → ``<backbone>.*`` by the same name; ``fc`` and stages
  the model lacks (ResNet-S: layer3, layer4) are unused.
* HRNet ImageNet classifier: ``conv1 bn1 conv2 bn2 layer1 transition1..3 stage2..4 incre_modules downsamp_modules
  final_layer`` → ``<backbone>.*`` by name. TransPose-H (HRNet-S) takes ``conv1``..``stage3`` only (the official
  configs' ``PRETRAINED_LAYERS``); a four-stage HRNet body (end-to-end PRTR HRNet-W48) also ``transition3`` and
  ``stage4``; PRTR's HRNet-W32 takes everything but ``classifier``.
* DETR COCO checkpoint (under ``["model"]``), into a person DETR (PRTR's detector, end-to-end PRTR's):
  ``backbone.0.body.*`` → ``backbone.*``; ``transformer.* input_proj.* query_embed.* bbox_embed.*`` by name (same
  shapes); ``class_embed`` has 92 rows (the 91 COCO ids, no-object last): rows 1 (person) and 91 (no-object)
  become our two rows (person, no-object), as PRTR fine-tunes DETR "keeping only the person prototype" (FACTS
  §4.3). The keypoint part (``kpt_*``) stays fresh.
* DINO backbone file: ``backbone.*`` or unprefixed keys (``module.`` dropped) → ``<backbone>.*`` by name.

``<backbone>`` is ``backbone.body`` for two-stage PRTR and ``backbone`` for every other model. BatchNorm step
counters (``num_batches_tracked``) are neither loaded nor counted: the torchvision V1 files predate them and they do
not affect BatchNorm with a momentum. Every tensor of the expected part must load with its shape, else a one-line
:class:`~poserepro.errors.CheckpointError` (a wrong file); what else the model has stays as built ("fresh").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CheckpointError
from ..models.backbones.hrnet import HRNet
from ..models.backbones.hrnet_cls import HRNetCls
from ..models.backbones.resnet import BasicResNet, ResNet
from ..models.person_detr import PersonDETR
from ..models.prtr import PRTR

log = logging.getLogger("poserepro.weights")

#: Stage block counts of the torchvision ResNets, Bottleneck and BasicBlock ones, in the order they are chosen.
TORCHVISION_BLOCKS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}
TORCHVISION_BASIC_BLOCKS = {"resnet18": (2, 2, 2, 2)}
#: What TransPose-H loads from the HRNet classifier (the official configs' ``PRETRAINED_LAYERS``).
HRNET_S_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3")
#: DETR's class rows kept for the end-to-end PRTR detector, in our order (person, no-object).
DETR_PERSON_ROWS = (1, 91)
DETR_DETECTOR = ("transformer.", "input_proj.", "query_embed.", "bbox_embed.", "class_embed.")


@dataclass
class InitReport:
    """What a starting point loaded: counts of the expected part, what stayed fresh, what of the file was unused."""

    source: str                      # e.g. "resnet50 (imagenet)"
    part: str                        # "backbone" | "detector"
    loaded: int
    expected: int
    unused: int = 0                  # tensors of the file that have no place in the model
    fresh: list[str] = field(default_factory=list)  # top-level modules of the model left as built
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line, e.g. ``loaded 265 / 265 backbone tensors from resnet50 (imagenet); head fresh``."""
        out = f"loaded {self.loaded} / {self.expected} {self.part} tensors from {self.source}"
        if self.unused:
            out += f"; {self.unused} file tensors unused"
        out += "".join(f"; {n}" for n in self.notes)
        if self.fresh:
            out += f"; {', '.join(self.fresh)} fresh"
        return out


def _counted(key: str) -> bool:
    return not key.endswith("num_batches_tracked")


def backbone_prefix(model: nn.Module) -> str:
    """Where the CNN backbone's state sits in ``model``: ``backbone.body.`` (two-stage PRTR) or ``backbone.``."""
    if isinstance(model, PRTR):
        return "backbone.body."
    if isinstance(getattr(model, "backbone", None), nn.Module):
        return "backbone."
    raise CheckpointError(f"{type(model).__name__} has no backbone to load a backbone file into")


def backbone_module(model: nn.Module) -> nn.Module:
    """The CNN backbone module of ``model`` (see :func:`backbone_prefix`)."""
    return model.get_submodule(backbone_prefix(model).rstrip("."))


def imagenet_name(model: nn.Module) -> str:
    """The catalogue name of the ImageNet file for ``model``'s backbone, from the backbone's architecture.

    ResNet with the standard widths: the first torchvision ResNet whose stages hold at least the model's blocks
    (TransPose's ResNet-S, 3 + 4 blocks, is ResNet-50's stem, layer1, layer2). HRNet: ``hrnet_w{width}``.
    """
    bb = backbone_module(model)
    if isinstance(bb, HRNet):
        if bb.width in (32, 48) and bb.conv1.out_channels == 64:
            return f"hrnet_w{bb.width}"
        raise CheckpointError(f"no ImageNet file for an HRNet-W{bb.width} with a {bb.conv1.out_channels}-channel "
                              "stem (a smoke-size model?); train it from scratch (model.init: null)")
    if isinstance(bb, ResNet) and bb.widths == (64, 128, 256, 512):
        table = TORCHVISION_BASIC_BLOCKS if isinstance(bb, BasicResNet) else TORCHVISION_BLOCKS
        for name, blocks in table.items():
            if len(bb.blocks) <= len(blocks) and all(a <= b for a, b in zip(bb.blocks, blocks)):
                return name
        raise CheckpointError(f"no torchvision ImageNet ResNet has stages of {bb.blocks} blocks; "
                              "train it from scratch (model.init: null)")
    if isinstance(bb, ResNet):
        raise CheckpointError(f"no ImageNet file for a ResNet of widths {bb.widths} (a smoke-size model?); "
                              "train it from scratch (model.init: null)")
    raise CheckpointError(f"no ImageNet file in the catalogue fits the {type(bb).__name__} backbone of "
                          f"{type(model).__name__}; use dino:PATH, a local file, or model.init: null")


def _load(model: nn.Module, pairs: dict[str, torch.Tensor], expected: list[str], source: str, part: str,
          unused: int, notes: Iterable[str] = ()) -> InitReport:
    """Check ``pairs`` (our key → tensor) covers ``expected`` with our shapes, load them, report."""
    own = model.state_dict()
    bad = [k for k, v in pairs.items() if k not in own or tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in expected if k not in pairs]
    if bad or missing:
        n_ok = sum(1 for k in expected if k in pairs and k not in bad)
        k = bad[0] if bad else missing[0]
        why = (f"{k} has shape {tuple(pairs[k].shape)}, the model {tuple(own[k].shape)}" if bad and k in own
               else f"{k} is not in the model" if bad else f"{k} is not in the file")
        raise CheckpointError(f"{source} does not fit this model's {part}: only {n_ok} / {len(expected)} tensors "
                              f"load ({why}; {len(bad)} mismatched, {len(missing)} missing): wrong file?")
    model.load_state_dict(pairs, strict=False)
    fresh = sorted({_top(k, model) for k in own if _counted(k) and k not in pairs})
    report = InitReport(source, part, len(expected), len(expected), unused, fresh, list(notes))
    log.info(report.line())
    return report


def _top(key: str, model: nn.Module) -> str:
    """The top-level module a key belongs to (``backbone.<stage>`` inside the backbone)."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] == "backbone" and len(parts) > 2 else parts[0]


def load_backbone_file(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                       only: tuple[str, ...] | None = None, other: int = 0) -> InitReport:
    """Load a classifier / self-supervised backbone state dict (keys named as our backbone's) into the backbone.

    ``only``: the backbone's top-level modules to take from the file (TransPose-H: :data:`HRNET_S_LAYERS`);
    default: all of the backbone's own modules. ``other``: tensors of the file already set aside (reported unused).
    """
    prefix = backbone_prefix(model)
    own = [k for k in model.state_dict() if k.startswith(prefix) and _counted(k)]
    if only is not None:
        own = [k for k in own if k[len(prefix):].split(".")[0] in only]
    wanted = {k[len(prefix):]: k for k in own}
    pairs = {wanted[k]: v for k, v in state.items() if k in wanted}
    unused = sum(1 for k in state if k not in wanted and _counted(k)) + other
    return _load(model, pairs, own, source, "backbone", unused)


def load_imagenet(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> InitReport:
    """A torchvision ResNet or HRNet ImageNet classifier into the backbone (see the module table)."""
    bb = backbone_module(model)
    only = None
    if isinstance(bb, HRNet) and not isinstance(bb, HRNetCls):
        only = HRNET_S_LAYERS if bb.num_stages == 3 else HRNET_S_LAYERS + ("transition3", "stage4")
    return load_backbone_file(model, state, source, only)


def dino_backbone_state(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """A DINO backbone file's tensors under backbone-relative names, and how many other tensors it holds
    (``module.`` dropped; with any ``backbone.*`` key present, only those are the backbone)."""
    plain = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.startswith("backbone.") for k in plain):
        return plain, 0
    inside = {k[len("backbone."):]: v for k, v in plain.items() if k.startswith("backbone.")}
    return inside, len(plain) - len(inside)


def load_detr(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> InitReport:
    """A DETR COCO checkpoint into a person DETR: PRTR's detector or end-to-end PRTR's (see the module table)."""
    if not isinstance(model, PersonDETR):
        raise CheckpointError(f"detr: starts a person DETR (prtr_detector_*, prtr_e2e_*); {type(model).__name__} "
                              "has none (use imagenet for two-stage PRTR)")
    own = model.state_dict()
    expected = [k for k in own if _counted(k) and k.startswith(("backbone.", *DETR_DETECTOR))]
    pairs: dict[str, torch.Tensor] = {}
    unused = 0
    notes = []
    for k, v in state.items():
        k = k.removeprefix("module.")
        if k.startswith("backbone.0.body."):
            pairs["backbone." + k[len("backbone.0.body."):]] = v
        elif k.startswith("class_embed.") and v.shape[0] == 92:
            pairs[k] = v[list(DETR_PERSON_ROWS)].clone()
            notes = ["class_embed: COCO rows person + no-object kept"]
        elif k.startswith(DETR_DETECTOR):
            pairs[k] = v
        else:
            unused += 1
    return _load(model, pairs, expected, source, "detector", unused, notes)
