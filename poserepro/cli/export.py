"""``poserepro export [RUN|RECIPE] --weights ... --format onnx|torchscript --out FILE``, with a parity check."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .common import console, handle_errors


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


@handle_errors
def export_cmd(
    target: Annotated[str | None, typer.Argument(help="Recipe, run directory, or nothing (= latest run; with "
                                                 "--weights official:NAME its recipe).")] = None,
    weights: Annotated[str | None, typer.Option(help="Weights: a checkpoint, official:NAME or a URL "
                                                "(default: the run's checkpoint).")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="onnx (dynamic batch) or torchscript.")]
    = ExportFormat.onnx,
    out: Annotated[Path | None, typer.Option(help="Output file (default: <recipe>.onnx / .pt).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 16: grid_sample for deformable attention).")] = 17,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare the file's outputs with PyTorch "
                                        "(ONNX: onnxruntime, poserepro[export]); fail at max abs diff >= 1e-4.")]
    = True,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Recipe override section.key=value, e.g. "
                                                   "data.input_size=[288,384].")] = None,
) -> None:
    """Export a model's network (crop batch -> raw outputs; decoding stays in poserepro.codecs) to ONNX or
    TorchScript and check it against PyTorch on batch sizes 1 and 3."""
    from ..errors import PoseReproError
    from ..export import export_model
    from ..export.convert import DEFAULT_OPSET, check_opset
    from ..io import check_writable
    from .infer import load_target_model

    if fmt is ExportFormat.onnx:
        check_opset(opset)
    elif opset != DEFAULT_OPSET:
        raise PoseReproError(f"--opset is for --format onnx; a TorchScript file has no opset (got --opset {opset})")
    if out is not None:
        check_writable(out, "--out")
        if (out.suffix.lower() == ".onnx") != (fmt is ExportFormat.onnx):
            raise PoseReproError(f"--out {out} does not match --format {fmt.value}: an ONNX file ends in .onnx, a "
                                 "TorchScript file does not (e.g. .pt)")
    rec, model, w = load_target_model(target, weights, set_)
    dest = check_writable(out or Path(f"{rec.name}.{'onnx' if fmt is ExportFormat.onnx else 'pt'}"), "--out")
    rep = export_model(model, tuple(rec.data.input_size), dest, fmt.value, opset=opset, check=check)
    w_, h_ = rec.data.input_size
    console.print(f"[bold]export[/] {rec.name} ({rec.model.name}, weights {w}) → {rep.path} ({fmt.value}, input "
                  f"image (batch, 3, {h_}, {w_}), outputs {', '.join(rep.outputs)}, dynamic batch)")
    if rep.max_abs_diff is not None:
        console.print(f"parity vs PyTorch at batch {', '.join(map(str, rep.batches))}: max abs diff "
                      f"{rep.max_abs_diff:.2e} (< 1e-4) in {rep.seconds:.1f} s")
