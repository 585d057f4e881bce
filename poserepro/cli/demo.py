"""``poserepro demo``: the main job on the embedded benchmark, end to end on a CPU in minutes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ..recipes import load_recipe
from .common import console, handle_errors, new_run_dir, results_dir


@handle_errors
def demo_cmd(
    recipe: Annotated[str, typer.Option(help="Smoke recipe to run.")] = "transpose-r-smoke",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe override section.key=value.")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/<recipe>/<time>).")] = None,
) -> None:
    """Synthesise the benchmark, train a smoke TransPose-R on CPU, evaluate it (detector and GT boxes, flip test)."""
    import torch

    from ..data.splits import ensure_synthetic
    from ..engine import evaluate
    from ..results import append_rows, tidy_rows
    from .evaluate import metrics_table
    from .train import run_training

    t0 = time.perf_counter()
    rec = load_recipe(recipe, set_ or [])
    console.print(f"[bold]1/3 data[/]: synthetic benchmark at {rec.data.root}")
    ensure_synthetic(rec.data)
    run_dir = run_dir or new_run_dir(rec.name)
    console.print(f"[bold]2/3 train[/]: {rec.name} ({rec.model.name}), {rec.schedule.epochs} epochs → {run_dir}")
    result = run_training(rec, run_dir, resume=False)
    console.print("[bold]3/3 eval[/]: synthetic val, flip test on, pycocotools")
    model = result_model(rec, result.checkpoint)
    params = sum(p.numel() for p in model.parameters())
    rows, table_rows = [], []
    with torch.inference_mode():
        for use_gt in (False, True):
            boxes = "gt" if use_gt else "detected"
            res = evaluate(model, rec, run_dir, split="val", use_gt_boxes=use_gt, flip=True)
            table_rows.append((f"{boxes} boxes", res.metrics))
            rows += tidy_rows(rec, res.metrics, "val", boxes, True, run_dir, params)
            console.print(f"  {boxes} boxes: {res.num_crops} crops → predictions {res.results_file}")
    console.print(metrics_table(f"{rec.name} on synthetic val ({params / 1e6:.2f}M params)", table_rows))
    path = append_rows(results_dir() / "evaluations.csv", rows)
    console.print(f"run: {run_dir}\nresults rows: {path}\nwall time: {time.perf_counter() - t0:.0f} s")


def result_model(rec, checkpoint: Path):  # noqa: ANN001, ANN201
    """Build the recipe's model and load a checkpoint into it."""
    from ..engine import build_model
    from ..weights.state import load_model_weights

    model = build_model(rec)
    load_model_weights(model, checkpoint)
    return model
