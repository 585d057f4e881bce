"""DETR's encoder–decoder Transformer and its cached sine position embedding, shared by two-stage and
end-to-end PRTR (module names as in the official code: ``encoder.layers.N``, ``decoder.layers.N``,
``decoder.norm``)."""

from __future__ import annotations

import torch
from torch import nn

from .position import sine_embedding
from .transformer import TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer


class DETRTransformer(nn.Module):
    """DETR's encoder–decoder: post-norm layers, no encoder final norm, decoder final norm + intermediate outputs.

    ``forward(src (B, d, h, w), query_embed (Q, d), pos (h·w, d))`` → ``(hs (L_dec, B, Q, d), memory (B, h·w, d))``;
    the decoder input starts at zeros, ``query_embed`` is added to queries/keys of every decoder layer and ``pos``
    to the keys (and encoder queries) of every layer.
    """

    def __init__(
        self, d_model: int = 256, num_heads: int = 8, dim_feedforward: int = 2048, enc_layers: int = 6,
        dec_layers: int = 6, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        enc = TransformerEncoderLayer(d_model, num_heads, dim_feedforward, dropout, "relu")
        dec = TransformerDecoderLayer(d_model, num_heads, dim_feedforward, dropout, "relu")
        self.encoder = TransformerEncoder(enc, enc_layers, pos_every_layer=True, norm=None)
        self.decoder = TransformerDecoder(dec, dec_layers, d_model, return_intermediate=True)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, src: torch.Tensor, query_embed: torch.Tensor, pos: torch.Tensor | None,
        padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = src.shape[0]
        tokens = src.flatten(2).transpose(1, 2)
        memory, _ = self.encoder(tokens, pos, key_padding_mask=padding_mask)
        query_pos = query_embed[None].expand(b, -1, -1)
        tgt = torch.zeros_like(query_pos)
        hs = self.decoder(tgt, memory, pos, query_pos, memory_key_padding_mask=padding_mask)
        return hs, memory


class SineCache(nn.Module):
    """DETR sine position embedding of an ``h × w`` grid (normalised, no offset), cached per size; ``(h·w, d)``."""

    def __init__(self, d_model: int, offset: float = 0.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.offset = offset
        self._cache: dict[tuple[int, int, str, torch.dtype], torch.Tensor] = {}

    def forward(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        key = (h, w, str(like.device), like.dtype)
        if key not in self._cache:
            self._cache[key] = sine_embedding(h, w, self.d_model, offset=self.offset).to(like.device, like.dtype)
        return self._cache[key]
