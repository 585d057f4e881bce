"""TFPose (Mao et al., 2021, "TFPose: Direct Human Pose Estimation with Transformers") — from the paper only.

No official code exists (FACTS §3.2); every choice the paper leaves open is a constructor argument, marked
*assumption* below, and the recipes say which value they use.

Pipeline (paper §3): ResNet C2–C5 (strides 4–32) → per level a 1×1 conv to ``C`` channels (256; ablation 128)
[+ GroupNorm(32), *assumption*: Deformable DETR's input projection] → flattened and concatenated, plus a learned
level embedding and the 2-D sine PE (Deformable-DETR form: normalised with a −0.5 offset, scale 2π) → ``N_E``
deformable encoder layers (8 heads, 4 points, all levels; FFN 1024, dropout 0.1, ReLU: Deformable-DETR defaults,
*assumption*) → memory ``M`` → ``N_D`` decoder layers over ``K`` = 17 learnable joint queries, each: q2q
self-attention (switchable) → p2q multi-scale deformable cross-attention around the current joint estimates →
FFN. Every decoder layer ``d`` predicts an offset ``Δ_d`` with its own 3-layer MLP and refines in logit space,
``ŷ_d = σ(σ⁻¹(ŷ_{d−1}) + Δ_d)``, from a learned initial ``ŷ_0``; the reference points are detached between
layers (Deformable DETR's box refinement). Training: ``L = Σ_d L1(ŷ_d, y) + λ·MSE(Ĥ, H_UDP)`` with ``λ = 50`` and an
auxiliary SimpleBaseline head (3 deconvolutions) on the C5 part of ``M``, used in training only.

Feature levels: ``levels=(1, 2, 3, 4)`` is C2–C5 as the paper's text says; ``levels=(2, 3, 4)`` (C3–C5) is what
reproduces the paper's GFLOPs for every model with an encoder (Tables 3–6), while the encoder-free ablations
(Tables 1–2) match C2–C5 — see :data:`PAPER_GFLOPS_NOTES`. ``extra_levels`` appends Deformable-DETR-style stride-2
levels.

Other *assumptions* (the paper is silent): the queries' positional embedding is a second learned ``(K, C)`` table
(``query_pos``, Deformable DETR splits its query embedding the same way); the deformable cross-attention samples
around the previous estimate ``ŷ_{d−1}`` (``ŷ_0`` for the first layer, which also trains ``ŷ_0``); the offset heads'
last layer starts at zero; the backbone keeps ordinary trainable BatchNorm (top-down pose practice); the L1 loss
of a layer is the mean over labelled joints (inside the crop) of ``|Δx| + |Δy|`` in normalised coordinates; the
auxiliary MSE is HRNet's joints MSE with UDP targets (σ 2); joint scores are 1 (TFPose predicts no confidence).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ..codecs.regression import encode_udp_batch, flip_average, normalize_joints
from ..losses.regression import tfpose_loss
from .backbones.resnet import ResNet, batch_norm, resnet18, resnet50, resnet101
from .heads import DeconvHead, init_pose_weights
from .layers import MLP
from .layers.deform_attn import DeformableDecoderLayer, DeformableEncoder, DeformableEncoderLayer, MSDeformAttn
from .layers.position import sine_embedding
from .prtr import default_flip_pairs, joint_weights
from .registry import register_model

#: The paper's GFLOPs beside ours (the lead copies this into the README). Measured with fvcore by
#: ``tests/test_tfpose.py`` (which pins the C3–C5 main-result rows and the C2–C5 Table 1–2 rows).
PAPER_GFLOPS_NOTES = """\
TFPose GFLOPs. Ours are fvcore counts (1 multiply-add = 1 FLOP; batch 1; inference graph, i.e. without the
training-only auxiliary heatmap head; grid_sample and the q2q attention matmuls counted). The paper prints
GFLOPs but no code; its tables are only consistent with two different feature inputs:

| paper row                                   | paper | ours, C2-C5 | ours, C3-C5 |
|---------------------------------------------|-------|-------------|-------------|
| Tab. 5/6  R-50 256x192 N_E 4 N_D 6          | 7.7 (text 7.68) | 18.735 | 7.709 |
| Tab. 5/6  R-50 256x192 N_E 6 N_D 6          | 9.2 (text 9.15) | 25.039 | 9.209 |
| Tab. 5/6  R-50 384x288 N_E 6 N_D 6          | 20.4  | 56.197      | 20.582      |
| Tab. 3    R-18 256x192 N_E 6 N_D 1          | 6.32  | 21.081      | 6.411       |
| Tab. 3/4  R-18 256x192 N_E 6 N_D 6          | 6.77 / 6.76 | 22.512 | 6.833   |
| Tab. 1    R-18 256x192 N_E 0 N_D 6 no q2q   | 3.51  | 3.571       | 2.306       |
| Tab. 1/2  R-18 256x192 N_E 0 N_D 6 C 256    | 3.61  | 3.599       | 2.333       |
| Tab. 2    R-18 256x192 N_E 0 N_D 6 C 128    | 2.28  | 2.277       | 1.947       |

Findings. (1) Every row with an encoder (Tables 3-6, the main results) matches a three-level C3-C5 input
(about 1,000 memory tokens at 256x192) to within 1.5%; with the C2-C5 input the paper's text describes,
one 256-d deformable encoder layer alone costs ~3.2 GFLOPs at 256x192 (N_E 4 -> 6 would add 6.3 GFLOPs,
the paper adds 1.5). (2) The encoder-free ablations (Tables 1-2) match C2-C5 to within 2% (there the value
projection over the ~4,000 C2-C5 tokens in every decoder layer dominates) and are 15-35% below with C3-C5.
(3) The q2q switch costs 0.03 GFLOPs in our count against 0.10 in Table 1. (4) Per decoder layer we count
0.084 GFLOPs (C3-C5) against Table 3's 0.09. (5) Tables 5-7 label the encoder count "N_D".
Defaults therefore follow the numbers: the encoder models (tfpose_r50_e4/e6, tfpose_r18_e6) read C3-C5, the
encoder-free ablation model (tfpose_r18_e0) reads C2-C5; ``levels=`` switches either (recipes say which).
The paper's text (C2-C5 for everything) is one ``--set model.args.levels=[1,2,3,4]`` away.
"""


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``σ⁻¹(x)`` with ``x`` clamped to ``[0, 1]`` and both ``x`` and ``1 − x`` floored at ``eps`` (Deformable DETR)."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class TFPoseTransformer(nn.Module):
    """Deformable encoder + refining decoder (the parameters that get the ×0.1 learning rate).

    ``forward(srcs [(B, C, h_l, w_l)], query (K, C), query_pos (K, C), init_ref (B, K, 2), coord_embed)`` →
    ``(memory (B, S, C), [ŷ_d (B, K, 2)] per decoder layer)``.
    """

    def __init__(
        self, d_model: int, num_heads: int, n_points: int, n_levels: int, dim_feedforward: int, dropout: float,
        enc_layers: int, dec_layers: int, q2q: bool,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.n_levels = n_levels
        enc = DeformableEncoderLayer(d_model, dim_feedforward, dropout, "relu", n_levels, num_heads, n_points)
        dec = DeformableDecoderLayer(d_model, dim_feedforward, dropout, "relu", n_levels, num_heads, n_points, q2q)
        self.encoder = DeformableEncoder(enc, enc_layers)
        self.decoder = nn.ModuleList(copy.deepcopy(dec) for _ in range(dec_layers))
        self.level_embed = nn.Parameter(torch.empty(n_levels, d_model))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)
        self._pe: dict[tuple[int, int, str, torch.dtype], torch.Tensor] = {}

    def _pos(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        key = (h, w, str(like.device), like.dtype)
        if key not in self._pe:
            self._pe[key] = sine_embedding(h, w, self.d_model, offset=0.5).to(like.device, like.dtype)
        return self._pe[key]

    def forward(
        self, srcs: list[torch.Tensor], query: torch.Tensor, query_pos: torch.Tensor, init_ref: torch.Tensor,
        coord_embed: nn.ModuleList, need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        b = srcs[0].shape[0]
        shapes = [(int(s.shape[-2]), int(s.shape[-1])) for s in srcs]
        tokens = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], dim=1)
        pos = torch.cat([self._pos(h, w, tokens) + self.level_embed[i] for i, (h, w) in enumerate(shapes)])[None]
        memory = self.encoder(tokens, pos, shapes)
        tgt = query[None].expand(b, -1, -1)
        qpos = query_pos[None].expand(b, -1, -1)
        ref = init_ref.float()
        coords: list[torch.Tensor] = []
        extras: list[dict[str, torch.Tensor]] = []
        for layer, head in zip(self.decoder, coord_embed):
            ref_lv = ref[:, :, None, :].expand(-1, -1, self.n_levels, -1)
            tgt, ex = layer(tgt, qpos, ref_lv, memory, shapes, need_weights=need_weights)
            new = (inverse_sigmoid(ref.float()) + head(tgt).float()).sigmoid()  # float32 under autocast
            coords.append(new)
            extras.append(ex)
            ref = new.detach()
        return memory, coords, extras


class TFPose(nn.Module):
    """TFPose: multi-level CNN features → deformable Transformer → 17 refined joint coordinates.

    Args:
        backbone: a :class:`~poserepro.models.backbones.resnet.ResNet` returning the ``levels`` stages.
        backbone_channels: channels of the returned stages.
        backbone_strides: their strides (one must be 32 for the auxiliary head).
        input_size: crop ``(w, h)``.
        num_joints: ``K``.
        d_model: ``C`` (256; ablation 128).
        num_heads, n_points: deformable attention (8, 4).
        dim_feedforward: FFN width (1024, *assumption*: Deformable DETR).
        dropout: Transformer dropout (0.1, *assumption*).
        enc_layers, dec_layers: ``N_E``, ``N_D``.
        extra_levels: stride-2 3×3 convs appended after the last stage (Deformable-DETR style, 0 by default).
        q2q: query-to-query self-attention in the decoder (ablation, Table 1).
        aux_loss: auxiliary heatmap head and loss (Table 4); ``aux_weight`` λ (50); ``aux_sigma`` of the UDP
            targets (2, *assumption*); ``aux_channels`` of the deconvolutions (256, SimpleBaseline).
        input_norm: GroupNorm(32) after each input projection (*assumption*, Deformable DETR).
        flip_pairs: left/right pairs for the flip test (default: COCO's for 17 joints, MPII's for 16).

    ``forward(x (B, 3, H, W))`` → ``{"coords": (B, K, 2), "aux_coords": [(B, K, 2)] × (N_D − 1), "heatmaps":
    (B, K, H/4, W/4)}`` (``heatmaps`` only in training with ``aux_loss``); coordinates are ``(x/w, y/h)``.
    """

    output_type = "regression"

    def __init__(
        self, backbone: ResNet, backbone_channels: Sequence[int], backbone_strides: Sequence[int],
        input_size: tuple[int, int] = (192, 256), num_joints: int = 17, d_model: int = 256, num_heads: int = 8,
        n_points: int = 4, dim_feedforward: int = 1024, dropout: float = 0.1, enc_layers: int = 6,
        dec_layers: int = 6, extra_levels: int = 0, q2q: bool = True, aux_loss: bool = True,
        aux_weight: float = 50.0, aux_sigma: float = 2.0, aux_channels: int = 256, input_norm: bool = True,
        flip_pairs: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        if dec_layers < 1:
            raise ValueError("TFPose needs at least one decoder layer")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.num_joints = num_joints
        self.aux_loss = aux_loss
        self.aux_weight = aux_weight
        self.aux_sigma = aux_sigma
        self.flip_pairs = default_flip_pairs(num_joints, flip_pairs)
        self.backbone = backbone
        chans = list(backbone_channels)
        strides = list(backbone_strides)
        n_levels = len(chans) + extra_levels

        def norm(c: int) -> nn.Module:
            return nn.GroupNorm(32 if c % 32 == 0 else 1, c) if input_norm else nn.Identity()

        proj = [nn.Sequential(nn.Conv2d(c, d_model, 1), norm(d_model)) for c in chans]
        cin = chans[-1]
        for _ in range(extra_levels):
            proj.append(nn.Sequential(nn.Conv2d(cin, d_model, 3, stride=2, padding=1), norm(d_model)))
            cin = d_model
            strides.append(strides[-1] * 2)
        self.input_proj = nn.ModuleList(proj)
        for p in self.input_proj:
            nn.init.xavier_uniform_(p[0].weight, gain=1)
            nn.init.zeros_(p[0].bias)
        self.transformer = TFPoseTransformer(d_model, num_heads, n_points, n_levels, dim_feedforward, dropout,
                                             enc_layers, dec_layers, q2q)
        self.query_embed = nn.Embedding(num_joints, d_model)
        self.query_pos = nn.Embedding(num_joints, d_model)
        # ŷ_0: a learned (K, 2) matrix, stored as logits and initialised uniformly inside the crop
        self.init_coords = nn.Parameter(inverse_sigmoid(torch.rand(num_joints, 2) * 0.8 + 0.1))
        self.coord_embed = nn.ModuleList(MLP(d_model, d_model, 2, 3) for _ in range(dec_layers))
        for m in self.coord_embed:
            nn.init.zeros_(m.layers[-1].weight)
            nn.init.zeros_(m.layers[-1].bias)
        if aux_loss and 32 not in strides:
            raise ValueError(f"the auxiliary head reads the stride-32 level; strides are {strides}")
        self.c5_level = strides.index(32) if 32 in strides else -1
        self.strides = strides
        self.aux_head: DeconvHead | None = None
        if aux_loss:
            self.aux_head = DeconvHead(d_model, num_joints, num_deconv=3, deconv_channels=aux_channels)
            init_pose_weights(self.aux_head)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.backbone(x)
        srcs = [p(f) for p, f in zip(self.input_proj, feats)]
        last = feats[-1]
        for p in self.input_proj[len(feats):]:
            last = p(last)
            srcs.append(last)
        return srcs

    def forward(self, x: torch.Tensor, need_weights: bool = False) -> dict:
        srcs = self._features(x)
        b = x.shape[0]
        init_ref = self.init_coords.sigmoid()[None].expand(b, -1, -1)
        memory, coords, extras = self.transformer(
            srcs, self.query_embed.weight, self.query_pos.weight, init_ref, self.coord_embed, need_weights
        )
        out: dict = {"coords": coords[-1], "aux_coords": coords[:-1]}
        if need_weights:
            out["attention"] = extras
        if self.training and self.aux_head is not None:
            start = sum(s.shape[-2] * s.shape[-1] for s in srcs[: self.c5_level])
            h, w = srcs[self.c5_level].shape[-2:]
            m5 = memory[:, start:start + h * w].transpose(1, 2).reshape(b, -1, h, w)
            out["heatmaps"] = self.aux_head(m5)
        return out

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """``Σ_d L1 + λ·MSE`` against ``batch["joints"] (B, K, 2)`` crop pixels and ``batch["joints_vis"] (B, K)``.

        UDP heatmap targets (σ = ``aux_sigma``) are built here from the joints at the heatmaps' size.
        Joints outside the crop get L1 weight 0.
        """
        joints = batch["joints"][..., :2]
        target = normalize_joints(joints, self.input_size)
        vis = joint_weights(batch["joints_vis"], target)
        layers = list(outputs.get("aux_coords", [])) + [outputs["coords"]]
        hm = outputs.get("heatmaps")
        hm_t = hm_w = None
        if hm is not None:
            vis_raw = batch["joints_vis"].float()
            vis_raw = vis_raw[..., 0] if vis_raw.dim() == 3 else vis_raw
            hm_t, hm_w = encode_udp_batch(joints, vis_raw, self.input_size, (hm.shape[-1], hm.shape[-2]),
                                          self.aux_sigma)
        return tfpose_loss(layers, target, vis, hm, hm_t, hm_w, self.aux_weight)

    @torch.no_grad()
    def decode(self, outputs: dict, flip_outputs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(coords (B, K, 2) crop pixels, scores (B, K))``; scores are 1 (TFPose predicts no confidence).

        With ``flip_outputs`` the mirrored prediction is flipped back (``x → 1 − x``, left/right swapped) and
        averaged.
        """
        coords = outputs["coords"].float()
        scores = torch.ones(coords.shape[:2], dtype=coords.dtype, device=coords.device)
        if flip_outputs is not None:
            coords, scores = flip_average(coords, scores, flip_outputs["coords"].float(), scores, self.flip_pairs)
        size = torch.tensor(self.input_size, dtype=coords.dtype, device=coords.device)
        return coords * size, scores


# ------------------------------------------------------------------------------------------------ builders


C3_C5 = (2, 3, 4)
C2_C5 = (1, 2, 3, 4)


def _tfpose(
    depth: int, enc_layers: int, dec_layers: int = 6, input_size: Sequence[int] = (192, 256),
    levels: Sequence[int] = C3_C5, extra_levels: int = 0, **kw,
) -> TFPose:
    make = {18: resnet18, 50: resnet50, 101: resnet101}[depth]
    body = make(out_levels=tuple(levels), norm=batch_norm())
    return TFPose(body, body.channels, body.strides, (int(input_size[0]), int(input_size[1])),
                  enc_layers=enc_layers, dec_layers=dec_layers, extra_levels=extra_levels, **kw)


@register_model
def tfpose_r50_e4(enc_layers: int = 4, dec_layers: int = 6, levels: Sequence[int] = C3_C5, **kw) -> TFPose:
    """TFPose R-50, N_E 4, N_D 6, C3–C5 (paper Table 5: 256×192 70.5 AP val, 7.7 GFLOPs)."""
    return _tfpose(50, enc_layers, dec_layers, levels=levels, **kw)


@register_model
def tfpose_r50_e6(enc_layers: int = 6, dec_layers: int = 6, levels: Sequence[int] = C3_C5, **kw) -> TFPose:
    """TFPose R-50, N_E 6, N_D 6, C3–C5 (paper Table 5: 256×192 71.0 AP, 9.2 GFLOPs; 384×288 72.4 AP, 20.4)."""
    return _tfpose(50, enc_layers, dec_layers, levels=levels, **kw)


@register_model
def tfpose_r18_e0(enc_layers: int = 0, dec_layers: int = 6, levels: Sequence[int] = C2_C5, **kw) -> TFPose:
    """TFPose R-18 without encoder, N_D 6, C2–C5 (ablations, Tables 1–2: ``q2q`` on/off, ``d_model`` 256/128)."""
    return _tfpose(18, enc_layers, dec_layers, levels=levels, **kw)


@register_model
def tfpose_r18_e6(enc_layers: int = 6, dec_layers: int = 6, levels: Sequence[int] = C3_C5, **kw) -> TFPose:
    """TFPose R-18, N_E 6, C3–C5 (ablations, Tables 3–4: ``dec_layers`` 1–6, ``aux_loss`` on/off)."""
    return _tfpose(18, enc_layers, dec_layers, levels=levels, **kw)


@register_model
def tfpose_smoke(
    input_size: Sequence[int] = (96, 128), num_joints: int = 17, d_model: int = 64, num_heads: int = 4,
    dim_feedforward: int = 128, enc_layers: int = 1, dec_layers: int = 3, aux_channels: int = 64,
    levels: Sequence[int] = C3_C5, **kw,
) -> TFPose:
    """CPU-sized TFPose for the synthetic benchmark: ResNet-18 C3–C5, d 64, 4 heads, 1 encoder + 3 decoder
    layers, 128×96 input."""
    return _tfpose(18, enc_layers, dec_layers, input_size, levels, num_joints=num_joints, d_model=d_model,
                   num_heads=num_heads, dim_feedforward=dim_feedforward, aux_channels=aux_channels, **kw)
