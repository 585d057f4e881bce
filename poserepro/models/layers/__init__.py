"""Shared building blocks written once: attention, Transformer layers, position embeddings, MLP."""

from .attention import MultiheadAttention
from .mlp import MLP
from .position import PositionEmbedding2D, sine_embedding
from .transformer import (
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [
    "MLP",
    "MultiheadAttention",
    "PositionEmbedding2D",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "sine_embedding",
]
