"""Post-norm Transformer encoder / decoder layers in the DETR layout (batch-first ``(B, L, d)``).

Parameter names follow the DETR / TransPose code (``self_attn``, ``linear1``, ``linear2``, ``norm1``, ...) so
official checkpoints map onto these modules key by key.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiheadAttention
from .dropout import Dropout

Activation = Literal["relu", "gelu"]


def _act(name: Activation):
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    raise ValueError(f"unknown activation {name!r}")


def _with_pos(x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
    return x if pos is None else x + pos


class TransformerEncoderLayer(nn.Module):
    """Post-norm encoder layer: ``x = LN(x + MHA(x+pos, x+pos, x)); x = LN(x + FFN(x))``."""

    def __init__(
        self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float = 0.1,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, num_heads, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _act(activation)

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None, need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``src (B, L, d)``, ``pos (L, d) | (B, L, d) | None`` → ``(out (B, L, d), attn (B, L, L) | None)``."""
        qk = _with_pos(src, pos)
        src2, attn = self.self_attn(qk, qk, src, key_padding_mask=key_padding_mask, need_weights=need_weights)
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout(self.activation(self.linear1(src))))
        src = self.norm2(src + self.dropout2(src2))
        return src, attn


class TransformerEncoder(nn.Module):
    """A stack of encoder layers.

    Args:
        layer: the layer to clone ``num_layers`` times.
        pos_every_layer: add the position embedding to q/k in every layer (TransPose, DETR) or only in the first
            (BTranspose's ``pe_only_at_begin``).
        norm: optional final LayerNorm (DETR post-norm encoders have none).
    """

    def __init__(
        self, layer: nn.Module, num_layers: int, pos_every_layer: bool = True, norm: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.pos_every_layer = pos_every_layer
        self.norm = norm

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None, need_weights: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``src (B, L, d)`` → ``(out (B, L, d), [attn (B, L, L) per layer])`` (the list is empty unless asked)."""
        attns: list[torch.Tensor] = []
        out = src
        for i, layer in enumerate(self.layers):
            p = pos if (self.pos_every_layer or i == 0) else None
            out, attn = layer(out, p, key_padding_mask=key_padding_mask, need_weights=need_weights)
            if attn is not None:
                attns.append(attn)
        if self.norm is not None:
            out = self.norm(out)
        return out, attns


class TransformerDecoderLayer(nn.Module):
    """DETR post-norm decoder layer: self-attention over queries, cross-attention to memory, FFN."""

    def __init__(
        self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float = 0.1,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, num_heads, dropout=dropout)
        self.multihead_attn = MultiheadAttention(d_model, num_heads, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _act(activation)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None, memory_key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``tgt (B, Q, d)``, ``memory (B, L, d)``, ``pos`` for memory keys, ``query_pos`` for queries.

        Returns ``(out (B, Q, d), cross-attention (B, Q, L) | None)``.
        """
        q = k = _with_pos(tgt, query_pos)
        tgt2, _ = self.self_attn(q, k, tgt)
        tgt = self.norm1(tgt + self.dropout1(tgt2))
        tgt2, attn = self.multihead_attn(
            _with_pos(tgt, query_pos), _with_pos(memory, pos), memory,
            key_padding_mask=memory_key_padding_mask, need_weights=need_weights,
        )
        tgt = self.norm2(tgt + self.dropout2(tgt2))
        tgt2 = self.linear2(self.dropout(self.activation(self.linear1(tgt))))
        tgt = self.norm3(tgt + self.dropout3(tgt2))
        return tgt, attn


class TransformerDecoder(nn.Module):
    """A stack of DETR decoder layers with a final LayerNorm applied to every returned intermediate output."""

    def __init__(self, layer: nn.Module, num_layers: int, d_model: int, return_intermediate: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.return_intermediate = return_intermediate

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None, memory_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Returns ``(num_layers, B, Q, d)`` when ``return_intermediate`` else ``(1, B, Q, d)``."""
        out = tgt
        inter = []
        for layer in self.layers:
            out, _ = layer(out, memory, pos, query_pos, memory_key_padding_mask)
            if self.return_intermediate:
                inter.append(self.norm(out))
        if self.return_intermediate:
            return torch.stack(inter)
        return self.norm(out)[None]
