"""``poserepro detect``: run a person detector (PRTR's, ``prtr-detector-*``) over a split and write the COCO
detection file the two-stage models take as their boxes (``poserepro eval --det-file``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import PoseReproError
from ..io import check_writable
from .common import console, handle_errors, results_dir, runs_root
from .evaluate import metrics_table, resolve_target, resolve_weights

SHOWN_BOXES = ("AP", "AP50", "AP75", "APM", "APL", "AR")


@handle_errors
def detect_cmd(
    target: Annotated[str | None, typer.Argument(help="Detector run directory or recipe (default: latest run).")]
    = None,
    weights: Annotated[str | None, typer.Option(help="Detector weights (default: the run's checkpoint).")] = None,
    split: Annotated[str, typer.Option(help="val | test-dev (| train).")] = "val",
    out: Annotated[Path | None, typer.Option(help="Detection file to write (default: RUN/dets_SPLIT.json).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Keep each image's K most confident boxes (default all).")]
    = None,
    ann: Annotated[Path | None, typer.Option(help="Annotation / image-info file (overrides the recipe's).")] = None,
    images: Annotated[Path | None, typer.Option(help="Image directory for --ann.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe override section.key=value.")] = None,
    record: Annotated[bool, typer.Option(help="Append the box AP rows to results/detections.csv.")] = True,
) -> None:
    """Detect persons and write a COCO detection file (image_id, category_id 1, bbox, score); on val also print
    COCO person box AP (pycocotools iouType=bbox). test-dev writes the file only (no public ground truth)."""
    from ..engine import build_model
    from ..engine.build import with_device
    from ..engine.detect import detect
    from ..recipes import apply_overrides, recipe_from_dict
    from ..results import append_rows, tidy_rows
    from ..weights.state import load_model_weights

    if split not in ("val", "test-dev", "train"):
        raise PoseReproError(f"unknown split {split!r}: use val, test-dev or train")
    if out is not None:
        check_writable(out, "--out")
    if top_k is not None and top_k < 1:
        raise PoseReproError(f"--top-k must be at least 1, got {top_k}")
    rec, run = resolve_target(target)
    if set_:
        rec = recipe_from_dict(apply_overrides(rec.to_dict(), set_), rec.name)
    rec = with_device(rec)
    w = resolve_weights(rec, run, weights)
    model = build_model(rec)
    load_model_weights(model, w)
    dest = out or (run or runs_root() / rec.name / "detect") / f"dets_{split}.json"
    console.print(f"[bold]detect[/] {rec.name} on {split} weights {w}")
    res = detect(model, rec, dest, split=split, ann_file=ann, image_dir=images, top_k=top_k)
    console.print(f"{res.num_images} images → {res.num_boxes} person boxes → {res.dets_file} "
                  f"({res.seconds:.0f} s; checked as `eval --det-file` reads it)")
    if not res.metrics:
        console.print(f"no ground truth for {split}: the file is the box submission for `poserepro eval --split "
                      f"{split} --det-file {res.dets_file}`")
        return
    rows = [("all persons", res.metrics)]
    if "AP_kpt" in res.metrics:
        rows.append(("persons with keypoints", {k[:-4]: v for k, v in res.metrics.items() if k.endswith("_kpt")}))
    console.print(metrics_table(f"{rec.name}: COCO person boxes, {split}", rows, SHOWN_BOXES))
    if record:
        params = sum(p.numel() for p in model.parameters())
        dataset = "custom" if ann else rec.data.dataset
        path = append_rows(results_dir() / "detections.csv",
                           tidy_rows(rec, res.metrics, split, "none", False, run, params, dataset))
        console.print(f"tidy rows appended to {path}")
