"""``poserepro weights``: the catalogue of starting-point files (``list``) and fetching one (``fetch``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import App, console, handle_errors

app = App(help="Starting-point weights: ImageNet backbones, DETR detectors, released pose checkpoints.",
                  no_args_is_help=True)

COLUMNS = (("name", "name"), ("kind", "kind"), ("size", "size"), ("sha256", "sha256 prefix"),
           ("source", "source"), ("used_by", "used by"))


@app.command("list")
@handle_errors
def list_cmd() -> None:
    """Every known starting-point file: kind, published size and sha256 prefix, source, recipes using it."""
    from ..weights.init import catalogue_rows

    rows = catalogue_rows()
    t = Table(title=f"{len(rows)} starting-point files (model.init / --init)")
    for _key, title in COLUMNS:
        t.add_column(title, overflow="fold")
    for row in rows:
        t.add_row(*(row[key] for key, _title in COLUMNS))
    console.print(t)


@app.command("fetch")
@handle_errors
def fetch_cmd(
    name: Annotated[str, typer.Argument(help="Catalogue name, e.g. resnet50 or detr_r50.")],
    mirror: Annotated[str | None, typer.Option(help="Host keeping the official paths.")] = None,
) -> None:
    """Download (resumable, checked against the published sha256 prefix) one file into the weights cache."""
    from ..weights.catalogue import fetch_entry, get_entry

    console.print(f"{name}: {fetch_entry(get_entry(name), mirror=mirror)}")
