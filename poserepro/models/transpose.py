"""TransPose (Yang et al., ICCV 2021): CNN stem → 1×1 reduce → Transformer encoder → heatmap head.

TransPose-R uses ResNet-S (stride 8, 512 ch) and one 4×4/2 deconvolution; TransPose-H uses HRNet-S (stride 4) and
only the final 1×1 conv. The position embedding is added to queries and keys in every encoder layer
(FACTS §5.1). Paper variants are registered at the bottom of this file.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones.hrnet import hrnet_s
from .backbones.resnet import resnet_s
from .heads import DeconvHead, init_pose_weights
from .layers import PositionEmbedding2D, TransformerEncoder, TransformerEncoderLayer
from .layers.position import PEKind
from .registry import register_model


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
        upsample: ``"deconv"``, ``"bilinear"`` (bilinear ×2 + 3×3 conv) or ``"interpolate"`` (bilinear ×2 only:
            TransPose-R*, whose 5.0M parameters leave no room for a conv; see :class:`DeconvHead`).
        dropout: encoder dropout.
        backbone_init: ``"pose"`` = the official initialisation without an ImageNet file (every conv N(0, 0.001),
            BN 1/0); ``"torch"`` = PyTorch's defaults for backbone, reduce and deconv (only the final 1×1 at
            N(0, 0.001)), which the CPU smoke models use: with the official init the 1×1 reduce output is ~1000×
            smaller than the position embedding it is added to, and from-scratch training crawls.
        head_channels: deconvolution width (default ``d_model``).
        pos_every_layer: add the position embedding to q/k in every encoder layer (TransPose) or only in the
            first one (BTranspose's ``pe_only_at_begin``).

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
        pos_every_layer: bool = True,
        backbone_init: str = "pose",
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
        self.encoder = TransformerEncoder(layer, num_layers, pos_every_layer=pos_every_layer)
        self.head = DeconvHead(d_model, num_joints, num_deconv, head_channels, upsample)
        if backbone_init == "pose":
            init_pose_weights(self.backbone)
            init_pose_weights(self.reduce)
            init_pose_weights(self.head)
        else:  # from scratch: keep PyTorch's defaults; only the last 1x1 starts at N(0, 0.001) as officially
            init_pose_weights(self.head.final_layer)
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
    dropout: float = 0.1, layer2_blocks: int = 4, upsample: str = "deconv",
) -> TransPose:
    backbone = resnet_s(blocks=(3, layer2_blocks))
    return TransPose(
        backbone, 512, 8, input_size, d_model, num_heads, dim_feedforward, num_layers, num_joints,
        pos_embed, num_deconv=1, upsample=upsample, dropout=dropout,
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
    dropout: float = 0.1, stem_width: int = 32, stem_blocks: tuple[int, int] = (2, 2), backbone_init: str = "torch",
) -> TransPose:
    """A CPU-sized TransPose-R (narrow ResNet-S stem, d-64 encoder) for the synthetic benchmark and CI.

    Same architecture as TransPose-R (stride-8 CNN → 1×1 reduce → post-norm encoder with PE in every layer →
    one deconv + 1×1), scaled down so a demo trains in minutes on 2 CPU cores. Trained from scratch, so the
    backbone keeps PyTorch's default initialisation (``backbone_init="torch"``).
    """
    return TransPose(
        resnet_s(width=stem_width, blocks=stem_blocks), 8 * stem_width, 8, input_size, d_model, num_heads,
        dim_feedforward, num_layers, num_joints, pos_embed, num_deconv=1, dropout=dropout,
        backbone_init=backbone_init,
    )


# --- further TransPose-R variants: R* (Table 1) and the encoder-depth ablation (appendix Table 8) ---------------


@register_model
def transpose_r_a3star(
    input_size: tuple[int, int] = (192, 256), num_joints: int = 17, pos_embed: PEKind = "sine", dropout: float = 0.1,
) -> TransPose:
    """TransPose-R*: ResNet-S* (layer2 with 10 Bottleneck-c128 blocks, paper appendix E), d 256, FFN 512,
    8 heads, 3 layers, ×2 bilinear interpolation before the 1×1 conv (paper Table 1/2: 71.5 AP, 5.0M, 5.4 GFLOPs)."""
    return _transpose_r(3, 256, 512, 8, input_size, num_joints, pos_embed, dropout, layer2_blocks=10,
                        upsample="interpolate")


@register_model
def transpose_r_l2(**kw) -> TransPose:
    """TransPose-R with 2 encoder layers (d 256, FFN 1024, 8 heads; appendix Table 8: 4.4M, 7.0 GFLOPs)."""
    return _transpose_r(2, **kw)


@register_model
def transpose_r_l5(**kw) -> TransPose:
    """TransPose-R with 5 encoder layers (appendix Table 8: 6.8M, 9.9 GFLOPs)."""
    return _transpose_r(5, **kw)


@register_model
def transpose_r_l6(**kw) -> TransPose:
    """TransPose-R with 6 encoder layers (appendix Table 8: 7.6M, 10.8 GFLOPs)."""
    return _transpose_r(6, **kw)


# --- TransPose-H: HRNet-S (stride 4) + encoder + 1×1 conv --------------------------------------------------------


def _transpose_h(
    width: int, d_model: int, dim_feedforward: int, num_layers: int, num_heads: int = 1,
    input_size: tuple[int, int] = (192, 256), num_joints: int = 17, pos_embed: PEKind = "sine",
    dropout: float = 0.1, backbone_kw: dict | None = None, backbone_init: str = "pose",
) -> TransPose:
    return TransPose(
        hrnet_s(width, **(backbone_kw or {})), width, 4, input_size, d_model, num_heads, dim_feedforward,
        num_layers, num_joints, pos_embed, num_deconv=0, dropout=dropout, backbone_init=backbone_init,
    )


@register_model
def transpose_h_s(**kw) -> TransPose:
    """TransPose-H-S: HRNet-S-W32, d 64, FFN 128, 1 head, 4 layers (paper Table 1/2: 74.2 AP, 8.0M, 10.2 GFLOPs)."""
    return _transpose_h(32, 64, 128, 4, **kw)


@register_model
def transpose_h_a4(**kw) -> TransPose:
    """TransPose-H-A4: HRNet-S-W48, d 96, FFN 192, 1 head, 4 layers (Table 2: 75.3 AP, 17.3M, 17.5 GFLOPs)."""
    return _transpose_h(48, 96, 192, 4, **kw)


@register_model
def transpose_h_a6(**kw) -> TransPose:
    """TransPose-H-A6: HRNet-S-W48, d 96, FFN 192, 1 head, 6 layers (Table 2: 75.8 AP, 17.5M, 21.8 GFLOPs)."""
    return _transpose_h(48, 96, 192, 6, **kw)


@register_model
def transpose_h_l5(**kw) -> TransPose:
    """TransPose-H, HRNet-S-W48, d 96, FFN 192, 1 head, 5 layers (appendix Table 8: 17.4M, 19.7 GFLOPs)."""
    return _transpose_h(48, 96, 192, 5, **kw)


@register_model
def transpose_h_w48_d64(**kw) -> TransPose:
    """TransPose-H, HRNet-S-W48, d 64, FFN 128, 1 head, 4 layers (official yaml; 17.0M, 14.6 GFLOPs)."""
    return _transpose_h(48, 64, 128, 4, **kw)


@register_model
def transpose_h_w48_d192(num_heads: int = 2, **kw) -> TransPose:
    """TransPose-H, HRNet-S-W48, d 192, FFN 384, 4 layers; the official yaml sets 2 heads (18.5M, 27.0 GFLOPs)."""
    return _transpose_h(48, 192, 384, 4, num_heads=num_heads, **kw)


@register_model
def transpose_h_smoke(
    width: int = 16, d_model: int = 32, dim_feedforward: int = 64, num_layers: int = 2, num_heads: int = 1,
    input_size: tuple[int, int] = (96, 128), num_joints: int = 17, pos_embed: PEKind = "sine",
    dropout: float = 0.1, backbone_init: str = "torch",
) -> TransPose:
    """A CPU-sized TransPose-H: HRNet-S-W16 with a 16-channel stem, 1 layer1 Bottleneck, one stage-3 unit and
    1 basic block per branch; d 32, FFN 64, 1 head, 2 layers. Same structure as TP-H (stride-4 attention).
    Trained from scratch, so it keeps PyTorch's default initialisation (as ``transpose_r_smoke``)."""
    return _transpose_h(width, d_model, dim_feedforward, num_layers, num_heads, input_size, num_joints, pos_embed,
                        dropout, dict(stage3_modules=1, num_blocks=1, stem_width=16, layer1_blocks=1),
                        backbone_init)
