"""What an exported graph computes: the network from a normalised crop batch to its raw outputs, per family.

The decoding (heatmap argmax / DARK / UDP, the set read-out's Hungarian matching, flip merging, the inverse
affine) stays in Python: it is data-dependent (Hungarian) or cheap, and :mod:`poserepro.codecs` does it on the
exported outputs exactly as on PyTorch's. Outputs by ``output_type``:

=============  ==============================================  ============================================
output_type    models                                          outputs (batch first)
=============  ==============================================  ============================================
``heatmap``    TransPose, BTranspose, SimpleBaseline           ``heatmaps (B, K, h, w)``
``set``        two-stage PRTR                                  ``pred_logits (B, Q, K+1)``, ``pred_coords (B, Q, 2)``
``regression`` TFPose                                          ``coords (B, K, 2)`` (normalised to the crop)
``e2e``        end-to-end PRTR                                 not exportable (see :data:`NOT_EXPORTABLE`)
=============  ==============================================  ============================================
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import PoseReproError

#: output names of each exportable ``output_type`` (``None``: the model returns one tensor)
OUTPUTS: dict[str, tuple[str, ...] | None] = {
    "heatmap": None,
    "set": ("pred_logits", "pred_coords"),
    "regression": ("coords",),
}

#: families that cannot be exported, and why
NOT_EXPORTABLE = {
    "e2e": "end-to-end PRTR crops each image's most confident detector queries with indices that depend on the "
           "data (top-k over queries, then per-person grid_sample on the gathered boxes); a fixed graph would "
           "bake in one image's person count. Export its detector and keypoint halves separately instead "
           "(not implemented)",
}


class ExportError(PoseReproError):
    """A model or format that cannot be exported, or an export whose outputs differ from PyTorch's."""


class ExportGraph(nn.Module):
    """``model`` in eval mode with tuple outputs (see the module table); ``names`` are the output names."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        kind = getattr(model, "output_type", "heatmap")
        if kind in NOT_EXPORTABLE:
            raise ExportError(f"{type(model).__name__} (output_type {kind!r}) cannot be exported: "
                              f"{NOT_EXPORTABLE[kind]}")
        if kind not in OUTPUTS:
            raise ExportError(f"no export outputs are declared for output_type {kind!r} "
                              "(poserepro.export.graph.OUTPUTS)")
        self.model = model.eval()
        self.keys = OUTPUTS[kind]
        self.names: tuple[str, ...] = ("heatmaps",) if self.keys is None else self.keys
        self.eval()  # the wrapper too: exporters restore the wrapper's mode onto every submodule afterwards

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        if self.keys is None:
            return (out,)
        return tuple(out[k] for k in self.keys)
