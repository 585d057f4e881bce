"""``poserepro data``: download and verify datasets.

A Typer sub-app; the main app registers it (``app.add_typer(data.app, name="data")``) and turns
:class:`~poserepro.errors.PoseReproError` into a one-line message, so nothing here catches those.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from poserepro.cli.common import App
from poserepro.data.datasets_catalog import DEFAULT_PARTS, get_entries
from poserepro.data.download import ProgressFn, download_dataset
from poserepro.data.verify import verify_dataset
from poserepro.errors import PoseReproError

app = App(
    help="Download, verify and prepare datasets (COCO 2017, MPII).",
    no_args_is_help=True,
    add_completion=False,
)

_STATUS_STYLE = {
    "ok": "green",
    "unverified": "yellow",
    "missing": "dim",
    "corrupt": "bold red",
    "downloaded": "green",
    "local": "green",
    "linked": "yellow",
    "skipped": "cyan",
}


class DatasetName(str, Enum):
    """Datasets the catalog knows."""

    coco = "coco"
    mpii = "mpii"


def _parts_help() -> str:
    lines = []
    for name in ("coco", "mpii"):
        parts = ",".join(get_entries(name))
        lines.append(f"{name}: {parts} (default {','.join(DEFAULT_PARTS[name])})")
    return "Comma-separated parts. " + "; ".join(lines) + "."


def _rich_progress(progress: Progress) -> ProgressFn:
    """Adapt the library's ``progress(label, done, total)`` callback to rich (one task per label)."""
    tasks: dict[str, int] = {}

    def callback(label: str, done: int, total: int | None) -> None:
        task = tasks.get(label)
        if task is None:
            task = tasks[label] = progress.add_task(label, total=total)
        progress.update(task, completed=done, total=total)

    return callback


@app.command()
def download(
    name: Annotated[DatasetName, typer.Argument(help="Dataset: coco or mpii.")],
    root: Annotated[Path, typer.Option("--root", help="Data root; the dataset goes to ROOT/NAME/.")] = Path(
        "data"
    ),
    parts: Annotated[str | None, typer.Option("--parts", help=_parts_help())] = None,
    mirror: Annotated[
        str | None,
        typer.Option(
            "--mirror",
            help="Base URL replacing the official host (same relative paths, e.g. zips/val2017.zip).",
        ),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Local folder holding the archives (or extracted folders), or one archive; no network.",
        ),
    ] = None,
    keep_archives: Annotated[
        bool, typer.Option("--keep-archives", help="Keep downloaded archives in ROOT/NAME/downloads/.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Socket timeout in seconds.")] = 30.0,
) -> None:
    """Download (resumably), verify and extract a dataset; re-running skips what is already verified."""
    console = Console()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        results = download_dataset(
            name.value,
            root,
            parts,
            mirror=mirror,
            from_dir=from_dir,
            progress=_rich_progress(progress),
            keep_archives=keep_archives,
            timeout=timeout,
        )
    table = Table(title=f"{name.value} -> {root / name.value}")
    table.add_column("part", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("checksum")
    table.add_column("note", overflow="fold")
    for part, info in results.items():
        status = info["status"]
        table.add_row(
            part,
            f"[{_STATUS_STYLE.get(status, '')}]{status}[/]",
            str(info.get("checksum", "")),
            str(info.get("note", "")),
        )
    console.print(table)
    console.print(f"Next: poserepro data verify {name.value} --root {root}")


@app.command()
def verify(
    name: Annotated[DatasetName, typer.Argument(help="Dataset: coco or mpii.")],
    root: Annotated[Path, typer.Option("--root", help="Data root holding NAME/.")] = Path("data"),
    sample: Annotated[
        int,
        typer.Option("--sample", help="Check referenced images fully up to this many, else a random sample."),
    ] = 1000,
) -> None:
    """Check folders, image counts, annotation files and verified markers; exit 1 if something is corrupt."""
    console = Console()
    rows = verify_dataset(name.value, root, sample=sample)
    table = Table(title=f"verify {name.value} in {root / name.value}")
    table.add_column("part", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for row in rows:
        table.add_row(row.part, f"[{_STATUS_STYLE.get(row.status, '')}]{row.status}[/]", row.detail)
    console.print(table)
    if any(r.status == "corrupt" for r in rows):
        raise typer.Exit(code=1)
    if rows and all(r.status == "missing" for r in rows):
        raise PoseReproError(f"nothing of {name.value} under {root / name.value}: download it with "
                             f"`poserepro data download {name.value} --root {root}` (or pass the right --root)")


# The `synth` command (synthetic benchmark set) is added here by the lead.
