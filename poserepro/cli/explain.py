"""``poserepro explain``: TransPose-style dependency / affected areas of the predicted keypoints of one person."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, handle_errors


@handle_errors
def explain_cmd(
    target: Annotated[str | None, typer.Argument(help="Recipe, run directory, or nothing (= latest run).")] = None,
    weights: Annotated[str | None, typer.Option(help="Model weights (default: the run's checkpoint).")] = None,
    index: Annotated[int, typer.Option(help="Which person of the split (GT boxes) to explain.")] = 0,
    split: Annotated[str, typer.Option(help="Split to take the person from.")] = "val",
    ann: Annotated[Path | None, typer.Option(help="Annotation file instead of the recipe's split.")] = None,
    images: Annotated[Path | None, typer.Option(help="Image directory for --ann.")] = None,
    kind: Annotated[str, typer.Option(help="dependency (what a keypoint attends to) | affected.")] = "dependency",
    threshold: Annotated[float, typer.Option(help="Zero out attention values at or below this.")] = 0.0,
    out: Annotated[Path, typer.Option(help="Output PNG.")] = Path("dependency_areas.png"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe override section.key=value, e.g. "
                                                   "data.input_size=[288,384] (PE tables are fitted).")] = None,
) -> None:
    """Draw the attention-based dependency (or affected) areas of each predicted keypoint, one row per layer."""
    import numpy as np

    from ..data.coco import IMAGENET_MEAN, IMAGENET_STD
    from ..data.splits import make_dataset, person_records
    from ..engine import build_model
    from ..errors import PoseReproError
    from ..explain import dependency_areas, render_dependency_figure
    from ..weights.state import load_model_weights
    from .evaluate import resolve_target

    if kind not in ("dependency", "affected"):
        raise PoseReproError(f"--kind must be dependency or affected, got {kind!r}")
    rec, run = resolve_target(target)
    if set_:
        from ..recipes import apply_overrides, recipe_from_dict

        rec = recipe_from_dict(apply_overrides(rec.to_dict(), set_), rec.name)
    w = weights or (str(run / "checkpoint.pth") if run else rec.model.weights)
    if w is None:
        raise PoseReproError(f"no weights for {rec.name!r}: train it first or pass --weights FILE")
    model = build_model(rec)
    load_model_weights(model, w)
    records, _ = person_records(rec, split, use_gt_boxes=True, ann_file=ann, image_dir=images)
    if not 0 <= index < len(records):
        raise PoseReproError(f"--index {index} is out of range: the split has {len(records)} persons")
    sample = make_dataset(rec, records, train=False)[index]
    maps = dependency_areas(model, sample["image"], threshold)
    crop = sample["image"].numpy().transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    spec = rec.data.keypoint_spec()
    path = render_dependency_figure(np.clip(crop, 0, 1), maps, spec.keypoint_names, out, kind=kind)
    console.print(f"{kind} areas of {len(maps.keypoints)} keypoints over {maps.dependency.shape[0]} layers → {path}")
