"""``poserepro infer PATH...``: run a model on images, folders or videos; COCO keypoint JSON and drawn output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import PoseReproError
from .common import console, err_console, handle_errors

BOXES_HELP = ("Person boxes: a COCO detection JSON [{image_id, category_id, bbox, score}] (image_id = the number "
              "in the image's file name, e.g. 000000000785.jpg -> 785, else its position 1..N; for a video the "
              "frame index from 0) or a COCO annotation file (its 'images' map file names to ids).")


def recipe_for_weights(weights: str) -> str:
    """The recipe of the model an ``official:NAME`` checkpoint belongs to (e.g. ``transpose-r-a4``)."""
    from ..recipes import list_recipes, load_recipe
    from ..weights.official import OFFICIAL_WEIGHTS, official_name

    model = OFFICIAL_WEIGHTS[official_name(weights)].model
    stems = list_recipes()
    if model.replace("_", "-") in stems:
        return model.replace("_", "-")
    for stem in stems:
        if load_recipe(stem).model.name == model:
            return stem
    raise PoseReproError(f"no recipe builds {model} (for {weights}): name one as the first argument")


def load_target_model(target: str | None, weights: str | None, set_: list[str] | None):  # noqa: ANN201
    """A recipe / run dir / nothing (+ ``--weights``, ``--set``) → ``(recipe, model with weights, weights spec)``.

    ``--weights official:NAME`` alone picks the recipe of that checkpoint's model."""
    from ..engine import build_model
    from ..recipes import apply_overrides, recipe_from_dict
    from ..weights.state import load_model_weights
    from .evaluate import resolve_target, resolve_weights

    if target is None and weights is not None and weights.startswith("official:"):
        target = recipe_for_weights(weights)
    rec, run = resolve_target(target)
    if set_:
        rec = recipe_from_dict(apply_overrides(rec.to_dict(), set_), rec.name)
    w = resolve_weights(rec, run, weights)
    model = build_model(rec)
    load_model_weights(model, w)
    return rec, model.eval(), w


@handle_errors
def infer_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Images, folders of images / videos, or videos.")],
    model_: Annotated[str | None, typer.Option("--model", "-m", help="Recipe name, run directory, or nothing "
                                               "(= latest run; with --weights official:NAME its recipe).")] = None,
    weights: Annotated[str | None, typer.Option(help="Weights: a checkpoint, official:NAME or a URL "
                                                "(default: the run's checkpoint).")] = None,
    boxes: Annotated[Path | None, typer.Option(help=BOXES_HELP)] = None,
    whole_image: Annotated[bool, typer.Option("--whole-image", help="One person filling each frame: the frame is "
                                              "the person box (top-down models).")] = False,
    box_thr: Annotated[float, typer.Option(help="Ignore boxes scored below this.")] = 0.0,
    detector: Annotated[str | None, typer.Option(help="Person boxes from a detector: its recipe or run directory "
                                                 "(a whole-image model that returns boxes, e.g. a "
                                                 "prtr_detector_* run).")] = None,
    detector_weights: Annotated[str | None, typer.Option(help="The detector's weights (default: its run's "
                                                         "checkpoint).")] = None,
    det_thr: Annotated[float, typer.Option(help="Keep detector boxes scored at least this.")] = 0.5,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("infer_out"),
    draw: Annotated[bool, typer.Option("--draw", help="Also write drawn images (PNG) / videos (MP4).")] = False,
    kpt_thr: Annotated[float, typer.Option(help="Draw joints (and limbs) scored above this.")] = 0.3,
    kpt_scores: Annotated[bool, typer.Option("--kpt-scores/--no-kpt-scores",
                                             help="Write each drawn joint's score beside it.")] = True,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="Flip test (default: the recipe's).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | auto (default: the recipe's).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe override section.key=value.")] = None,
) -> None:
    """Run a pose model on your images / videos: COCO keypoint results JSON, and with --draw the skeletons."""
    import torch

    from ..engine.build import resolve_device
    from ..families import family_of
    from ..infer import InferOptions, discover, load_box_file, run_inference
    from ..io import check_writable

    for name, v in (("--kpt-thr", kpt_thr), ("--box-thr", box_thr), ("--det-thr", det_thr)):
        if not 0.0 <= v <= 1.0:
            raise PoseReproError(f"{name} is a score threshold between 0 and 1, got {v:g}")
    check_writable(out, "--out", folder=True)
    if detector_weights is not None and detector is None and not detector_weights.startswith("official:"):
        raise PoseReproError("--detector-weights needs --detector (the detector's recipe or run directory)")
    sources = discover(list(paths))
    if not sources.images and not sources.videos:
        lines = "; ".join(f"{s.path}: {s.reason}" for s in sources.skipped)
        raise PoseReproError(f"nothing to run on ({lines})" if lines else "nothing to run on")
    rec, model, w = load_target_model(model_, weights, set_)
    dev = torch.device(resolve_device(device or rec.train.device))
    fam = family_of(model)
    if fam.whole_image and (boxes is not None or whole_image or detector is not None):
        err_console.print(f"note: {rec.model.name} finds the persons itself; --boxes / --detector / --whole-image "
                          "are not used")
        boxes, whole_image, detector = None, False, None
    box_file = load_box_file(boxes, box_thr) if boxes is not None else None
    det = None
    if detector is not None or detector_weights is not None:
        det_rec, det_model, _ = load_target_model(detector, detector_weights, None)
        det = (det_model, det_rec)
    fl = (rec.eval.flip if flip is None else flip) and not fam.whole_image
    opts = InferOptions(box_file, whole_image, det, det_thr, fl, draw, kpt_thr, kpt_scores)
    how = "end-to-end (no boxes)" if fam.whole_image else (
        f"boxes {boxes}" if boxes else f"detector {det[1].name}" if det else "whole-image boxes")
    console.print(f"[bold]infer[/] {rec.name} ({rec.model.name}) weights {w}: {len(sources.images)} image(s), "
                  f"{len(sources.videos)} video(s), {how}, flip {'on' if fl else 'off'}, device {dev}")
    with Progress(TextColumn("[bold]infer"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[what]}"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("infer", total=None, what="")

        def cb(s: dict) -> None:
            bar.update(task, completed=s["done"], total=s["total"], what=s["what"])

        with torch.inference_mode():
            summary = run_inference(model, rec, sources, out, opts, dev, cb)
    t = Table(title=f"infer: {rec.name} → {out}")
    for c, j in (("input", "left"), ("frames", "right"), ("persons", "right"), ("drawn", "left")):
        t.add_column(c, justify=j)  # type: ignore[arg-type]
    for name, frames, persons, drawn in summary.rows:
        t.add_row(name, str(frames), str(persons), drawn)
    console.print(t)
    console.print(f"{summary.persons} person(s); results: " + ", ".join(str(f) for f in summary.files
                                                                        if f.suffix == ".json"))
    for s in summary.skipped:
        err_console.print(f"skipped {s.path}: {s.reason}", soft_wrap=True)
    if summary.skipped:
        err_console.print(f"{len(summary.skipped)} input(s) skipped (listed above)")
