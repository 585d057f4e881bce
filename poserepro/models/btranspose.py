"""BTranspose (Balakrishnan et al. 2022): a BoTNet-style backbone in front of a TransPose encoder.

Configuration of the released code (FACTS §1.2–1.4), which reproduces every published parameter count:
ResNet-50 stem, bottleneck groups of widths ``[64, 96, 128, 256]`` (Large: ``[64, 128, 256, 512]``) with
``[3, 4, 6, 3]`` blocks and a single downsampling (group 2) so all MHSA blocks run at 1/8 (32×24 for 256×192);
1×1 reduce to d=256; DETR post-norm encoder (8 heads, FFN 1024, dropout 0.1) with a learnable ``(L, d)`` position
embedding added to q/k of the **first layer only**; head = one 4×4/2 deconv + BN + ReLU + 1×1 conv.

Names: ``CxAy`` = x conv groups then y MHSA groups, ``(n)`` = MHSA heads in the backbone.

``mhsa="btranspose"`` (default) is the released factorised-absolute MHSA; ``mhsa="botnet"`` swaps in BoTNet's
relative-position logits, which has fewer position parameters: C2A1 6,779,985 (−21,888), C2A2 9,502,673
(−43,776), C3A1 10,069,073 (−21,888), C3A1-N6 11,648,593, C3A1-Large 23,773,521 (−43,776).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .backbones.botnet import BoTNet, MHSAKind
from .layers.position import PEKind
from .registry import register_model
from .transpose import TransPose


class BTranspose(TransPose):
    """BTranspose = :class:`~poserepro.models.transpose.TransPose` over a :class:`BoTNet` backbone, PE at layer 1.

    Args:
        widths, blocks, mhsa_groups: backbone layout (see :class:`BoTNet`); group strides are ``(1, 2, 1, 1)``.
        mhsa_heads: heads of the backbone MHSA blocks (4 or 8).
        mhsa: ``"btranspose"`` | ``"botnet"``.
        input_size: ``(width, height)`` of the training input.
        d_model, num_heads, dim_feedforward, num_layers: encoder shape (256, 8, 1024, 4).
        num_joints: heatmap channels ``K``.
        pos_embed: ``"learnable"`` (released) | ``"sine"`` | ``"none"``.
        dropout: encoder dropout.

    ``forward(x (B, 3, H, W)) -> heatmaps (B, K, H/4, W/4)``.
    """

    def __init__(
        self, widths: Sequence[int], blocks: Sequence[int], mhsa_groups: Sequence[int], mhsa_heads: int = 4,
        mhsa: MHSAKind = "btranspose", input_size: tuple[int, int] = (192, 256), d_model: int = 256,
        num_heads: int = 8, dim_feedforward: int = 1024, num_layers: int = 4, num_joints: int = 17,
        pos_embed: PEKind = "learnable", dropout: float = 0.1, backbone_init: str = "pose",
    ) -> None:
        strides = (1, 2, 1, 1)[: len(widths)]
        backbone = BoTNet(widths, blocks, strides, mhsa_groups, mhsa_heads, input_size, mhsa)
        super().__init__(
            backbone, backbone.channels[-1], backbone.strides[-1], input_size, d_model, num_heads, dim_feedforward,
            num_layers, num_joints, pos_embed, num_deconv=1, dropout=dropout, pos_every_layer=False,
            backbone_init=backbone_init,
        )
        self.mhsa = mhsa

    def forward_with_attention(
        self, x: torch.Tensor, include_mhsa: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Heatmaps and head-averaged attention maps ``[(B, hw, hw)]``: the encoder layers', preceded by every
        backbone MHSA block's when ``include_mhsa`` (the paper's "dependency area at the MHSA block")."""
        mods = self.backbone.mhsa_modules() if include_mhsa else []
        for m in mods:
            m.keep_attention = True
        try:
            heatmaps, attns = super().forward_with_attention(x)
            maps = [m.last_attn for m in mods] + attns
        finally:
            for m in mods:
                m.keep_attention = False
                m.last_attn = None
        return heatmaps, maps


_C3A1 = dict(widths=(64, 96, 128, 256), blocks=(3, 4, 6, 3), mhsa_groups=(4,))
_C2A1 = dict(widths=(64, 96, 128), blocks=(3, 4, 6), mhsa_groups=(3,))
_C2A2 = dict(widths=(64, 96, 128, 256), blocks=(3, 4, 6, 3), mhsa_groups=(3, 4))
_LARGE = dict(widths=(64, 128, 256, 512), blocks=(3, 4, 6, 3), mhsa_groups=(4,))


def _btranspose(
    layout: dict, mhsa_heads: int = 4, num_layers: int = 4, mhsa: MHSAKind = "btranspose",
    input_size: tuple[int, int] = (192, 256), num_joints: int = 17, pos_embed: PEKind = "learnable",
    dropout: float = 0.1,
) -> BTranspose:
    return BTranspose(
        layout["widths"], layout["blocks"], layout["mhsa_groups"], mhsa_heads, mhsa, input_size,
        num_layers=num_layers, num_joints=num_joints, pos_embed=pos_embed, dropout=dropout,
    )


@register_model
def btranspose_c2a1_4h(**kw) -> BTranspose:
    """BTranspose C2A1(4): MHSA in group 3 (no group 4), 4 heads (paper Table 2: 74.2 AP random init / 75.2 DINO,
    6.8M)."""
    return _btranspose(_C2A1, 4, **kw)


@register_model
def btranspose_c2a2_4h(**kw) -> BTranspose:
    """BTranspose C2A2(4): MHSA in groups 3 and 4, 4 heads (Table 2: 59.0 / 75.0 DINO AP, 9.55M)."""
    return _btranspose(_C2A2, 4, **kw)


@register_model
def btranspose_c3a1_4h(**kw) -> BTranspose:
    """BTranspose C3A1(4): MHSA in group 4, 4 heads (Table 1/2: 75.1 AP random / 76.4 DINO, 10.1M)."""
    return _btranspose(_C3A1, 4, **kw)


@register_model
def btranspose_c3a1_8h(**kw) -> BTranspose:
    """BTranspose C3A1(8): as C3A1(4) with 8 MHSA heads (Table 3: 75.3 random / 76.0 DINO AP, 10.1M)."""
    return _btranspose(_C3A1, 8, **kw)


@register_model
def btranspose_c3a1_4h_n6(**kw) -> BTranspose:
    """BTranspose C3A1(4)-N6: 6 encoder layers (Table 4: 76.3 DINO AP, 11.67M)."""
    return _btranspose(_C3A1, 4, num_layers=6, **kw)


@register_model
def btranspose_c3a1_4h_large(**kw) -> BTranspose:
    """BTranspose C3A1(4)-Large: ResNet-50 widths [64, 128, 256, 512] (Table 4: 76.7 DINO AP, 23.82M)."""
    return _btranspose(_LARGE, 4, **kw)


@register_model
def btranspose_smoke(
    mhsa_heads: int = 2, num_layers: int = 2, mhsa: MHSAKind = "btranspose",
    input_size: tuple[int, int] = (96, 128), num_joints: int = 17, pos_embed: PEKind = "learnable",
    dropout: float = 0.1, backbone_init: str = "torch", widths: Sequence[int] = (16, 24, 32, 32),
    blocks: Sequence[int] = (1, 1, 1, 1), mhsa_groups: Sequence[int] = (4,),
) -> BTranspose:
    """A CPU-sized C3A1 (widths 16/24/32/32, one block per group, d 64, FFN 128, 4 heads, 2 layers), trained from
    scratch with PyTorch's default initialisation (as ``transpose_r_smoke``). ``widths`` / ``blocks`` /
    ``mhsa_groups`` give the smoke versions of the other layouts (C2A1: three groups, MHSA in group 3; C2A2: MHSA in
    groups 3 and 4; Large: wider groups) for the BTranspose ablations."""
    return BTranspose(
        tuple(widths), tuple(blocks), tuple(mhsa_groups), mhsa_heads, mhsa, input_size, d_model=64, num_heads=4,
        dim_feedforward=128, num_layers=num_layers, num_joints=num_joints, pos_embed=pos_embed, dropout=dropout,
        backbone_init=backbone_init,
    )
