"""``poserepro report``: markdown tables from results/ (optionally written into the README), and training
curves of run directories (``report curves RUN_DIR ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, handle_errors


@handle_errors
def report_cmd(
    section: Annotated[
        str | None, typer.Argument(help="models | ci | evaluations | ablations | speed | pipeline | curves")
    ] = None,
    runs: Annotated[
        list[Path] | None, typer.Argument(help="curves: training run directories (their log.jsonl)")
    ] = None,
    readme: Annotated[Path | None, typer.Option(help="Regenerate the report blocks of this README.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="curves: the PNG to write (the CSV goes beside it); default results/curves.png")
    ] = None,
) -> None:
    """Print the results tables as markdown (or refresh the README's generated sections); ``curves RUN_DIR ...``
    plots loss and validation metric vs epoch of training runs."""
    from ..errors import PoseReproError, UnknownNameError, suggest
    from ..report import SECTIONS, update_readme
    from .common import results_dir

    if section == "curves":
        from ..curves import write_curves

        png, csv_path = write_curves(list(runs or []), out or results_dir() / "curves.png")
        console.print(f"wrote {png} and {csv_path}")
        return
    if runs or out is not None:
        raise PoseReproError("run directories and --out go with `poserepro report curves RUN_DIR ...` only")
    if readme is not None:
        done = update_readme(readme, results_dir())
        console.print(f"updated {readme}: {', '.join(done) or 'no report blocks found'}")
        return
    names = [section] if section else list(SECTIONS)
    for n in names:
        if n not in SECTIONS:
            raise UnknownNameError(f"unknown report section {n!r}{suggest(n, [*SECTIONS, 'curves'])}")
        typer.echo(f"## {n}\n\n{SECTIONS[n](results_dir())}\n")
