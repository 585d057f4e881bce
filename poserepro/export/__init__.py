"""Export trained models (ONNX with a dynamic batch, TorchScript) and check the files against PyTorch."""

from .convert import DEFAULT_OPSET, ExportReport, export_model, onnx_session, parity
from .graph import ExportError, ExportGraph

__all__ = ["DEFAULT_OPSET", "ExportError", "ExportGraph", "ExportReport", "export_model",
           "onnx_session", "parity"]
