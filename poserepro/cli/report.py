"""``poserepro report``: markdown tables from results/, optionally written into the README."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, handle_errors


@handle_errors
def report_cmd(
    section: Annotated[
        str | None, typer.Argument(help="models | ci | evaluations | ablations | speed | pipeline")
    ] = None,
    readme: Annotated[Path | None, typer.Option(help="Regenerate the report blocks of this README.")] = None,
) -> None:
    """Print the results tables as markdown (or refresh the README's generated sections)."""
    from ..errors import UnknownNameError, suggest
    from ..report import SECTIONS, update_readme
    from .common import results_dir

    if readme is not None:
        done = update_readme(readme, results_dir())
        console.print(f"updated {readme}: {', '.join(done) or 'no report blocks found'}")
        return
    names = [section] if section else list(SECTIONS)
    for n in names:
        if n not in SECTIONS:
            raise UnknownNameError(f"unknown report section {n!r}{suggest(n, list(SECTIONS))}")
        typer.echo(f"## {n}\n\n{SECTIONS[n](results_dir())}\n")
