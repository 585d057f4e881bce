"""HRNet (Sun et al., CVPR 2019): parallel multi-resolution branches with repeated cross-branch fusion.

One generic class covers both TransPose's HRNet-S (stem, layer1, stage2, stage3; only the 1/4 output kept) and the
full four-stage HRNet-W32/W48. Module names follow the HRNet code base (``conv1``, ``bn1``, ``conv2``, ``bn2``,
``layer1``, ``transition1``, ``stage2``, ``transition2``, ``stage3`` [, ``transition3``, ``stage4``]; inside a stage
``stage2.0.branches.b.k.*`` and ``stage2.0.fuse_layers.i.j.*``) so that ImageNet HRNet weights and the official
TransPose-H checkpoints load by name. Where the original stores ``None`` (no transition for an unchanged branch,
the diagonal of the fuse matrix) we store a parameter-free :class:`torch.nn.Identity`: the state-dict keys are the
same.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import Bottleneck, NormFactory, batch_norm


class BasicBlock(nn.Module):
    """Two 3×3 convs with BN (ResNet basic block), identity shortcut; ``(B, C, h, w) → (B, C, h, w)``."""

    expansion = 1

    def __init__(self, channels: int, norm: NormFactory | None = None) -> None:
        super().__init__()
        norm = norm or batch_norm()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + x)


def _conv_bn(cin: int, cout: int, k: int, stride: int, norm: NormFactory, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), norm(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """One HRNet exchange unit: ``num_blocks`` basic blocks per branch, then every output fuses all branches.

    Fusion into branch ``i`` from branch ``j``: ``j > i`` → 1×1 conv + BN then nearest upsampling to branch ``i``'s
    size; ``j < i`` → ``i - j`` strided 3×3 convs (BN, ReLU between them). The sum is passed through ReLU.
    With ``multi_scale_output=False`` only the highest-resolution output is produced.

    ``forward([x_b (B, C_b, h/2^b, w/2^b)]) -> [y_i]`` (all branches, or only ``y_0``).
    """

    def __init__(
        self, channels: Sequence[int], num_blocks: int, multi_scale_output: bool = True,
        norm: NormFactory | None = None,
    ) -> None:
        super().__init__()
        norm = norm or batch_norm()
        self.channels = tuple(channels)
        n = len(self.channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, norm) for _ in range(num_blocks)]) for c in self.channels
        )
        self.fuse_layers = nn.ModuleList()
        if n > 1:
            for i in range(n if multi_scale_output else 1):
                row = nn.ModuleList()
                for j in range(n):
                    if j > i:
                        row.append(_conv_bn(self.channels[j], self.channels[i], 1, 1, norm, relu=False))
                    elif j == i:
                        row.append(nn.Identity())
                    else:
                        steps = [
                            _conv_bn(self.channels[j], self.channels[i] if k == i - j - 1 else self.channels[j],
                                     3, 2, norm, relu=k < i - j - 1)
                            for k in range(i - j)
                        ]
                        row.append(nn.Sequential(*steps))
                self.fuse_layers.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if len(xs) == 1:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                z = layer(xs[j])
                if j > i:
                    z = F.interpolate(z, size=xs[i].shape[-2:], mode="nearest")
                y = y + z
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """HRNet with ``num_stages`` stages (3 = TransPose's HRNet-S, 4 = the full HRNet).

    Stem: two 3×3/2 convs (64 ch) → ``layer1``: 4 Bottlenecks (256 ch) at 1/4. Stage ``s`` (2..num_stages) has
    ``s`` branches with widths ``width·2^b`` and ``stage_modules[s-2]`` exchange units of ``num_blocks`` basic
    blocks; ``transition{s-1}`` creates the new lowest-resolution branch by a strided 3×3 conv.

    Args:
        width: channels of the highest-resolution branch (32 → W32, 48 → W48).
        num_stages: 3 or 4.
        stage_modules: exchange units in stage 2, 3 (, 4); HRNet uses (1, 4, 3).
        num_blocks: basic blocks per branch in every unit (4).
        multi_scale_output: whether the last unit returns every branch (``True``) or only the 1/4 one.
        norm: normalisation factory.
        stem_width: channels of the stem convs and bottleneck width of ``layer1`` (64; output ``4·stem_width``).
        layer1_blocks: Bottlenecks in ``layer1`` (4). ``stem_width`` / ``layer1_blocks`` only shrink smoke models.

    ``forward(x (B, 3, H, W)) -> [y_b (B, width·2^b, H/4/2^b, W/4/2^b)]`` (a single element when
    ``multi_scale_output=False``). ``channels`` lists the returned widths; ``strides`` their strides.
    """

    def __init__(
        self, width: int, num_stages: int = 3, stage_modules: Sequence[int] = (1, 4, 3), num_blocks: int = 4,
        multi_scale_output: bool = False, norm: NormFactory | None = None, stem_width: int = 64,
        layer1_blocks: int = 4,
    ) -> None:
        super().__init__()
        if num_stages not in (2, 3, 4):
            raise ValueError(f"num_stages must be 2, 3 or 4, got {num_stages}")
        norm = norm or batch_norm()
        self.width = width
        self.num_stages = num_stages
        sw = stem_width
        self.conv1 = nn.Conv2d(3, sw, 3, stride=2, padding=1, bias=False)
        self.bn1 = norm(sw)
        self.conv2 = nn.Conv2d(sw, sw, 3, stride=2, padding=1, bias=False)
        self.bn2 = norm(sw)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(
            Bottleneck(sw, sw, 1, norm), *[Bottleneck(4 * sw, sw, 1, norm) for _ in range(layer1_blocks - 1)]
        )
        pre = [4 * sw]
        for s in range(2, num_stages + 1):
            cur = [width * 2**b for b in range(s)]
            self.add_module(f"transition{s - 1}", self._transition(pre, cur, norm))
            last = s == num_stages
            units = []
            for m in range(stage_modules[s - 2]):
                final = last and m == stage_modules[s - 2] - 1
                units.append(HighResolutionModule(cur, num_blocks, multi_scale_output or not final, norm))
            self.add_module(f"stage{s}", nn.Sequential(*units))
            pre = cur
        n_out = num_stages if multi_scale_output else 1
        self.channels = [width * 2**b for b in range(n_out)]
        self.strides = [4 * 2**b for b in range(n_out)]

    @staticmethod
    def _transition(pre: list[int], cur: list[int], norm: NormFactory) -> nn.ModuleList:
        layers = nn.ModuleList()
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(_conv_bn(pre[i], c, 3, 1, norm, relu=True) if pre[i] != c else nn.Identity())
            else:
                steps = [
                    _conv_bn(pre[-1], c if k == i - len(pre) else pre[-1], 3, 2, norm, relu=True)
                    for k in range(i + 1 - len(pre))
                ]
                layers.append(nn.Sequential(*steps))
        return layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(2, self.num_stages + 1):
            transition = getattr(self, f"transition{s - 1}")
            xs = [t(xs[i]) if i < len(xs) else t(xs[-1]) for i, t in enumerate(transition)]
            for unit in getattr(self, f"stage{s}"):
                xs = unit(xs)
        return xs


def hrnet_s(
    width: int, norm: NormFactory | None = None, stage3_modules: int = 4, num_blocks: int = 4, stem_width: int = 64,
    layer1_blocks: int = 4,
) -> HRNet:
    """TransPose's HRNet-S-W{width}: stem, layer1, stage2 (1 unit), stage3 (4 units); returns ``[1/4 map]``.

    The defaults are the paper's; smaller ``stage3_modules`` / ``num_blocks`` / ``stem_width`` / ``layer1_blocks``
    give CPU-sized smoke backbones.
    """
    return HRNet(width, num_stages=3, stage_modules=(1, stage3_modules), num_blocks=num_blocks,
                 multi_scale_output=False, norm=norm, stem_width=stem_width, layer1_blocks=layer1_blocks)


def hrnet(width: int, multi_scale_output: bool = True, norm: NormFactory | None = None) -> HRNet:
    """The full four-stage HRNet-W{width} (stage modules 1/4/3); all four branches by default."""
    return HRNet(width, num_stages=4, stage_modules=(1, 4, 3), multi_scale_output=multi_scale_output, norm=norm)
