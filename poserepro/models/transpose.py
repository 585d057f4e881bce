"""TransPose (Yang et al., ICCV 2021): CNN stem → 1×1 reduce → Transformer encoder → heatmap head.

TransPose-R uses ResNet-S (stride 8, 512 ch) and one 4×4/2 deconvolution; TransPose-H uses HRNet-S (stride 4) and
only the final 1×1 conv. The position embedding is added to queries and keys in every encoder layer
(FACTS §5.1). Paper variants are registered at the bottom of this file.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model
from .backbones.resnet import resnet_s
from .heads import DeconvHead, init_pose_weights
from .layers import PositionEmbedding2D, TransformerEncoder, TransformerEncoderLayer
from .layers.position import PEKind


class TransPose(nn.Module):
    """TransPose with an arbitrary CNN backbone.

    Args:
        backbone: module mapping ``(B, 3, H, W)`` to a list whose last element is ``(B, C, H/s, W/s)``.
        backbone_channels: ``C``.
        backbone_stride: ``s`` (8 for ResNet-S, 4 for HRNet-S).
        input_size: ``(width, height)`` of the training input; fixes the stored position-embedding grid.
        d_model, num_heads, dim_feedforward, num_layers: encoder shape.
        num_joints: heatmap channels ``K``.
        pos_embed: ``"sine"`` | ``"learnable"`` | ``"none"``.
        num_deconv: deconvolutions in the head (1 for R, 0 for H).
        upsample: ``"deconv"`` or ``"bilinear"`` (A3*).
        dropout: encoder dropout.

    ``forward(x (B, 3, H, W)) -> heatmaps (B, K, H/4, W/4)``.
    """

    output_type = "heatmap"

    def __init__(
        self,
        backbone: nn.Module,
        backbone_channels: int,
        backbone_stride: int,
        input_size: tuple[int, int],
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        num_layers: int,
        num_joints: int = 17,
        pos_embed: PEKind = "sine",
        num_deconv: int = 1,
        upsample: str = "deconv",
        dropout: float = 0.1,
        head_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_joints = num_joints
        self.backbone_stride = backbone_stride
        self.heatmap_stride = backbone_stride // (2**num_deconv)
        self.backbone = backbone
        self.reduce = nn.Conv2d(backbone_channels, d_model, 1, bias=False)
        grid = (self.input_size[1] // backbone_stride, self.input_size[0] // backbone_stride)
        self.pos_embed = PositionEmbedding2D(pos_embed, d_model, grid)
        layer = TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout, "relu")
        self.encoder = TransformerEncoder(layer, num_layers, pos_every_layer=True)
        self.head = DeconvHead(d_model, num_joints, num_deconv, head_channels, upsample)
        init_pose_weights(self.backbone)
        init_pose_weights(self.reduce)
        init_pose_weights(self.head)
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode(self, x: torch.Tensor, need_weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Backbone + encoder: ``(B, 3, H, W)`` → ``(memory (B, d, h, w), [attn (B, hw, hw)] per layer)``."""
        feat = self.reduce(self.backbone(x)[-1])
        b, d, h, w = feat.shape
        tokens = feat.flatten(2).transpose(1, 2)
        pos = self.pos_embed(h, w)
        memory, attns = self.encoder(tokens, pos, need_weights=need_weights)
        return memory.transpose(1, 2).reshape(b, d, h, w), attns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        memory, _ = self.encode(x)
        return self.head(memory)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Heatmaps and the head-averaged attention maps of every encoder layer, ``[(B, hw, hw)] × layers``."""
        memory, attns = self.encode(x, need_weights=True)
        return self.head(memory), attns


def _transpose_r(
    num_layers: int, d_model: int = 256, dim_feedforward: int = 1024, num_heads: int = 8,
    input_size: tuple[int, int] = (192, 256), num_joints: int = 17, pos_embed: PEKind = "sine",
    dropout: float = 0.1,
) -> TransPose:
    return TransPose(
        resnet_s(), 512, 8, input_size, d_model, num_heads, dim_feedforward, num_layers, num_joints,
        pos_embed, num_deconv=1, dropout=dropout,
    )


@register_model
def transpose_r_a3(**kw) -> TransPose:
    """TransPose-R-A3: ResNet-S, d 256, FFN 1024, 8 heads, 3 layers (paper Table 1: 71.7 AP, 5.2M, 8.0 GFLOPs)."""
    return _transpose_r(3, **kw)


@register_model
def transpose_r_a4(**kw) -> TransPose:
    """TransPose-R-A4: ResNet-S, d 256, FFN 1024, 8 heads, 4 layers (paper Table 1: 72.6 AP, 6.0M, 8.9 GFLOPs)."""
    return _transpose_r(4, **kw)


@register_model
def transpose_r_smoke(
    num_layers: int = 2, d_model: int = 64, dim_feedforward: int = 128, num_heads: int = 4,
    input_size: tuple[int, int] = (96, 128), num_joints: int = 17, pos_embed: PEKind = "sine",
    dropout: float = 0.1,
) -> TransPose:
    """A CPU-sized TransPose-R (ResNet-S stem, narrow encoder) for the synthetic benchmark and CI."""
    return _transpose_r(num_layers, d_model, dim_feedforward, num_heads, input_size, num_joints, pos_embed, dropout)
