"""HRNet-W32 with the classification-style fusion head that PRTR uses (HRNetV2 ImageNet head).

The four-stage HRNet body (all branches kept) comes from :mod:`poserepro.models.backbones.hrnet`. On top of it:

* ``incre_modules[b]``: one Bottleneck per branch, widths ``(32, 64, 128, 256) → (128, 256, 512, 1024)``;
* ``downsamp_modules[b]``: 3×3 stride-2 conv (with bias) + BN + ReLU from branch ``b`` width to branch ``b+1``;
  the head runs ``y = incre[0](x0); y = incre[b+1](x_{b+1}) + downsamp[b](y)``, ending at stride 32;
* ``final_layer``: 1×1 conv (with bias) 1024 → 2048 + BN + ReLU.

The result is a 2048-channel map at stride 32, a drop-in replacement for ResNet's C5 (PRTR ``NUM_LAYERS: hrnet``).
Module names follow the official code so that ``backbone.0.body.*`` keys of PRTR checkpoints map by name.
"""

from __future__ import annotations

import torch
from torch import nn

from .hrnet import HRNet
from .resnet import Bottleneck, NormFactory, batch_norm

HEAD_CHANNELS = (32, 64, 128, 256)


class HRNetCls(HRNet):
    """HRNet (4 stages, every branch out) + classification fusion head; ``(B, 3, H, W) → [(B, 2048, H/32, W/32)]``.

    Args:
        width: width of the highest-resolution branch (32 for W32).
        out_channels: channels of the final 1×1 conv (2048).
        norm: normalisation factory (PRTR trains HRNet with ordinary BatchNorm, momentum 0.1).
    """

    def __init__(self, width: int = 32, out_channels: int = 2048, norm: NormFactory | None = None) -> None:
        norm = norm or batch_norm()
        super().__init__(width, num_stages=4, stage_modules=(1, 4, 3), num_blocks=4, multi_scale_output=True,
                         norm=norm)
        branch = [width * 2**b for b in range(4)]
        head = [c * Bottleneck.expansion for c in HEAD_CHANNELS]
        self.incre_modules = nn.ModuleList(
            nn.Sequential(Bottleneck(c, hc, 1, norm)) for c, hc in zip(branch, HEAD_CHANNELS)
        )
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(nn.Conv2d(head[b], head[b + 1], 3, stride=2, padding=1), norm(head[b + 1]),
                          nn.ReLU(inplace=True))
            for b in range(3)
        )
        self.final_layer = nn.Sequential(nn.Conv2d(head[3], out_channels, 1), norm(out_channels),
                                         nn.ReLU(inplace=True))
        self.channels = [out_channels]
        self.strides = [32]
        self.init_weights()

    def init_weights(self) -> None:
        """The official random init: Kaiming-normal (fan-out, ReLU) convs, BN γ=1 β=0, conv biases
        PyTorch-default."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        xs = super().forward(x)
        y = self.incre_modules[0](xs[0])
        for b, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[b + 1](xs[b + 1]) + down(y)
        return [self.final_layer(y)]


def hrnet_w32_cls(norm: NormFactory | None = None) -> HRNetCls:
    """HRNet-W32 + classification head → 2048 ch at stride 32 (PRTR's ``hrnet`` backbone)."""
    return HRNetCls(32, 2048, norm)
