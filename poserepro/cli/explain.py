"""``poserepro explain``: the papers' explanation figures for one run — dependency areas (TransPose, BTranspose
encoder and MHSA blocks, two runs side by side), position-embedding similarity, TFPose q2q attention and sampling
points, PRTR refinement and per-query classes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, handle_errors

_FIGURE_HELP = ("auto (the family's first) | dependency | position | q2q | sampling | refinement | queries | "
                "query-locations; see the command help.")


def _subject(target: str | None, weights: str | None, set_: list[str] | None, split: str, ann: Path | None,
             images: Path | None, index: int):  # noqa: ANN202 - (Subject, Recipe)
    from ..data.splits import make_dataset, person_records
    from ..engine import build_model
    from ..errors import PoseReproError
    from ..explain.figures import Subject
    from ..weights.state import load_model_weights
    from .evaluate import resolve_target

    rec, run = resolve_target(target)
    if set_:
        from ..recipes import apply_overrides, recipe_from_dict

        rec = recipe_from_dict(apply_overrides(rec.to_dict(), set_), rec.name)
    w = weights or (str(run / "checkpoint.pth") if run else rec.model.weights)
    if w is None:
        raise PoseReproError(f"no weights for {rec.name!r}: train it first or pass --weights FILE")
    model = build_model(rec)
    load_model_weights(model, w)
    model.eval()
    records, _ = person_records(rec, split, use_gt_boxes=True, ann_file=ann, image_dir=images)
    if not 0 <= index < len(records):
        raise PoseReproError(f"--index {index} is out of range: the split has {len(records)} persons")
    spec = rec.data.keypoint_spec()
    label = "/".join(run.parts[-2:]) if (run is not None and weights is None) else f"{rec.name} ({Path(w).name})"
    subject = Subject(model, label, tuple(spec.keypoint_names), make_dataset(rec, records, train=False),
                      [r.image_path for r in records], index, tuple(spec.skeleton))
    return subject, rec


@handle_errors
def explain_cmd(
    target: Annotated[str | None, typer.Argument(help="Recipe, run directory, or nothing (= latest run).")] = None,
    figure: Annotated[str, typer.Option(help=_FIGURE_HELP)] = "auto",
    weights: Annotated[str | None, typer.Option(help="Model weights (default: the run's checkpoint).")] = None,
    compare: Annotated[str | None, typer.Option(
        help="A second run (dir or recipe) drawn below the first, same person (dependency; e.g. -Dino vs random "
             "init).")] = None,
    compare_weights: Annotated[str | None, typer.Option(help="Weights of the --compare run.")] = None,
    index: Annotated[int, typer.Option(help="Which person of the split (GT boxes) to explain.")] = 0,
    split: Annotated[str, typer.Option(help="Split to take the person(s) from.")] = "val",
    ann: Annotated[Path | None, typer.Option(help="Annotation file instead of the recipe's split.")] = None,
    images: Annotated[Path | None, typer.Option(help="Image directory for --ann.")] = None,
    kind: Annotated[str, typer.Option(help="dependency (what a keypoint attends to) | affected.")] = "dependency",
    threshold: Annotated[float, typer.Option(help="Zero out attention values at or below this.")] = 0.0,
    mhsa: Annotated[bool | None, typer.Option("--mhsa/--no-mhsa", help="Add the backbone MHSA blocks' "
                    "dependency areas (default: on for BTranspose).")] = None,
    joints: Annotated[str | None, typer.Option(help="Comma-separated joint names or 0-based indices (default all; "
                      "refinement: the heat-map joint).")] = None,
    layer: Annotated[list[int] | None, typer.Option(help="1-based layer position(s), -1 = last (repeatable): "
                     "dependency rows, q2q decoder layers, sampling / queries decoder layer.")] = None,
    level: Annotated[int, typer.Option(help="Feature level of the sampling points (0 = finest, C3).")] = 0,
    max_persons: Annotated[int | None, typer.Option(help="Average q2q / queries over the first N persons only.")]
    = None,
    queries: Annotated[int, typer.Option(help="How many queries the queries figure shows.")] = 16,
    step: Annotated[int, typer.Option(help="Position figure: show every STEP-th grid location.")] = 2,
    out: Annotated[Path | None, typer.Option(help="Output PNG (default dependency_areas.png / explain_FIGURE.png).")]
    = None,
    dpi: Annotated[int, typer.Option(help="PNG resolution (dots per inch).")] = 100,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the numbers behind it as JSON.")]
    = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe override section.key=value, e.g. "
                                                   "data.input_size=[288,384] (PE tables are fitted).")] = None,
) -> None:
    """Draw an explanation figure of a trained model as a PNG with a caption (run, image, layer, keypoints).

    Figures: dependency (TransPose / BTranspose attention areas per layer, MHSA blocks included for BTranspose,
    --compare for two runs), position (cosine similarity of the position embedding), q2q (TFPose query-to-query
    attention over the split), sampling (TFPose deformable sampling points), refinement (PRTR keypoints after each
    decoder layer), queries (PRTR predicted-class distribution per query), query-locations (where each PRTR query
    predicts each class).
    """
    from ..errors import PoseReproError
    from ..explain.common import select_joints
    from ..explain.figures import FIGURES, default_figure, draw
    from ..io import check_writable

    if figure != "auto" and figure not in FIGURES:
        raise PoseReproError(f"--figure must be auto or one of {', '.join(FIGURES)}, got {figure!r}")
    if kind not in ("dependency", "affected"):
        raise PoseReproError(f"--kind must be dependency or affected, got {kind!r}")
    if not 20 <= dpi <= 600:
        raise PoseReproError(f"--dpi must be between 20 and 600, got {dpi}")
    if not 0.0 <= threshold < 1.0:
        raise PoseReproError(f"--threshold zeroes attention values (0..1) at or below it: give 0 <= it < 1, "
                             f"got {threshold:g}")
    for name, v in (("--step", step), ("--queries", queries), ("--max-persons", max_persons)):
        if v is not None and v < 1:
            raise PoseReproError(f"{name} must be at least 1, got {v}")
    if images is not None and ann is None:
        raise PoseReproError("--images goes with --ann (the annotation file of those images); without --ann the "
                             "recipe's split is used")
    if compare_weights is not None and compare is None:
        raise PoseReproError("--compare-weights needs --compare (the second run's recipe or run directory)")
    if out is not None and json_out is not None and out.resolve() == json_out.resolve():
        raise PoseReproError(f"--json {json_out} is the --out figure itself: give it another name")
    for path, option in ((out, "--out"), (json_out, "--json")):
        if path is not None:
            check_writable(path, option)
    if out is not None and out.suffix.lower() != ".png":
        raise PoseReproError(f"--out {out}: the figure is a PNG, give a file name ending in .png")
    subject, _ = _subject(target, weights, set_, split, ann, images, index)
    other = None
    if compare is not None:
        other, _ = _subject(compare, compare_weights, set_, split, ann, images, index)
    fig = default_figure(subject.model) if figure == "auto" else figure
    names = subject.joint_names
    sel = select_joints(joints.split(",") if joints else None, names, len(names))
    if out is None:
        out = check_writable(Path("dependency_areas.png" if fig == "dependency" else f"explain_{fig}.png"), "--out")
    path, summary = draw(fig, subject, out, json_out, compare=other, kind=kind, threshold=threshold, mhsa=mhsa,
                         joints=sel if joints else None, layers=layer, level=level, max_persons=max_persons,
                         queries=queries, position_step=step, dpi=dpi)
    console.print(f"{summary} → {path}" + (f" (numbers: {json_out})" if json_out else ""))
