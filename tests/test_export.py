"""``poserepro export``: ONNX (onnxruntime parity, dynamic batch) and TorchScript for every exportable family, on
smoke models whose layers get PyTorch's default init and non-trivial BatchNorm statistics (so that outputs are of
order 1, not the 1e-9 of the papers' tiny final-layer init, and a parity of 1e-4 means something)."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from poserepro.cli.main import app
from poserepro.engine import build_model
from poserepro.export import ExportError, ExportGraph, export_model
from poserepro.recipes import load_recipe

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed (pip install 'poserepro[export]')")
FAMILIES = ["transpose-r-smoke", "btranspose-smoke", "simplebaseline-smoke", "tfpose-smoke", "prtr-smoke"]
runner = CliRunner()


def lively(recipe: str) -> tuple[nn.Module, tuple[int, int]]:
    """The recipe's model with default-init conv / linear layers and random BatchNorm running statistics."""
    rec = load_recipe(recipe)
    torch.manual_seed(0)
    model = build_model(rec)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.reset_parameters()
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval(), tuple(rec.data.input_size)


@needs_ort
@pytest.mark.parametrize("recipe", FAMILIES)
def test_onnx_parity_dynamic_batch(recipe: str, tmp_path: Path, one_thread: None) -> None:
    import onnxruntime as ort

    model, size = lively(recipe)
    rep = export_model(model, size, tmp_path / "m.onnx", "onnx")
    assert rep.max_abs_diff is not None and rep.max_abs_diff < 1e-4 and rep.batches == (1, 3)
    # independently of export_model's own check: batch 5, never seen, and outputs of order 1
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"
    x = torch.randn(5, 3, size[1], size[0])
    with torch.no_grad():
        ref = [t.numpy() for t in ExportGraph(model)(x)]
    got = sess.run(None, {"image": x.numpy()})
    assert [o.name for o in sess.get_outputs()] == list(rep.outputs)
    for r, g in zip(ref, got):
        assert r.shape == g.shape and r.shape[0] == 5
        assert np.abs(r).max() > 1e-2
        assert np.abs(r - g).max() < 1e-4


@pytest.mark.parametrize("recipe", ["transpose-r-smoke", "prtr-smoke"])  # a tensor and a dict of outputs
def test_torchscript_parity(recipe: str, tmp_path: Path, one_thread: None) -> None:
    model, size = lively(recipe)
    rep = export_model(model, size, tmp_path / "m.pt", "torchscript")
    assert rep.max_abs_diff is not None and rep.max_abs_diff < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in favour of torch.export
        loaded = torch.jit.load(str(tmp_path / "m.pt"))
    x = torch.randn(4, 3, size[1], size[0])
    with torch.no_grad():
        for r, g in zip(ExportGraph(model)(x), loaded(x)):
            assert torch.allclose(r, g, atol=1e-5)


def test_parity_failure_is_reported(tmp_path: Path, one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose outputs drift from PyTorch's fails the command (the check is not a formality)."""
    from poserepro.export import convert

    model, size = lively("simplebaseline-smoke")
    real = convert._runner
    monkeypatch.setattr(convert, "_runner", lambda p, f: (lambda x: [o + 1e-3 for o in real(p, f)(x)]))
    with pytest.raises(ExportError, match="differ from PyTorch"):
        export_model(model, size, tmp_path / "m.pt", "torchscript")


def test_end_to_end_prtr_is_refused_with_the_reason(tmp_path: Path) -> None:
    torch.manual_seed(0)
    with pytest.raises(ExportError, match="cannot be exported: end-to-end PRTR"):
        export_model(build_model(load_recipe("prtr-e2e-smoke")), (128, 128), tmp_path / "e.onnx")
    assert not (tmp_path / "e.onnx").exists()


@needs_ort
def test_export_cli(tmp_path: Path, one_thread: None) -> None:
    model, _ = lively("transpose-r-smoke")
    w = tmp_path / "w.pth"
    torch.save({"model": model.state_dict()}, w)
    r = runner.invoke(app, ["export", "transpose-r-smoke", "--weights", str(w), "--out", str(tmp_path / "tp.onnx")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "tp.onnx").is_file() and "max abs diff" in r.output and "dynamic batch" in r.output
    r = runner.invoke(app, ["export", "transpose-r-smoke", "--weights", str(w), "--opset", "13",
                            "--out", str(tmp_path / "x.onnx")])
    assert r.exit_code != 0 and "below 16" in r.output and "Traceback" not in r.output
