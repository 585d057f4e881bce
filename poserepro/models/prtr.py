"""PRTR two-stage keypoint Transformer (Li et al., CVPR 2021, "Pose Recognition with Cascade Transformers").

Top-down: a person crop → CNN (ResNet-50/101 ``layer4`` with FrozenBatchNorm, stem + layer1 frozen; or HRNet-W32 with
the classification fusion head; 2048 ch at stride 32) → 1×1 ``input_proj`` to 256 → DETR Transformer (6 encoder +
6 decoder post-norm layers, 8 heads, FFN 2048, dropout 0; fixed sine PE, normalised, no offset) → ``Q`` = 100
queries → ``class_embed`` over 17 joints + background (last) and ``kpt_embed`` 3-layer MLP + sigmoid → ``(x, y)``
normalised to the crop. Training matches joints to queries (Hungarian, ``5·L1 − p``) and applies CE (background
weight 0.1) + 5·visibility-weighted L1 on every decoder layer (FACTS §4.3). Inference drops the background logit
before the softmax and reads one query per joint with the Hungarian algorithm; the flip test averages.

Module names mirror the official code (``backbone.body.*``, ``input_proj``, ``transformer.encoder.layers.N.*``,
``transformer.decoder.layers.N.*``, ``transformer.decoder.norm``, ``query_embed``, ``class_embed``,
``kpt_embed.layers.N``) so :mod:`poserepro.weights.prtr` maps the released checkpoints almost by identity.
Parameter counts equal the official ones (FrozenBatchNorm affine stored as buffers, no encoder final norm):
``prtr_r50`` 41,505,236 · ``prtr_r101`` 60,445,140 · ``prtr_hrnet_w32`` 57,234,004.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..codecs.regression import normalize_joints
from ..codecs.set_prediction import decode_set
from ..keypoints import COCO_FLIP_PAIRS, MPII_FLIP_PAIRS
from ..losses.set_criterion import KeypointSetCriterion
from .backbones.hrnet_cls import hrnet_w32_cls
from .backbones.resnet import BasicResNet, FrozenBatchNorm2d, ResNet, batch_norm, resnet50, resnet101, resnet152
from .layers import MLP
from .layers.detr import DETRTransformer, SineCache
from .registry import register_model


class BackboneWrapper(nn.Module):
    """Holds the CNN as ``body`` (so official ``backbone.0.body.*`` keys map to ``backbone.body.*``); returns the
    last feature map ``(B, C, H/s, W/s)``."""

    def __init__(self, body: nn.Module, num_channels: int) -> None:
        super().__init__()
        self.body = body
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[-1]


class PRTR(nn.Module):
    """PRTR keypoint Transformer for top-down crops.

    Args:
        backbone: :class:`BackboneWrapper` (``forward → (B, C, h, w)``).
        input_size: crop ``(w, h)``.
        num_joints: ``K`` (17).
        num_queries: ``Q`` (100; ablation 50 / 17).
        d_model, num_heads, dim_feedforward, enc_layers, dec_layers, dropout: Transformer shape.
        aux_loss: supervise every decoder layer (``aux_outputs``).
        class_fixed_queries: ablation "17 (Fixed)": query ``i`` always predicts joint ``i`` (no matching).
        include_bg_logit: keep the background logit in the inference softmax (ablation; default drops it).
        bgr_input: the model expects BGR: flip the channels of an RGB input inside ``forward`` (the official
            ResNet configs train on BGR images with ImageNet RGB statistics; default RGB).
        cost_class, cost_coord, eos_coef, weight_ce, weight_kpts: matcher / loss weights (1, 5, 0.1, 1, 5).
        flip_pairs: left/right pairs for the flip test (default: COCO's for 17 joints, MPII's for 16).

    ``forward(x (B, 3, H, W))`` → ``{"pred_logits": (B, Q, K+1), "pred_coords": (B, Q, 2), "aux_outputs": [...]}``.
    """

    output_type = "set"

    def __init__(
        self, backbone: BackboneWrapper, input_size: tuple[int, int] = (288, 384), num_joints: int = 17,
        num_queries: int = 100, d_model: int = 256, num_heads: int = 8, dim_feedforward: int = 2048,
        enc_layers: int = 6, dec_layers: int = 6, dropout: float = 0.0, aux_loss: bool = True,
        class_fixed_queries: bool = False, include_bg_logit: bool = False, bgr_input: bool = False,
        cost_class: float = 1.0, cost_coord: float = 5.0, eos_coef: float = 0.1, weight_ce: float = 1.0,
        weight_kpts: float = 5.0, flip_pairs: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        if class_fixed_queries and num_queries != num_joints:
            raise ValueError(f"class-fixed queries need num_queries == num_joints ({num_joints}), got {num_queries}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_joints = num_joints
        self.num_queries = num_queries
        self.aux_loss = aux_loss
        self.class_fixed_queries = class_fixed_queries
        self.include_bg_logit = include_bg_logit
        self.bgr_input = bgr_input
        self.flip_pairs = default_flip_pairs(num_joints, flip_pairs)
        self.transformer = DETRTransformer(d_model, num_heads, dim_feedforward, enc_layers, dec_layers, dropout)
        self.backbone = backbone
        self.class_embed = nn.Linear(d_model, num_joints + 1)
        self.kpt_embed = MLP(d_model, d_model, 2, 3)
        self.query_embed = nn.Embedding(num_queries, d_model)
        self.input_proj = nn.Conv2d(backbone.num_channels, d_model, 1)
        self.pos_embed = SineCache(d_model)
        self.criterion = KeypointSetCriterion(
            num_joints, cost_class, cost_coord, eos_coef, weight_ce, weight_kpts, fixed=class_fixed_queries
        )

    def forward(self, x: torch.Tensor) -> dict:
        if self.bgr_input:
            x = x.flip(1)
        src = self.input_proj(self.backbone(x))
        h, w = src.shape[-2:]
        hs, _ = self.transformer(src, self.query_embed.weight, self.pos_embed(h, w, src))
        logits = self.class_embed(hs)
        coords = self.kpt_embed(hs).float().sigmoid()  # coordinates in float32 under autocast
        aux = [{"pred_logits": a, "pred_coords": c} for a, c in zip(logits[:-1], coords[:-1])] if self.aux_loss else []
        return {"pred_logits": logits[-1], "pred_coords": coords[-1], "aux_outputs": aux}

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Set loss against ``batch["joints"] (B, K, 2)`` crop pixels and ``batch["joints_vis"] (B, K)``.

        Joints outside the crop get L1 weight 0 (their class target is kept, as in the official code).
        """
        targets = normalize_joints(batch["joints"], self.input_size)
        weights = joint_weights(batch["joints_vis"], targets)
        total, parts = self.criterion(outputs, targets, weights)
        return total, {k: float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def decode(self, outputs: dict, flip_outputs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Hungarian read-out (+ flip averaging) → ``(coords (B, K, 2) crop pixels, scores (B, K))``."""
        return decode_set(outputs, self.input_size, self.flip_pairs, flip_outputs, self.include_bg_logit,
                          self.class_fixed_queries)


def default_flip_pairs(
    num_joints: int, flip_pairs: Sequence[tuple[int, int]] | None = None
) -> tuple[tuple[int, int], ...]:
    """``flip_pairs`` if given, else COCO's (17 joints) or MPII's (16 joints); no pairs otherwise."""
    if flip_pairs is not None:
        return tuple((int(a), int(b)) for a, b in flip_pairs)
    return {17: COCO_FLIP_PAIRS, 16: MPII_FLIP_PAIRS}.get(num_joints, ())


def joint_weights(vis: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` loss weights: visibility flag, zeroed for joints whose normalised ``coords (B, K, 2)`` fall
    outside the crop ``[0, 1]²``."""
    v = vis.float()
    if v.dim() == 3:
        v = v[..., 0]
    inside = ((coords >= 0) & (coords <= 1)).all(-1)
    return (v > 0).float() * inside.float()


# ------------------------------------------------------------------------------------------------ builders


def _resnet_body(depth: int) -> ResNet:
    make = {50: resnet50, 101: resnet101, 152: resnet152}[depth]
    return make(out_levels=(4,), norm=FrozenBatchNorm2d, frozen_stages=1)


def _prtr(body: nn.Module, channels: int, input_size: Sequence[int], **kw) -> PRTR:
    return PRTR(BackboneWrapper(body, channels), (int(input_size[0]), int(input_size[1])), **kw)


@register_model
def prtr_r50(input_size: Sequence[int] = (288, 384), **kw) -> PRTR:
    """PRTR ResNet-50 (paper Table 1: 384×288 68.2 AP, 512×384 71.0; 41.5M params, 11.0 / 18.8 GFLOPs)."""
    return _prtr(_resnet_body(50), 2048, input_size, **kw)


@register_model
def prtr_r101(input_size: Sequence[int] = (288, 384), **kw) -> PRTR:
    """PRTR ResNet-101 (paper Table 1: 384×288 70.1 AP, 512×384 72.0; 60.4M params, 19.1 / 33.4 GFLOPs)."""
    return _prtr(_resnet_body(101), 2048, input_size, **kw)


@register_model
def prtr_r152(input_size: Sequence[int] = (384, 384), **kw) -> PRTR:
    """PRTR ResNet-152 (paper Table 3, MPII val 384×384: PCKh@0.5 88.2; no COCO row). 76,042,708 parameters
    (PRTR-R101 + the 4 + 13 extra layer2 / layer3 Bottlenecks of torchvision's ResNet-152, FrozenBN affine as
    buffers)."""
    return _prtr(_resnet_body(152), 2048, input_size, **kw)


@register_model
def prtr_hrnet_w32(input_size: Sequence[int] = (288, 384), **kw) -> PRTR:
    """PRTR HRNet-W32 (paper Table 1: 384×288 73.1 AP, 512×384 73.3; 57.2M params, 21.6 / 37.8 GFLOPs)."""
    return _prtr(hrnet_w32_cls(), 2048, input_size, **kw)


@register_model
def prtr_smoke(
    input_size: Sequence[int] = (96, 128), num_joints: int = 17, num_queries: int = 50, d_model: int = 64,
    num_heads: int = 4, dim_feedforward: int = 128, enc_layers: int = 2, dec_layers: int = 2, **kw,
) -> PRTR:
    """CPU-sized PRTR for the synthetic benchmark: ResNet-18 stages 1–3 (trainable BN, 256 ch at stride 16),
    d 64, 2 + 2 layers, 50 queries, 128×96 input."""
    body = BasicResNet((2, 2, 2), out_levels=(3,), norm=batch_norm())
    return _prtr(body, 256, input_size, num_joints=num_joints, num_queries=num_queries, d_model=d_model,
                 num_heads=num_heads, dim_feedforward=dim_feedforward, enc_layers=enc_layers,
                 dec_layers=dec_layers, **kw)
