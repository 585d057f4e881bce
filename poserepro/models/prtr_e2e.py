"""End-to-end PRTR (paper §3.3, "sequential" variant): a DETR person detector whose boxes crop several backbone
levels differentiably (bilinear sampling, STN) for a keypoint Transformer. No training code was released
(FACTS §4.4: only an illustrative notebook); this module follows the paper and the notebook and says where it
chooses.

* Detector: ResNet (FrozenBatchNorm, stem + layer1 frozen) C5 → 1×1 to ``d`` → DETR Transformer → 100 queries →
  ``class_embed`` (person, no-object) and ``bbox_embed`` 3-layer MLP + sigmoid → ``(cx, cy, w, h)`` normalised.
  Loss: DETR matcher ``1·class + 5·L1 + 2·GIoU``, CE (no-object weight 0.1) + 5·L1 + 2·GIoU, auxiliary losses.
* Cropping: each person box enlarged by 25 % (``crop_enlarge``) is sampled on an ``x_res × y_res`` grid from every
  level in ``crop_levels`` (``grid_sample``, bilinear, border padding), the crops are concatenated on channels and
  projected by a 1×1 conv. The grid depends on the box, so keypoint gradients reach the detector.
* Keypoint Transformer: the two-stage PRTR head on the crop (``kpt_*`` modules); its position embedding is a fixed
  sine PE of the crop grid (``d/2`` channels) concatenated with learnable row/column embeddings (``d/4`` each;
  the notebook's 256 + 2×128 at ``d`` = 512). Coordinates are sigmoid outputs in the enlarged box's frame,
  ``x_img = cx + (u − 0.5)·1.25·w``. Background class last (as the two-stage code; the notebook puts it first).
* Training (paper §4.1): persons are the detector queries Hungarian-matched to ground truth; at most
  ``max_persons`` (5) with at least one labelled keypoint are sampled per image; the keypoint set loss (CE +
  5·L1, auxiliary layers re-matched) is computed in the crop frame of the *predicted* box: the L1 target is the
  ground truth mapped with the detached box and the prediction is mapped to the image with the live box and back
  with the detached one (same value, gradient to the box). ``train_crop="gt"`` with ``crop_jitter`` crops
  jittered ground-truth boxes instead (not in the paper; the CPU smoke recipe's warm-up aid, README "End-to-end
  PRTR on the CI budget").
* Inference: the ``eval_persons`` (20) most confident queries of every image are cropped; joints are read out with
  the Hungarian algorithm (background logit dropped before the softmax); a person's score is its detection
  probability times the mean of its joint scores above ``in_vis_thre`` (HRNet rescoring). See
  :func:`poserepro.codecs.whole_image.predict_image_results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..losses.end_to_end import end_to_end_loss
from ..losses.set_criterion import KeypointSetCriterion
from .backbones.hrnet import HRNet, hrnet
from .backbones.resnet import BasicResNet, ResNet, batch_norm
from .layers import MLP
from .layers.detr import DETRTransformer
from .layers.position import sine_embedding
from .person_detr import PersonDETR, detr_resnet
from .prtr import default_flip_pairs
from .registry import register_model

Targets = list[dict[str, torch.Tensor]]


class PRTREndToEnd(PersonDETR):
    """Person DETR (:class:`~poserepro.models.person_detr.PersonDETR`) + differentiable multi-level cropping +
    PRTR keypoint Transformer.

    Args:
        backbone: ResNet returning the crop levels, the last being the detector's input (C5).
        backbone_channels: channels of every returned level.
        input_size: nominal whole-image ``(w, h)`` the model is trained at (images may differ).
        num_joints: ``K``.
        num_queries: person queries (100).
        d_model, num_heads, dim_feedforward, enc_layers, dec_layers, dropout: detector Transformer (DETR: 256, 8,
            2048, 6, 6, 0.1).
        kpt_d_model, kpt_heads, kpt_dim_feedforward, kpt_enc_layers, kpt_dec_layers, kpt_dropout, kpt_queries:
            keypoint Transformer (256, 8, 2048, 6, 6, 0.0, 100; *assumption*: the two-stage settings).
        crop_levels: indices into the backbone outputs that are cropped (all by default).
        crop_size: ``(x_res, y_res)`` of the crop grid (10 × 10, the notebook's default).
        crop_enlarge: box enlargement (1.25).
        max_persons: matched persons sampled per training image (5).
        eval_persons: most confident queries decoded per image at inference (20, COCO's ``maxDets``).
        aux_loss: auxiliary losses on every decoder layer of both Transformers.
        include_bg_logit: keep the background logit in the keypoint read-out softmax.
        kpt_weight: weight of the keypoint loss against the detection loss (1).
        train_crop: in training crop the matched persons' *predicted* boxes (``"pred"``, the paper; keypoint
            gradients reach the detector) or their ground-truth boxes (``"gt"``: not in the paper, a warm-up aid
            for detectors trained from scratch).
        crop_jitter: with ``train_crop="gt"``, each ground-truth crop box is shifted by up to ±``crop_jitter`` of
            its width / height and its size scaled by a factor in ``[1 − crop_jitter, 1 + crop_jitter]`` (uniform,
            per box), so the keypoint Transformer also sees the imperfect boxes a detector gives at test time.
    """

    output_type = "e2e"
    find_unused_parameters = True

    def __init__(
        self, backbone: ResNet, backbone_channels: Sequence[int], input_size: tuple[int, int] = (512, 512),
        num_joints: int = 17, num_queries: int = 100, d_model: int = 256, num_heads: int = 8,
        dim_feedforward: int = 2048, enc_layers: int = 6, dec_layers: int = 6, dropout: float = 0.1,
        kpt_d_model: int = 256, kpt_heads: int = 8, kpt_dim_feedforward: int = 2048, kpt_enc_layers: int = 6,
        kpt_dec_layers: int = 6, kpt_dropout: float = 0.0, kpt_queries: int = 100,
        crop_levels: Sequence[int] | None = None, crop_size: tuple[int, int] = (10, 10), crop_enlarge: float = 1.25,
        max_persons: int = 5, eval_persons: int = 20, aux_loss: bool = True, include_bg_logit: bool = False,
        kpt_weight: float = 1.0, train_crop: Literal["pred", "gt"] = "pred", crop_jitter: float = 0.0,
        flip_pairs: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        if kpt_d_model % 4:
            raise ValueError(f"kpt_d_model must be divisible by 4, got {kpt_d_model}")
        chans = list(backbone_channels)
        # person detector (DETR): backbone, input_proj, transformer, query_embed, class_embed, bbox_embed
        super().__init__(backbone, chans, input_size, num_queries, d_model, num_heads, dim_feedforward, enc_layers,
                         dec_layers, dropout, aux_loss, eos_coef=0.1)
        self.num_joints = num_joints
        self.include_bg_logit = include_bg_logit
        self.crop_levels = tuple(crop_levels) if crop_levels is not None else tuple(range(len(chans)))
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.crop_enlarge = crop_enlarge
        self.max_persons = max_persons
        self.eval_persons = eval_persons
        self.kpt_weight = kpt_weight
        if train_crop not in ("pred", "gt"):
            raise ValueError(f"train_crop must be 'pred' or 'gt', got {train_crop!r}")
        self.train_crop = train_crop
        if not 0.0 <= crop_jitter < 1.0:
            raise ValueError(f"crop_jitter must be in [0, 1), got {crop_jitter}")
        self.crop_jitter = crop_jitter
        self.flip_pairs = default_flip_pairs(num_joints, flip_pairs)
        # keypoint Transformer on the crops
        xr, yr = self.crop_size
        self.kpt_input_proj = nn.Conv2d(sum(chans[i] for i in self.crop_levels), kpt_d_model, 1)
        self.kpt_transformer = DETRTransformer(kpt_d_model, kpt_heads, kpt_dim_feedforward, kpt_enc_layers,
                                               kpt_dec_layers, kpt_dropout)
        self.kpt_query_embed = nn.Embedding(kpt_queries, kpt_d_model)
        self.kpt_class_embed = nn.Linear(kpt_d_model, num_joints + 1)
        self.kpt_coord_embed = MLP(kpt_d_model, kpt_d_model, 2, 3)
        self.kpt_row_embed = nn.Parameter(torch.rand(xr, kpt_d_model // 4))
        self.kpt_col_embed = nn.Parameter(torch.rand(yr, kpt_d_model // 4))
        self.register_buffer("kpt_sine", sine_embedding(yr, xr, kpt_d_model // 2), persistent=False)
        self.kpt_criterion = KeypointSetCriterion(num_joints, 1.0, 5.0, 0.1, 1.0, 5.0)

    # ------------------------------------------------------------------------------------------- pieces

    def kpt_pos(self) -> torch.Tensor:
        """Crop-grid position embedding ``(y_res·x_res, d)``: sine (``d/2``) ‖ column (``d/4``) ‖ row (``d/4``)."""
        xr, yr = self.crop_size
        col = self.kpt_col_embed[:, None, :].expand(yr, xr, -1)
        row = self.kpt_row_embed[None, :, :].expand(yr, xr, -1)
        return torch.cat([self.kpt_sine, col.reshape(yr * xr, -1), row.reshape(yr * xr, -1)], dim=-1)

    def crop_grid(self, boxes: torch.Tensor) -> torch.Tensor:
        """``grid_sample`` grid ``(N, y_res, x_res, 2)`` covering each enlarged box ``(N, 4)`` cxcywh normalised."""
        xr, yr = self.crop_size
        e = self.crop_enlarge
        lin_x = torch.linspace(-e, e, xr, device=boxes.device, dtype=boxes.dtype)
        lin_y = torch.linspace(-e, e, yr, device=boxes.device, dtype=boxes.dtype)
        cx, cy, w, h = boxes.unbind(-1)
        gx = (2 * cx - 1)[:, None] + w[:, None] * lin_x[None]  # (N, xr)
        gy = (2 * cy - 1)[:, None] + h[:, None] * lin_y[None]  # (N, yr)
        return torch.stack([gx[:, None, :].expand(-1, yr, -1), gy[:, :, None].expand(-1, -1, xr)], dim=-1)

    def crop_to_image(self, u: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Crop-frame ``u (N, ..., 2)`` → image-normalised coordinates for boxes ``(N, 4)``."""
        c = boxes[:, None, :2]
        wh = boxes[:, None, 2:]
        return c + (u - 0.5) * self.crop_enlarge * wh

    def image_to_crop(self, xy: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Image-normalised ``xy (N, ..., 2)`` → the crop frame of boxes ``(N, 4)``."""
        c = boxes[:, None, :2]
        wh = boxes[:, None, 2:].clamp(min=1e-6)
        return (xy - c) / (self.crop_enlarge * wh) + 0.5

    def jitter_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Random shift (±``crop_jitter``·wh) and scale (×[1 ± ``crop_jitter``]) of cxcywh boxes ``(N, 4)``."""
        j = self.crop_jitter
        u = (torch.rand(boxes.shape, device=boxes.device, dtype=boxes.dtype) * 2 - 1) * j
        wh = boxes[:, 2:]
        return torch.cat([boxes[:, :2] + u[:, :2] * wh, wh * (1 + u[:, 2:])], dim=1)

    def keypoints(self, feats: list[torch.Tensor], batch_idx: torch.Tensor, boxes: torch.Tensor,
                  valid: torch.Tensor | None = None) -> dict:
        """Keypoint Transformer on the crops of ``boxes (N, 4)`` from images ``batch_idx (N,)``.

        ``valid (B, 2)``: the unpadded fraction ``(w, h)`` of each image in a padded batch (boxes are normalised to
        the valid image; the crop grid to the padded map, as the notebook rescales them); ``None``: no padding.

        Returns ``{"pred_logits": (N, Qk, K+1), "pred_coords": (N, Qk, 2) crop frame, "aux_outputs": [...]}``.
        """
        grid = self.crop_grid(boxes if valid is None else boxes * valid[batch_idx].repeat(1, 2).to(boxes))
        crops = [
            F.grid_sample(feats[i][batch_idx], grid.to(feats[i].dtype), mode="bilinear", padding_mode="border",
                          align_corners=False)
            for i in self.crop_levels
        ]
        src = self.kpt_input_proj(torch.cat(crops, dim=1))
        hs, _ = self.kpt_transformer(src, self.kpt_query_embed.weight, self.kpt_pos().to(src.dtype))
        logits = self.kpt_class_embed(hs)
        coords = self.kpt_coord_embed(hs).float().sigmoid()
        aux = [{"pred_logits": a, "pred_coords": c} for a, c in zip(logits[:-1], coords[:-1])] if self.aux_loss else []
        return {"pred_logits": logits[-1], "pred_coords": coords[-1], "aux_outputs": aux}

    def _select_train(self, det: dict, targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Matched (image, query, target) triples, at most ``max_persons`` per image with a labelled keypoint."""
        indices = self.det_criterion.match(det, targets)
        bs, qs, ts = [], [], []
        for i, ((q, t), tgt) in enumerate(zip(indices, targets)):
            kp = tgt.get("keypoints")
            if kp is None or len(t) == 0:
                continue
            keep = (kp[t.to(kp.device), :, 2] > 0).any(-1).cpu()
            q, t = q[keep], t[keep]
            if len(q) > self.max_persons:
                pick = torch.randperm(len(q))[: self.max_persons]
                q, t = q[pick], t[pick]
            bs.append(torch.full_like(q, i))
            qs.append(q)
            ts.append(t)
        empty = torch.zeros(0, dtype=torch.int64)
        dev = det["pred_boxes"].device
        return tuple(torch.cat(v).to(dev) if v else empty.to(dev) for v in (bs, qs, ts))  # type: ignore[return-value]

    def _select_eval(self, det: dict) -> tuple[torch.Tensor, torch.Tensor]:
        prob = det["pred_logits"].float().softmax(-1)[..., 0]  # (B, Q)
        k = min(self.eval_persons, prob.shape[1])
        top = prob.topk(k, dim=1).indices  # (B, k)
        b = torch.arange(prob.shape[0], device=prob.device)[:, None].expand(-1, k)
        return b.reshape(-1), top.reshape(-1)

    # ------------------------------------------------------------------------------------------- API

    def forward(self, images: torch.Tensor, targets: Targets | None = None,  # type: ignore[override]
                mask: torch.Tensor | None = None) -> dict:
        """Detect persons and regress their joints.

        Args:
            images: ``(B, 3, H, W)`` whole images.
            targets: training only, per image ``{"boxes": (n, 4) cxcywh normalised, "keypoints": (n, K, 3)
                normalised x, y + visibility}``: persons are then the queries matched to them.
            mask: ``(B, H, W)`` ``True`` on the padding of a padded batch (DETR augmentation), or ``None``.

        Returns:
            the detector outputs (``pred_logits``, ``pred_boxes``, ``aux_outputs``) plus ``kpt`` (keypoint
            Transformer outputs for ``N`` persons), ``kpt_batch`` / ``kpt_query`` ``(N,)``, ``kpt_boxes (N, 4)`` and,
            in training, ``kpt_target (N,)`` (index of the matched ground-truth person).
        """
        feats, det = self.detect(images, mask)
        if targets is not None:
            b_idx, q_idx, t_idx = self._select_train(det, targets)
            det["kpt_target"] = t_idx
        else:
            b_idx, q_idx = self._select_eval(det)
        boxes = det["pred_boxes"][b_idx, q_idx]
        if targets is not None and self.train_crop == "gt" and len(b_idx):
            boxes = torch.stack([targets[int(b)]["boxes"][int(t)] for b, t in zip(b_idx, t_idx)]).to(boxes)
            if self.crop_jitter > 0:
                boxes = self.jitter_boxes(boxes)
        det["kpt_batch"], det["kpt_query"], det["kpt_boxes"] = b_idx, q_idx, boxes
        if len(b_idx):
            det["kpt"] = self.keypoints(feats, b_idx, boxes, valid_fraction(mask))
        else:
            det["kpt"] = None
        return det

    def loss(self, outputs: dict, targets: Targets) -> tuple[torch.Tensor, dict[str, float]]:
        """Detection loss + ``kpt_weight`` × keypoint set loss (see the module docstring) → ``(total, parts)``."""
        return end_to_end_loss(outputs, targets, self.det_criterion, self.kpt_criterion, self.kpt_weight,
                               self.image_to_crop, self.crop_to_image)


def valid_fraction(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(B, 2)`` unpadded fraction ``(w, h)`` of each image of a padded batch (``mask (B, H, W)`` ``True`` on
    padding); ``None`` when nothing is padded."""
    if mask is None or not bool(mask.any()):
        return None
    valid = ~mask
    w = valid[:, 0, :].sum(-1).float() / mask.shape[2]
    h = valid[:, :, 0].sum(-1).float() / mask.shape[1]
    return torch.stack([w, h], dim=1)


def e2e_loss(model: PRTREndToEnd, images: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, dict[str, float]]:
    """One training forward: ``model.loss(model(images, targets), targets)``."""
    return model.loss(model(images, targets), targets)


# ------------------------------------------------------------------------------------------------ builders


def _e2e_resnet(depth: int, input_size: Sequence[int], **kw) -> PRTREndToEnd:
    body = detr_resnet(depth, out_levels=(2, 3, 4))
    return PRTREndToEnd(body, body.channels, (int(input_size[0]), int(input_size[1])), **kw)


@register_model
def prtr_e2e_r50(input_size: Sequence[int] = (800, 800), **kw) -> PRTREndToEnd:
    """End-to-end PRTR, ResNet-50, crops from C3–C5 (the paper reports R-101 and HRNet-W48 only)."""
    return _e2e_resnet(50, input_size, **kw)


@register_model
def prtr_e2e_r101(input_size: Sequence[int] = (800, 800), **kw) -> PRTREndToEnd:
    """End-to-end PRTR, ResNet-101, crops from C3–C5 (paper Table 1: 64.8 AP COCO val, Table 2: 63.4 test-dev)."""
    return _e2e_resnet(101, input_size, **kw)


@register_model
def prtr_e2e_hrnet_w48(input_size: Sequence[int] = (800, 800), crop_levels: Sequence[int] = (1, 2, 3),
                       **kw) -> PRTREndToEnd:
    """End-to-end PRTR, HRNet-W48 (paper Table 1: 66.2 AP COCO val, Table 2: 64.9 test-dev).

    The paper names the backbone only. *Assumptions*: the full four-stage HRNet-W48 (BatchNorm, every branch
    out: 48 / 96 / 192 / 384 channels at strides 4 / 8 / 16 / 32), the detector on the stride-32 branch, crops
    from the stride 8 / 16 / 32 branches (``crop_levels``), the counterpart of the ResNet models' C3-C5."""
    body: HRNet = hrnet(48, multi_scale_output=True)
    return PRTREndToEnd(body, body.channels, (int(input_size[0]), int(input_size[1])), crop_levels=crop_levels,
                        **kw)


@register_model
def prtr_e2e_smoke(
    input_size: Sequence[int] = (128, 128), num_joints: int = 17, num_queries: int = 5, d_model: int = 64,
    num_heads: int = 4, dim_feedforward: int = 128, enc_layers: int = 1, dec_layers: int = 2, dropout: float = 0.0,
    kpt_d_model: int = 64, kpt_heads: int = 4, kpt_dim_feedforward: int = 128, kpt_enc_layers: int = 1,
    kpt_dec_layers: int = 2, kpt_queries: int = 17, crop_size: Sequence[int] = (8, 10), **kw,
) -> PRTREndToEnd:
    """CPU-sized end-to-end PRTR for the synthetic multi-person set (1–3 persons an image): ResNet-18 stages 1–3
    (trainable BN), detector on C4 (stride 16), crops from C3 + C4, d 64, 1 encoder + 2 decoder layers in both
    Transformers, 5 person queries, 17 joint queries (still Hungarian-matched), 8×10 crops, 128×128 images.

    The query and encoder counts were chosen on the CI budget (README "End-to-end PRTR on the CI budget"): from
    10 person queries, 25 joint queries and 2 encoder layers, each change raised AP after 8 epochs of the CI set."""
    body = BasicResNet((2, 2, 2), out_levels=(2, 3), norm=batch_norm())
    return PRTREndToEnd(
        body, body.channels, (int(input_size[0]), int(input_size[1])), num_joints=num_joints,
        num_queries=num_queries, d_model=d_model, num_heads=num_heads, dim_feedforward=dim_feedforward,
        enc_layers=enc_layers, dec_layers=dec_layers, dropout=dropout, kpt_d_model=kpt_d_model, kpt_heads=kpt_heads,
        kpt_dim_feedforward=kpt_dim_feedforward, kpt_enc_layers=kpt_enc_layers, kpt_dec_layers=kpt_dec_layers,
        kpt_queries=kpt_queries, crop_size=(int(crop_size[0]), int(crop_size[1])), **kw,
    )
