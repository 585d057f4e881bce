"""What an exported graph computes: the network from a normalised crop batch to its raw outputs, per family.

The decoding (heatmap argmax / DARK / UDP, the set read-out's Hungarian matching, flip merging, the inverse
affine) stays in Python: it is data-dependent (Hungarian) or cheap, and :mod:`poserepro.codecs` does it on the
exported outputs exactly as on PyTorch's. Each family says what its graph returns
(:meth:`~poserepro.families.ModelFamily.export_outputs`) or why it cannot be one graph
(:attr:`~poserepro.families.ModelFamily.not_exportable`):

- TransPose, BTranspose, SimpleBaseline: ``heatmaps (B, K, h, w)``
- two-stage PRTR: ``pred_logits (B, Q, K+1)``, ``pred_coords (B, Q, 2)``
- TFPose: ``coords (B, K, 2)`` (normalised to the crop)
- end-to-end PRTR and the person detectors: not exportable (the family's reason)
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import PoseReproError
from ..families import family_of


class ExportError(PoseReproError):
    """A model or format that cannot be exported, or an export whose outputs differ from PyTorch's."""


class ExportGraph(nn.Module):
    """``model`` in eval mode with tuple outputs (see the module table); ``names`` are the output names."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        family = family_of(model)
        if family.not_exportable:
            raise ExportError(f"{type(model).__name__} cannot be exported: {family.not_exportable}")
        self.model = model.eval()
        self.keys = family.export_outputs(model)
        self.names: tuple[str, ...] = ("heatmaps",) if self.keys is None else self.keys
        self.eval()  # the wrapper too: exporters restore the wrapper's mode onto every submodule afterwards

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        if self.keys is None:
            return (out,)
        return tuple(out[k] for k in self.keys)
