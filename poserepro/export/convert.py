"""Export a model to ONNX (dynamic batch) or TorchScript, and check the exported file against PyTorch.

The parity check runs the exported file on random crops of batch sizes other than the one traced with (1 and 3;
the export uses 2), so that the dynamic batch axis is exercised, and compares every output with PyTorch's:
``max |exported - pytorch|`` must stay below ``tol`` (1e-4). ONNX files run in onnxruntime (``poserepro[export]``).
Multi-scale deformable attention (TFPose) samples with ``grid_sample``, which ONNX has from opset 16 on; the
default opset is 17.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..io import atomic_output
from .graph import ExportError, ExportGraph

Format = Literal["onnx", "torchscript"]
DEFAULT_OPSET = 17
MIN_OPSET = 16          # grid_sample (TFPose's deformable attention)
TRACE_BATCH = 2
CHECK_BATCHES = (1, 3)


@dataclass(frozen=True)
class ExportReport:
    """The written file, its outputs, and the parity check (``max_abs_diff`` over outputs and batch sizes)."""

    path: Path
    fmt: str
    outputs: tuple[str, ...]
    max_abs_diff: float | None
    batches: tuple[int, ...]
    seconds: float


def _inputs(input_size: tuple[int, int], batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, int(input_size[1]), int(input_size[0]), generator=g)


def export_model(model: nn.Module, input_size: tuple[int, int], out: str | Path, fmt: Format = "onnx",
                 opset: int = DEFAULT_OPSET, check: bool = True, tol: float = 1e-4) -> ExportReport:
    """Export ``model`` (its crop input is ``input_size = (w, h)``) to ``out``; with ``check`` compare the file's
    outputs to PyTorch's (an :class:`ExportError` when they differ by ``tol`` or more, and the file is kept)."""
    t0 = time.perf_counter()
    graph = ExportGraph(model.cpu().float().eval())
    example = _inputs(input_size, TRACE_BATCH, 0)
    out = Path(out)
    if fmt == "onnx":
        check_opset(opset)
        with atomic_output(out) as tmp, torch.no_grad():
            _export_onnx(graph, example, tmp, opset)
    elif fmt == "torchscript":
        with atomic_output(out) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about python scalars (shapes are fixed per model)
            traced = torch.jit.trace(graph, example, check_trace=False)
            torch.jit.save(traced, str(tmp))
    else:
        raise ExportError(f"unknown format {fmt!r}: use onnx or torchscript")
    diff = parity(graph, out, fmt, input_size) if check else None
    if diff is not None and not diff < tol:
        raise ExportError(f"{out}: exported outputs differ from PyTorch by {diff:.3g} (max abs) >= {tol:g}")
    return ExportReport(out, fmt, graph.names, diff, CHECK_BATCHES if check else (), time.perf_counter() - t0)


def max_opset() -> int:
    """The newest opset the TorchScript-based ONNX exporter (``dynamo=False``) writes."""
    from torch.onnx import _constants

    return int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))


def check_opset(opset: int) -> None:
    """One-line :class:`ExportError` unless ``MIN_OPSET <= opset <= max_opset()``."""
    if opset < MIN_OPSET:
        raise ExportError(f"--opset {opset} is below {MIN_OPSET}, the first opset with grid_sample "
                          "(deformable attention)")
    if opset > max_opset():
        raise ExportError(f"--opset {opset} is above {max_opset()}, the newest this torch's ONNX exporter writes")


def _export_onnx(graph: ExportGraph, example: torch.Tensor, path: Path, opset: int) -> None:
    axes = {"image": {0: "batch"}} | {n: {0: "batch"} for n in graph.names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python scalars (shapes are fixed per model)
        torch.onnx.export(graph, (example,), str(path), dynamo=False, input_names=["image"],
                          output_names=list(graph.names), dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True)


def onnx_session(path: str | Path):  # noqa: ANN201
    """An onnxruntime CPU session of ``path``; a one-line :class:`ExportError` when onnxruntime is missing."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("the ONNX parity check needs onnxruntime: pip install 'poserepro[export]' "
                          "(or pass --no-check)") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@torch.no_grad()
def parity(graph: ExportGraph, path: Path, fmt: str, input_size: tuple[int, int]) -> float:
    """``max |exported - pytorch|`` over every output, on random batches of :data:`CHECK_BATCHES` sizes."""
    run = _runner(path, fmt)
    graph.eval()
    worst = 0.0
    for i, b in enumerate(CHECK_BATCHES):
        x = _inputs(input_size, b, 100 + i)
        ref = [t.numpy() for t in graph(x)]
        got = run(x)
        if len(got) != len(ref):
            raise ExportError(f"{path}: {len(got)} outputs, PyTorch gives {len(ref)}")
        for name, r, g in zip(graph.names, ref, got):
            if r.shape != g.shape:
                raise ExportError(f"{path}: output {name} has shape {g.shape} at batch {b}, PyTorch {r.shape}")
            worst = max(worst, float(np.abs(r.astype(np.float64) - g.astype(np.float64)).max()))
    return worst


def _runner(path: Path, fmt: str):  # noqa: ANN202
    if fmt == "onnx":
        sess = onnx_session(path)
        return lambda x: sess.run(None, {"image": x.numpy()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated (torch.export) but works
        module = torch.jit.load(str(path))
    return lambda x: [t.numpy() for t in module(x)]
