"""Heatmap heads shared by the heatmap models (TransPose, BTranspose, SimpleBaseline, TFPose's auxiliary head)."""

from __future__ import annotations

import torch
from torch import nn


class DeconvHead(nn.Module):
    """``num_deconv`` × [ConvTranspose2d 4×4/2 (no bias) → BN → ReLU] then a 1×1 conv to ``num_joints``.

    ``num_deconv=0`` leaves only the final 1×1 conv (TransPose-H). ``upsample="bilinear"`` replaces each
    transposed conv by ×2 bilinear upsampling followed by a 3×3 conv. ``upsample="interpolate"`` is ×2 bilinear
    interpolation alone (no conv, BN or ReLU) straight into the 1×1 conv: TransPose-R* (paper Table 1, 5.0M
    parameters, which leaves no room for a 3×3 256→256 conv).
    ``(B, C, h, w) → (B, K, h·2^n, w·2^n)``.
    """

    def __init__(
        self, in_channels: int, num_joints: int, num_deconv: int = 1, deconv_channels: int | None = None,
        upsample: str = "deconv", final_bias: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        out = deconv_channels or in_channels
        for _ in range(num_deconv):
            if upsample == "deconv":
                layers.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1, output_padding=0, bias=False))
            elif upsample == "bilinear":
                layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
                layers.append(nn.Conv2d(c, out, 3, padding=1, bias=False))
            elif upsample == "interpolate":
                layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
                continue
            else:
                raise ValueError(f"unknown upsample {upsample!r}; use deconv, bilinear or interpolate")
            layers += [nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(c, num_joints, 1, bias=final_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(x))


def init_pose_weights(module: nn.Module, std: float = 0.001) -> None:
    """The HRNet-lineage initialisation: convs / deconvs ~ N(0, std), bias 0; BatchNorm γ=1, β=0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
