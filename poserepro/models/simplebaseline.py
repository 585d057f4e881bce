"""SimpleBaseline (Xiao et al., ECCV 2018): ResNet → 3 × [4×4/2 deconv (256), BN, ReLU] → 1×1 conv.

The baseline TransPose and BTranspose compare against (paper Table 2: ResNet-50, 256×192, 70.4 AP, 34.0M, 8.9
GFLOPs). Head initialisation follows the HRNet lineage (deconvs and final conv ~N(0, 0.001), BN 1/0); the
backbone keeps PyTorch's default init (ImageNet weights are expected to be loaded on top).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .backbones.resnet import ResNet
from .heads import DeconvHead, init_pose_weights
from .registry import register_model


class SimpleBaseline(nn.Module):
    """ResNet C5 (stride 32) followed by ``num_deconv`` stride-2 deconvolutions.

    Args:
        blocks: ResNet blocks per stage (``(3, 4, 6, 3)`` = ResNet-50).
        input_size: ``(width, height)`` of the training input (kept as metadata; the model is fully convolutional).
        num_joints: heatmap channels ``K``.
        num_deconv: deconvolutions (3: stride 32 → 4).
        deconv_channels: deconvolution width (256).
        widths: ResNet stage widths (``(64, 128, 256, 512)``; narrower for smoke models).

    ``forward(x (B, 3, H, W)) -> heatmaps (B, K, H/4, W/4)``.
    """

    output_type = "heatmap"

    def __init__(
        self, blocks: Sequence[int] = (3, 4, 6, 3), input_size: tuple[int, int] = (192, 256), num_joints: int = 17,
        num_deconv: int = 3, deconv_channels: int = 256, widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_joints = num_joints
        self.backbone = ResNet(blocks, out_levels=(len(blocks),), widths=widths)
        stride = self.backbone.strides[-1]
        self.heatmap_stride = stride // 2**num_deconv
        self.head = DeconvHead(self.backbone.channels[-1], num_joints, num_deconv, deconv_channels)
        init_pose_weights(self.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])


@register_model
def simplebaseline_r50(input_size: tuple[int, int] = (192, 256), num_joints: int = 17) -> SimpleBaseline:
    """SimpleBaseline-ResNet-50, 3 deconvs of 256 channels (TransPose Table 2 row: 70.4 AP, 34.0M, 8.9 GFLOPs)."""
    return SimpleBaseline((3, 4, 6, 3), input_size, num_joints)


@register_model
def simplebaseline_smoke(
    input_size: tuple[int, int] = (96, 128), num_joints: int = 17, deconv_channels: int = 64,
) -> SimpleBaseline:
    """A CPU-sized SimpleBaseline (ResNet widths 16/32/64/128, one bottleneck per stage, 64-channel deconvs)."""
    return SimpleBaseline((1, 1, 1, 1), input_size, num_joints, deconv_channels=deconv_channels,
                          widths=(16, 32, 64, 128))
