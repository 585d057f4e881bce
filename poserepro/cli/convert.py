"""``poserepro convert``: official checkpoints → poserepro weights files (register with
``app.command("convert")(convert)``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, handle_errors


@handle_errors
def convert(
    src: Annotated[str | None, typer.Argument(
        help="Official checkpoint: a file, an http(s) URL or official:NAME (see --list).")] = None,
    model: Annotated[str | None, typer.Option(
        help="Registered model the checkpoint is for (implied by official:NAME).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output weights file (default: <model>.pth here).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the released checkpoints official:NAME knows.")] = False,
    from_code: Annotated[str | None, typer.Option(
        "--from-code", help="Code base that wrote it: transpose | btranspose | prtr (default: from its keys).")] = None,
) -> None:
    """Convert an official TransPose / BTranspose / SimpleBaseline / PRTR checkpoint (plain, ``module.``-prefixed or
    a training checkpoint.pth) for `--weights`."""
    from ..errors import PoseReproError
    from ..weights.official import CODE_BASES, OFFICIAL_WEIGHTS, convert_file, official_name

    if list_:
        console.print("[bold]released checkpoints[/] (use as official:NAME)")
        for name, w in OFFICIAL_WEIGHTS.items():
            console.print(f"{name}  model={w.model}  {w.note}  {w.url}", soft_wrap=True)
        return
    if not src:
        raise PoseReproError("give a checkpoint to convert (a file, URL or official:NAME) or --list")
    if from_code is not None and from_code not in CODE_BASES:
        raise PoseReproError(f"--from-code must be one of {', '.join(CODE_BASES)}, got {from_code!r}")
    if model is None and src.startswith("official:"):
        model = OFFICIAL_WEIGHTS[official_name(src)].model
    if model is None and from_code not in (None, "prtr"):
        raise PoseReproError(f"say which model {src} is for with --model (e.g. --model transpose_r_a4)")
    dest, name = convert_file(src, model, out, from_code)
    console.print(f"wrote {dest} (model {name}); use it with --weights {dest}")
