"""``poserepro eval``: evaluate a recipe / run, or score any COCO keypoint results file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import PoseReproError
from ..io import atomic_write_json, check_writable
from ..recipes import Recipe, load_recipe, recipe_from_dict
from .common import console, handle_errors, latest_run, results_dir, runs_root

SHOWN = ("AP", "AP50", "AP75", "APM", "APL", "AR")
SHOWN_MPII = ("PCKh@0.5/Head", "PCKh@0.5/Shoulder", "PCKh@0.5/Elbow", "PCKh@0.5/Wrist", "PCKh@0.5/Hip",
              "PCKh@0.5/Knee", "PCKh@0.5/Ankle", "PCKh@0.5/Mean", "PCKh@0.1/Mean")


def metrics_table(title: str, rows: list[tuple[str, dict[str, float]]], shown: tuple[str, ...] = SHOWN) -> Table:
    """A rich table with one line per evaluated setting."""
    t = Table(title=title)
    t.add_column("setting")
    for m in shown:
        t.add_column(m.replace("PCKh@", "").replace("/", " "), justify="right")
    for name, met in rows:
        t.add_row(name, *(f"{met.get(m, float('nan')):.3f}" for m in shown))
    return t


def resolve_target(target: str | None) -> tuple[Recipe, Path | None]:
    """A recipe stem/path or a run directory (or nothing: the latest run) → (recipe, run dir or None)."""
    import yaml

    if target is None:
        run = latest_run()
        if run is None:
            raise PoseReproError(
                "no trained run found under runs/: train one (`poserepro train RECIPE`) or name a recipe with "
                "--weights FILE"
            )
        target = str(run)
    p = Path(target)
    if p.is_dir():
        rf = p / "recipe.yaml"
        if not rf.is_file():
            raise PoseReproError(f"{p} is not a run directory (no recipe.yaml): pass a run dir or a recipe name")
        return recipe_from_dict(yaml.safe_load(rf.read_text()) or {}), p
    rec = load_recipe(target)
    return rec, latest_run(rec.name)


def resolve_weights(rec: Recipe, run: Path | None, weights: str | None) -> str:
    """The weights to load: ``--weights``, else the run's checkpoint, else the recipe's ``model.weights``."""
    w = weights or (str(run / "checkpoint.pth") if run else rec.model.weights)
    if w is None:
        raise PoseReproError(f"no weights for {rec.name!r}: train it (`poserepro train {rec.name}`), pass a run "
                             "directory, or --weights FILE|official:NAME")
    return w


@handle_errors
def eval_cmd(
    target: Annotated[str | None, typer.Argument(help="Recipe, run directory, or nothing (= latest run).")] = None,
    weights: Annotated[str | None, typer.Option(help="Model weights (default: the run's checkpoint).")] = None,
    split: Annotated[str, typer.Option(help="val | test-dev (| train).")] = "val",
    gt_boxes: Annotated[bool | None, typer.Option("--gt-boxes/--det-boxes",
                        help="GT person boxes, or detector boxes (default: the recipe's, i.e. the paper's).")] = None,
    det_file: Annotated[Path | None, typer.Option(help="Detector person-box file (COCO detection JSON).")] = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="Flip test (default from recipe).")] = None,
    ann: Annotated[Path | None, typer.Option(help="Annotation file (overrides the recipe's split).")] = None,
    images: Annotated[Path | None, typer.Option(help="Image directory for --ann.")] = None,
    results: Annotated[Path | None, typer.Option(help="Score this COCO keypoint results JSON against --ann.")] = None,
    backend: Annotated[str | None, typer.Option(help="pycocotools | xtcocotools | faster-coco-eval.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe override section.key=value.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Where predictions go (default: the run dir).")] = None,
    record: Annotated[bool, typer.Option(help="Append tidy rows to results/evaluations.csv.")] = True,
) -> None:
    """Evaluate a model (COCO AP with rescoring + OKS-NMS), or score an existing results file."""
    for path, option, folder in ((json_out, "--json", False), (out_dir, "--out-dir", True)):
        if path is not None:
            check_writable(path, option, folder)
    if results is not None:
        _score_file(results, ann, backend or "pycocotools", json_out)
        return
    import torch

    from ..engine import build_model, evaluate
    from ..engine.build import with_device
    from ..families import family_of
    from ..recipes import apply_overrides
    from ..results import append_rows, tidy_rows
    from ..weights.state import load_model_weights

    if split not in ("val", "test-dev", "test", "train"):
        raise PoseReproError(f"unknown split {split!r}: use val, test-dev (COCO; MPII: test) or train")
    rec, run = resolve_target(target)
    if set_:
        rec = recipe_from_dict(apply_overrides(rec.to_dict(), set_), rec.name)
    if backend:
        rec = recipe_from_dict(apply_overrides(rec.to_dict(), [f"eval.backend={backend}"]), rec.name)
    rec = with_device(rec)
    w = resolve_weights(rec, run, weights)
    model = build_model(rec)
    if family_of(model).detector:
        raise PoseReproError(f"{rec.name} is a person detector: score and export its boxes with `poserepro detect "
                             f"{target or ''}`".rstrip() + " (COCO box AP; a box file for --det-file)")
    load_model_weights(model, w)
    params = sum(p.numel() for p in model.parameters())
    use_gt = rec.eval.use_gt_boxes if gt_boxes is None else gt_boxes
    if det_file is not None and gt_boxes is None:
        use_gt = False
    fl = rec.eval.flip if flip is None else flip
    dest = out_dir or run or runs_root() / rec.name / "eval"
    boxes = "gt" if use_gt else "detected"
    if family_of(model).whole_image:  # whole images: no person boxes and no flip test
        boxes, fl = "none (end-to-end)", False
    console.print(f"[bold]eval[/] {rec.name} on {split} ({boxes} boxes, flip {'on' if fl else 'off'}) weights {w}")
    with torch.inference_mode():
        res = evaluate(model, rec, dest, split=split, use_gt_boxes=use_gt, det_file=det_file, flip=fl,
                       ann_file=ann, image_dir=images)
    console.print(f"{res.num_crops} person crops → {res.num_results} results → {res.results_file}")
    if split == "test-dev" and rec.data.dataset != "mpii":
        _testdev(res.results_file, rec, dest)
        return
    mpii = rec.data.dataset == "mpii"
    kind = "MPII PCKh" if mpii else "COCO keypoints"
    console.print(metrics_table(f"{rec.name}: {kind}, {split}", [(f"{boxes} boxes", res.metrics)],
                                SHOWN_MPII if mpii else SHOWN))
    if json_out:
        atomic_write_json(json_out, res.metrics)
    if record:
        dataset = "custom" if ann else rec.data.dataset
        path = append_rows(results_dir() / "evaluations.csv",
                           tidy_rows(rec, res.metrics, split, boxes, fl, run, params, dataset))
        console.print(f"tidy rows appended to {path}")


def _testdev(results_file: Path, rec: Recipe, dest: Path) -> None:
    from ..data.splits import split_files
    from ..evaluation.testdev import SUBMIT_HELP, load_image_info, write_submission
    from ..io import read_json

    files = split_files(rec.data, "test-dev")
    ids = load_image_info(files.ann_file)
    res = read_json(results_file, "results file")
    js, zp = write_submission(res, dest, rec.name.replace("-", "_"), ids)
    console.print(f"test-dev submission: {js}\nzipped: {zp}")
    console.print(SUBMIT_HELP)


def _score_file(results: Path, ann: Path | None, backend: str, json_out: Path | None) -> None:
    from ..evaluation.coco import evaluate_keypoints

    if ann is None:
        raise PoseReproError("--results needs --ann GT.json (the COCO keypoint annotation file to score against)")
    if backend not in ("pycocotools", "xtcocotools", "faster-coco-eval"):
        raise PoseReproError(f"unknown backend {backend!r}: use pycocotools, xtcocotools or faster-coco-eval")
    metrics = evaluate_keypoints(ann, results, backend=backend)  # type: ignore[arg-type]
    console.print(metrics_table(f"{results.name} vs {ann.name}", [(backend, metrics)]))
    if json_out:
        atomic_write_json(json_out, metrics)
        console.print(f"metrics written to {json_out}")
    else:
        console.print(json.dumps({k: round(v, 4) for k, v in metrics.items()}))
