"""The DINO projection head (facebookresearch/dino ``DINOHead``, FACTS §2).

``in_dim → hidden → … → bottleneck`` MLP (``nlayers`` Linear layers, GELU between them, BatchNorm optional),
L2-normalised bottleneck, then a weight-normalised ``bottleneck → out_dim`` Linear without bias whose norm
``weight_g`` starts at 1 and is frozen when ``norm_last_layer`` (the reference default).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class WeightNormLinear(nn.Module):
    """``y = x Wᵀ`` with ``W = g · v / ‖v‖`` row by row (``weight_g (out, 1)``, ``weight_v (out, in)``): the
    reparametrisation of ``torch.nn.utils.weight_norm`` with its parameter names, written out."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight_v = nn.Parameter(torch.empty(out_dim, in_dim))
        self.weight_g = nn.Parameter(torch.ones(out_dim, 1))

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class DINOHead(nn.Module):
    """``forward(x (N, in_dim)) -> logits (N, out_dim)``.

    Args:
        in_dim: feature size of the backbone (pooled channels).
        out_dim: prototypes K (reference 65536; BTranspose's fork 32768).
        hidden_dim, bottleneck_dim, nlayers: the MLP (reference 2048, 256, 3; BTranspose's fork 1024, 256, 2).
        use_bn: BatchNorm1d after each hidden Linear (reference default off).
        norm_last_layer: freeze ``last_layer.weight_g`` at 1 (reference default True).
    """

    def __init__(self, in_dim: int, out_dim: int = 65536, use_bn: bool = False, norm_last_layer: bool = True,
                 nlayers: int = 3, hidden_dim: int = 2048, bottleneck_dim: int = 256) -> None:
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
            for _ in range(nlayers - 2):
                layers += [nn.BatchNorm1d(hidden_dim)] if use_bn else []
                layers += [nn.GELU(), nn.Linear(hidden_dim, hidden_dim)]
            layers += [nn.BatchNorm1d(hidden_dim)] if use_bn else []
            layers += [nn.GELU(), nn.Linear(hidden_dim, bottleneck_dim)]
            self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, out_dim)
        nn.init.kaiming_uniform_(self.last_layer.weight_v, a=math.sqrt(5))  # nn.Linear's default, as there
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)
