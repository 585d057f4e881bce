"""PRTR's person detector (paper §4.1): DETR with a person / no-object class head, shared by the stand-alone
detector (``prtr_detector_*``) and end-to-end PRTR (:class:`~poserepro.models.prtr_e2e.PRTREndToEnd` subclasses
:class:`PersonDETR`, so both keep DETR's module names and ``detr:r50`` / ``detr:r101`` load into either).

* Backbone → last level → 1×1 ``input_proj`` to ``d`` → DETR Transformer (post-norm, decoder intermediate outputs)
  with ``Q`` learnt queries → ``class_embed`` (person, no-object: no-object last) and the 3-layer ``bbox_embed``
  MLP + sigmoid → ``(cx, cy, w, h)`` normalised to the *valid* (unpadded) image.
* Padded batches (DETR's multi-scale training, :func:`poserepro.data.whole_image.pad_batch`): ``mask (B, H, W)`` is
  ``True`` on padding; it is resized to each feature map, the sine embedding counts only valid positions (DETR's
  ``PositionEmbeddingSine``: cumulative sums of the unmasked grid, normalised by their last value) and the
  Transformer ignores padded keys. Without a mask every position is valid (the cached embedding; equal values).
* Loss (:class:`~poserepro.losses.set_criterion.DetectionSetCriterion`): Hungarian matching ``1·class + 5·L1 +
  2·GIoU``; CE (no-object weight 0.1) + 5·L1 + 2·GIoU normalised by the number of boxes, on every decoder layer
  (re-matched), as DETR.
* Read-out (DETR's ``PostProcess``): score = softmax person probability, boxes to ``xyxy`` × the original size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.set_criterion import DetectionSetCriterion
from .backbones.resnet import BasicResNet, FrozenBatchNorm2d, ResNet, batch_norm, resnet50, resnet101, resnet152
from .layers import MLP
from .layers.detr import DETRTransformer, SineCache
from .registry import register_model

Targets = list[dict[str, torch.Tensor]]


def masked_sine_embedding(mask: torch.Tensor, d_model: int, temperature: float = 10000.0,
                          scale: float = 2 * math.pi, eps: float = 1e-6) -> torch.Tensor:
    """DETR's normalised sine embedding of padded feature maps: ``mask (B, h, w)`` (``True`` = padding) →
    ``(B, h·w, d)``; equal to :func:`~poserepro.models.layers.position.sine_embedding` where nothing is padded."""
    not_mask = (~mask).float()
    y = not_mask.cumsum(1)
    x = not_mask.cumsum(2)
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    npf = d_model // 2
    dim_t = torch.arange(npf, dtype=torch.float32, device=mask.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    px = x[..., None] / dim_t
    py = y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=-1).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=-1).flatten(3)
    b, h, w = mask.shape
    return torch.cat((py, px), dim=-1).reshape(b, h * w, d_model)


def resize_mask(mask: torch.Tensor | None, size: Sequence[int]) -> torch.Tensor | None:
    """The padding mask ``(B, H, W)`` at a feature map's ``(h, w)`` (nearest, as DETR)."""
    if mask is None:
        return None
    return F.interpolate(mask[None].float(), size=tuple(size)).bool()[0]


class PersonDETR(nn.Module):
    """DETR person detector.

    Args:
        backbone: a CNN returning a list of feature maps; the last is the detector's input.
        backbone_channels: channels of every returned level.
        input_size: nominal ``(w, h)`` of the training images (images may differ).
        num_queries: person queries (100).
        d_model, num_heads, dim_feedforward, enc_layers, dec_layers, dropout: DETR Transformer (256, 8, 2048, 6, 6,
            0.1).
        aux_loss: losses on every decoder layer.
        eos_coef: no-object class weight (0.1).
    """

    output_type = "detection"

    def __init__(
        self, backbone: nn.Module, backbone_channels: Sequence[int], input_size: tuple[int, int] = (800, 800),
        num_queries: int = 100, d_model: int = 256, num_heads: int = 8, dim_feedforward: int = 2048,
        enc_layers: int = 6, dec_layers: int = 6, dropout: float = 0.1, aux_loss: bool = True,
        eos_coef: float = 0.1,
    ) -> None:
        super().__init__()
        chans = list(backbone_channels)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.aux_loss = aux_loss
        self.d_model = d_model
        self.backbone = backbone
        self.input_proj = nn.Conv2d(chans[-1], d_model, 1)
        self.transformer = DETRTransformer(d_model, num_heads, dim_feedforward, enc_layers, dec_layers, dropout)
        self.query_embed = nn.Embedding(num_queries, d_model)
        self.class_embed = nn.Linear(d_model, 2)
        self.bbox_embed = MLP(d_model, d_model, 4, 3)
        self.pos_embed = SineCache(d_model)
        self.det_criterion = DetectionSetCriterion(1, eos_coef=eos_coef)

    def detect(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[list[torch.Tensor], dict]:
        """Backbone + person DETR → ``(features, {"pred_logits" (B, Q, 2), "pred_boxes" (B, Q, 4),
        "aux_outputs"})``; ``mask (B, H, W)``: ``True`` on padding (``None``: nothing padded)."""
        feats = self.backbone(x)
        src = self.input_proj(feats[-1])
        h, w = src.shape[-2:]
        m = resize_mask(mask, (h, w))
        if m is None or not bool(m.any()):
            pos, key_mask = self.pos_embed(h, w, src), None
        else:
            pos, key_mask = masked_sine_embedding(m, self.d_model).to(src.dtype), m.flatten(1)
        hs, _ = self.transformer(src, self.query_embed.weight, pos, key_mask)
        logits = self.class_embed(hs)
        boxes = self.bbox_embed(hs).float().sigmoid()
        aux = [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1])] if self.aux_loss else []
        return feats, {"pred_logits": logits[-1], "pred_boxes": boxes[-1], "aux_outputs": aux}

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        """``images (B, 3, H, W)`` → DETR outputs (``pred_logits``, ``pred_boxes``, ``aux_outputs``)."""
        return self.detect(images, mask)[1]

    def loss(self, outputs: dict, targets: Targets) -> tuple[torch.Tensor, dict[str, float]]:
        """DETR set loss over the last and every auxiliary decoder layer → ``(total, parts)``."""
        total, parts = self.det_criterion(outputs, targets)
        out = {k: float(v.detach()) for k, v in parts.items()}
        out["loss"] = float(total.detach())
        return total, out


@torch.no_grad()
def box_results(outputs: dict, image_ids: Sequence[int], orig_sizes: torch.Tensor | Sequence,
                top_k: int | None = None) -> list[dict]:
    """DETR's post-processing to COCO detection results: per image, every query (or the ``top_k`` most confident)
    as ``{"image_id", "category_id": 1, "bbox": [x, y, w, h] original pixels, "score": person probability}``."""
    prob = outputs["pred_logits"].float().softmax(-1)[..., 0]
    boxes = outputs["pred_boxes"].float()
    sizes = torch.as_tensor(orig_sizes, dtype=torch.float32, device=boxes.device).reshape(-1, 2)
    res = []
    for b in range(boxes.shape[0]):
        order = prob[b].argsort(descending=True)
        if top_k is not None:
            order = order[:top_k]
        w0, h0 = sizes[b].tolist()
        for q in order.tolist():
            cx, cy, w, h = boxes[b, q].tolist()
            x0, y0 = max(cx - w / 2, 0.0) * w0, max(cy - h / 2, 0.0) * h0
            x1, y1 = min(cx + w / 2, 1.0) * w0, min(cy + h / 2, 1.0) * h0
            res.append({"image_id": int(image_ids[b]), "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": float(prob[b, q])})
    return res


# ------------------------------------------------------------------------------------------------ builders


def detr_resnet(depth: int, out_levels: Sequence[int] = (4,)) -> ResNet:
    """DETR's ResNet: FrozenBatchNorm, stem + layer1 frozen, returning ``out_levels`` (C5 by default)."""
    make = {50: resnet50, 101: resnet101, 152: resnet152}[depth]
    return make(out_levels=tuple(out_levels), norm=FrozenBatchNorm2d, frozen_stages=1)


def _detector(depth: int, input_size: Sequence[int], num_queries: int, aux_loss: bool, dropout: float,
              eos_coef: float) -> PersonDETR:
    body = detr_resnet(depth)
    return PersonDETR(body, body.channels, (int(input_size[0]), int(input_size[1])), num_queries=num_queries,
                      dropout=dropout, aux_loss=aux_loss, eos_coef=eos_coef)


@register_model
def prtr_detector_r50(input_size: Sequence[int] = (800, 800), num_queries: int = 100, aux_loss: bool = True,
                      dropout: float = 0.1, eos_coef: float = 0.1) -> PersonDETR:
    """PRTR's person detector, DETR-R50 (paper §4.1: fine-tuned from DETR COCO, person AP 50.2 on val2017)."""
    return _detector(50, input_size, num_queries, aux_loss, dropout, eos_coef)


@register_model
def prtr_detector_r101(input_size: Sequence[int] = (800, 800), num_queries: int = 100, aux_loss: bool = True,
                       dropout: float = 0.1, eos_coef: float = 0.1) -> PersonDETR:
    """PRTR's person detector on DETR-R101 (the paper names the R-50 one; the R-101 DETR is its natural twin)."""
    return _detector(101, input_size, num_queries, aux_loss, dropout, eos_coef)


@register_model
def prtr_detector_smoke(
    input_size: Sequence[int] = (128, 128), num_queries: int = 5, d_model: int = 64, num_heads: int = 4,
    dim_feedforward: int = 128, enc_layers: int = 1, dec_layers: int = 2, dropout: float = 0.0,
    aux_loss: bool = True, eos_coef: float = 0.1,
) -> PersonDETR:
    """CPU-sized person DETR for the synthetic benchmark: the detector half of ``prtr_e2e_smoke`` (ResNet-18
    stages 1-3 with trainable BN, C4 at stride 16, d 64, 1 encoder + 2 decoder layers, 5 queries, 128×128)."""
    body = BasicResNet((2, 2, 2), out_levels=(3,), norm=batch_norm())
    return PersonDETR(body, body.channels, (int(input_size[0]), int(input_size[1])), num_queries=num_queries,
                      d_model=d_model, num_heads=num_heads, dim_feedforward=dim_feedforward, enc_layers=enc_layers,
                      dec_layers=dec_layers, dropout=dropout, aux_loss=aux_loss, eos_coef=eos_coef)
