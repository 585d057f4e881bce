"""``poserepro train RECIPE [--set k=v ...] [--resume]``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import PoseReproError
from ..recipes import load_recipe
from ..weights.catalogue import MIRROR_ENV
from .common import console, handle_errors, latest_run, new_run_dir, run_dir_for, runs_root


def progress_bar() -> Progress:
    """A rich progress bar showing epoch, loss, lr and throughput."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        transient=False,
    )


@contextmanager
def epoch_progress(name: str, epochs: int, info: Callable[[dict], str]) -> Iterator[Callable[[dict], None]]:
    """A progress bar over ``epochs`` (fractional by step); yields the callback a training loop calls with its
    ``{epoch, epochs, step, steps, ...}`` state (``info`` turns the state into the bar's text)."""
    with progress_bar() as bar:
        task = bar.add_task(name, total=epochs, info="")

        def cb(s: dict) -> None:
            bar.update(task, completed=s["epoch"] + s["step"] / s["steps"], info=info(s),
                       description=f"epoch {s['epoch'] + 1}/{s['epochs']}")

        yield cb
        bar.update(task, completed=epochs)


def run_training(recipe, run_dir: Path, resume: bool, weights: str | None = None):  # noqa: ANN001, ANN201
    """Train with a progress bar (rank 0 only under torchrun); returns :class:`~poserepro.engine.loop.TrainResult`."""
    import os

    from ..engine import train

    if os.environ.get("RANK", "0") != "0":
        return train(recipe, run_dir, resume=resume, progress=None, init_weights=weights)
    with epoch_progress("train", recipe.schedule.epochs, lambda s: f"loss {s['loss']:.5f}  lr {s['lr']:.2e}  "
                        f"{s['ips']:.0f} img/s  step {s['step']}/{s['steps']}") as cb:
        return train(recipe, run_dir, resume=resume, progress=cb, init_weights=weights)


@handle_errors
def train_cmd(
    recipe: Annotated[str, typer.Argument(help="Recipe stem (see `poserepro list recipes`) or a YAML path.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override: section.key=value (repeatable).")] = None,
    resume: Annotated[bool, typer.Option(help="Resume the latest run of this recipe (or --run-dir).")] = False,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/<recipe>/<time>).")] = None,
    weights: Annotated[str | None, typer.Option(help="Initial weights (checkpoint path; same grammar as --init).")]
    = None,
    init: Annotated[str | None, typer.Option(
        "--init", help="Starting point (overrides model.init): imagenet, detr:r50|r101, dino:PATH, official:NAME, "
        "transfer:PATH or a file; see `poserepro weights list`.")] = None,
    mirror: Annotated[str | None, typer.Option(
        help="Download starting-point files from this host (keeps the official paths; $POSEREPRO_WEIGHTS_MIRROR).")]
    = None,
) -> None:
    """Train a recipe; checkpoints every epoch, logs JSON lines, writes the resolved recipe into the run dir."""
    if init and weights:
        raise PoseReproError("give --init or --weights, not both (they take the same strings)")
    if mirror:
        os.environ[MIRROR_ENV] = mirror  # read by the downloader in this process and in torchrun's workers
    rec = load_recipe(recipe, set_ or [])
    run_dir = run_dir_for(run_dir, resume, lambda: latest_run(rec.name), lambda: new_run_dir(rec.name),
                          f"{runs_root() / rec.name}")
    main = os.environ.get("RANK", "0") == "0"
    if main:
        console.print(f"[bold]train[/] {rec.name} ({rec.model.name}) → {run_dir}")
    result = run_training(rec, run_dir, resume, init or weights)
    if main and result.init:
        console.print(f"init: {result.init}")
    if main:
        console.print(f"done: {result.epochs} epochs, last loss {result.last_loss:.5f}, {result.seconds:.0f} s; "
                  f"checkpoint {result.checkpoint}")
        if result.best:
            console.print(f"best {result.best['metric']} {result.best['value']:.4f} at epoch {result.best['epoch']}: "
                          f"{result.run_dir / 'best.pth'}")
