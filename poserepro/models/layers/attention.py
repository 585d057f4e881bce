"""Multi-head attention with a packed in-projection (the ``nn.MultiheadAttention`` parameter layout).

The fast path calls :func:`torch.nn.functional.scaled_dot_product_attention` and never materialises the
attention matrix. Attention maps are computed only when ``need_weights=True`` (explaining / dependency areas).
Tensors are batch-first: ``(B, L, d)``.

Training with attention dropout on CPU: SDPA has no fused kernel for dropout there and falls back to its math
path (scale q and k, "safe" softmax with its ``-inf`` checks, ``dropout``, matmul), which is slower than the
official ``nn.MultiheadAttention``. :func:`attention_with_dropout` computes the same thing in fewer passes over
the ``(B, h, L, L)`` matrix: one scale on ``q``, a plain softmax (no fully masked rows here), a boolean keep mask
and its ``1 / (1 - p)`` applied to the ``(B, h, L, d_h)`` output instead of the matrix. The mask comes from
:func:`~poserepro.models.layers.dropout.keep_mask`: on CPU a NumPy SFC64 draw (the same Bernoulli(1 − p), much
faster than ``bernoulli_``'s serial loop), or with ``dropout_rng = "torch"`` exactly the draw ``F.dropout`` makes,
and then the results equal the SDPA math path up to float rounding (``tests/test_train_speed.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import DropoutRng, keep_mask


def attention_with_dropout(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float, mask: torch.Tensor | None = None,
    scale: float | None = None, rng: DropoutRng = "fast",
) -> torch.Tensor:
    """``dropout(softmax(q·kᵀ·scale [masked]), p) · v`` for ``q (…, Lq, d_h)``, ``k, v (…, Lk, d_h)``.

    ``mask`` is boolean, broadcastable to ``(…, Lq, Lk)``, ``True`` where attending is allowed (SDPA's
    convention); every query row must keep at least one key. ``scale`` defaults to ``d_h ** -0.5``. ``rng``:
    how the dropout mask is drawn (:func:`~poserepro.models.layers.dropout.keep_mask`).
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = (q * scale) @ k.transpose(-2, -1)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    attn = logits.softmax(dim=-1)
    keep = keep_mask(attn.shape, p, attn.device, rng)  # rng="torch": F.dropout's own draw, as a bool mask
    return (torch.where(keep, attn, 0.0) @ v) * (1.0 / (1.0 - p))


class MultiheadAttention(nn.Module):
    """Multi-head scaled dot-product attention; parameter names match ``nn.MultiheadAttention``.

    Args:
        d_model: embedding width ``d``.
        num_heads: heads ``h`` (``d`` must be divisible by ``h``).
        dropout: dropout on the attention probabilities (training only).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.dropout = dropout
        #: training with dropout on CPU: :func:`attention_with_dropout` instead of SDPA's math path
        self.fast_dropout = True
        #: how that path draws its masks: "fast" (NumPy SFC64 on CPU) or "torch" (F.dropout's bernoulli_ draw)
        self.dropout_rng: DropoutRng = "fast"
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _project(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor):
        w, b = self.in_proj_weight, self.in_proj_bias
        d = self.d_model
        if query is key and key is value:
            q, k, v = F.linear(query, w, b).chunk(3, dim=-1)
        elif query is key:
            q, k = F.linear(query, w[: 2 * d], b[: 2 * d]).chunk(2, dim=-1)
            v = F.linear(value, w[2 * d :], b[2 * d :])
        else:
            q = F.linear(query, w[:d], b[:d])
            k = F.linear(key, w[d : 2 * d], b[d : 2 * d])
            v = F.linear(value, w[2 * d :], b[2 * d :])
        return q, k, v

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = False,
        average_attn_weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``query (B, Lq, d)`` to ``key (B, Lk, d)`` / ``value (B, Lk, d)``.

        ``key_padding_mask`` is ``(B, Lk)`` with ``True`` at padded keys. Returns ``(out (B, Lq, d), attn)`` where
        ``attn`` is ``None`` unless ``need_weights``: then ``(B, Lq, Lk)`` averaged over heads, or
        ``(B, h, Lq, Lk)`` with ``average_attn_weights=False``.
        """
        bsz, lq, d = query.shape
        lk = key.shape[1]
        h = self.num_heads
        q, k, v = self._project(query, key, value)
        q = q.view(bsz, lq, h, d // h).transpose(1, 2)
        k = k.view(bsz, lk, h, d // h).transpose(1, 2)
        v = v.view(bsz, lk, h, d // h).transpose(1, 2)
        mask = None
        if key_padding_mask is not None:
            mask = (~key_padding_mask)[:, None, None, :]
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            logits = (q * (d // h) ** -0.5) @ k.transpose(-2, -1)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            attn = logits.softmax(dim=-1)
            weights = attn.mean(dim=1) if average_attn_weights else attn
            out = F.dropout(attn, p) @ v
        elif p > 0.0 and q.device.type == "cpu" and self.fast_dropout:
            out = attention_with_dropout(q, k, v, p, mask, rng=self.dropout_rng)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = out.transpose(1, 2).reshape(bsz, lq, d)
        return self.out_proj(out), weights
