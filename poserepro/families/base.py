"""The protocol every model family implements, and the lookup from a model to its family.

A family owns what differs between model kinds: which data a model trains and evaluates on (person crops or
whole images), its training forward and loss (target encoding included), and its read-out to image-space
keypoints (flip test included). The engine, evaluation, bench, sweeps and explain only call this protocol, so
adding a family (a new head, a user's model) is a subclass registered here, with no edit in ``engine/``:

    @register_family
    class MyFamily(TopDownFamily):          # or ModelFamily for another kind of data
        output_types = ("my-kind",)         # models declare ``output_type = "my-kind"``
        def criterion(self, recipe, model, device): ...
        def readout(self, model, outputs, flipped, recipe): ...

The model → family link is the model's ``output_type`` attribute (``"heatmap"`` when absent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import UnknownNameError, suggest
from ..evaluation.coco import evaluate_keypoints, write_results
from ..recipes import Recipe

ProgressFn = Callable[[dict[str, Any]], None]
#: ``criterion(outputs, batch) -> (loss, parts)``: the loss to back-propagate and named float parts to log.
Criterion = Callable[[Any, dict[str, Any]], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class EvalData:
    """What a family evaluates on: the dataset, the ground truth to score against, and a count for the log."""

    dataset: Dataset
    ann_file: Path
    has_gt: bool
    files: Any                  # :class:`~poserepro.data.splits.SplitFiles` of the split
    num_inputs: int             # person crops (top-down) or images (whole-image families)


@dataclass
class Predictions:
    """A family's read-out over a split.

    Attributes:
        results: COCO keypoint results (rescored and NMS'd where the family does that), or ``None`` where only
            per-crop predictions make sense (MPII).
        crops: top-down families: arrays ``preds (N, K, 3)`` (image pixels + score), ``centers``, ``scales``,
            ``scores``, ``image_ids``; ``None`` for whole-image families.
    """

    results: list[dict] | None
    crops: dict[str, np.ndarray] | None = None


class ModelFamily:
    """One kind of model: its data, its loss, its read-out. Subclasses set ``output_types`` and override."""

    output_types: tuple[str, ...] = ()
    #: trains and evaluates on whole images (no person crops, no boxes, no flip test)
    whole_image: bool = False
    #: ``model(images)`` returns ``(B, K, h, w)`` heatmaps (bench and attention maps may rely on it)
    heatmap_output: bool = False
    #: a person detector: its read-out is COCO person boxes, not keypoints (``poserepro detect``)
    detector: bool = False
    #: why one fixed graph cannot hold this family's models (``poserepro export`` refuses them with it)
    not_exportable: str | None = "no export outputs are declared for this family"

    def export_outputs(self, model: nn.Module) -> tuple[str, ...] | None:
        """The raw outputs an exported graph of ``model`` returns, in order: keys of the model's output dict, or
        ``None`` when the model returns one tensor (exported as ``heatmaps``). Decoding stays in Python."""
        return None

    def train_dataset(self, recipe: Recipe) -> Dataset:
        """The training split, ready for a ``DataLoader`` (its ``collate`` / ``transform`` are used if present)."""
        raise NotImplementedError

    def eval_data(self, recipe: Recipe, split: str, use_gt_boxes: bool | None = None,
                  det_file: str | Path | None = None, ann_file: str | Path | None = None,
                  image_dir: str | Path | None = None) -> EvalData:
        """The evaluation split (person boxes: ground truth or a detector's, where the family uses boxes)."""
        raise NotImplementedError

    def forward(self, model: nn.Module, batch: dict[str, Any], train: bool) -> Any:
        """The model's outputs for a batch (``model`` may be DDP-wrapped)."""
        return model(batch["image"])

    def criterion(self, recipe: Recipe, model: nn.Module, device: torch.device) -> Criterion:
        """The training loss of ``model`` (unwrapped) for ``recipe``."""
        raise NotImplementedError

    def predict(self, model: nn.Module, loader: DataLoader, recipe: Recipe, flip: bool, device: torch.device,
                progress: ProgressFn | None = None) -> Predictions:
        """Read-out over ``loader`` (from :meth:`eval_data`) to image-space keypoints."""
        raise NotImplementedError

    def write_results(self, path: Path, results: list[dict]) -> Path:
        """Write the read-out to ``path`` (COCO keypoint results, without ``bbox``)."""
        return write_results(path, results)

    def score(self, ann_file: Path, results: list[dict], recipe: Recipe) -> dict[str, float]:
        """The metrics of ``results`` against ``ann_file`` (COCO keypoint AP)."""
        return evaluate_keypoints(ann_file, results, backend=recipe.eval.backend,
                                  sigmas=recipe.data.keypoint_spec().sigmas)

    def results_tag(self, use_gt_boxes: bool | None, flip: bool) -> str:
        """The part of the default results file name that says how it was made (``det_flip``, ``e2e`` ...)."""
        return f"{'gt' if use_gt_boxes else 'det'}{'_flip' if flip else ''}"


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(cls: type[ModelFamily]) -> type[ModelFamily]:
    """Class decorator: register an instance of ``cls`` for each of its ``output_types``."""
    if not cls.output_types:
        raise ValueError(f"{cls.__name__} declares no output_types")
    for kind in cls.output_types:
        if kind in _FAMILIES:
            raise ValueError(f"output_type {kind!r} registered twice ({type(_FAMILIES[kind]).__name__}, "
                             f"{cls.__name__})")
        _FAMILIES[kind] = cls()
    return cls


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def family_of(model: nn.Module) -> ModelFamily:
    """The registered family of ``model`` (by its ``output_type``, ``"heatmap"`` when it has none)."""
    kind = getattr(unwrap(model), "output_type", "heatmap")
    if kind not in _FAMILIES:
        raise UnknownNameError(f"no model family handles output_type {kind!r}{suggest(kind, list(_FAMILIES))}; "
                               "register one with poserepro.families.register_family")
    return _FAMILIES[kind]
