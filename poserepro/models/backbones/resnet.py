"""ResNet backbones: Bottleneck blocks, ResNet-S (TransPose), ResNet-50/101 returning C2–C5.

Module names follow torchvision (``conv1``, ``bn1``, ``layer1`` … ``layer4``, ``downsample.0/1``) so that
ImageNet and official pose checkpoints load by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

NormFactory = Callable[[int], nn.Module]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters, all stored as buffers (DETR / PRTR)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s, t)`` with ``forward(x) = x·s + t`` per channel."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, bias = self.scale_shift()
        return torch.addcmul(bias[None, :, None, None], x, scale[None, :, None, None])  # one pass over x


def conv_norm(conv: nn.Module, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(conv(x))``; a :class:`FrozenBatchNorm2d` after a ``Conv2d`` runs inside the convolution (weights
    ``W·s``, bias ``b·s + t``), in training as well: the same function and gradients (to the conv weights through
    ``W·s``) up to float rounding, without the pass over the feature map and its backward. Traced graphs (fvcore
    FLOP counts, export) keep the two modules."""
    if isinstance(norm, FrozenBatchNorm2d) and type(conv) is nn.Conv2d and not torch.jit.is_tracing():
        scale, shift = norm.scale_shift()
        weight = conv.weight * scale.to(conv.weight.dtype)[:, None, None, None]
        bias = shift if conv.bias is None else conv.bias * scale + shift
        return F.conv2d(x, weight, bias.to(weight.dtype), conv.stride, conv.padding, conv.dilation, conv.groups)
    return norm(conv(x))


def _shortcut(downsample: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(downsample, nn.Sequential) and len(downsample) == 2:
        return conv_norm(downsample[0], downsample[1], x)
    return downsample(x)


def batch_norm(momentum: float = 0.1) -> NormFactory:
    """A factory of ``nn.BatchNorm2d(c, momentum=momentum)``."""
    return lambda c: nn.BatchNorm2d(c, momentum=momentum)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1×1 → 3×3 (stride here) → 1×1 (×4), projection shortcut when shapes change."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, norm: NormFactory | None = None) -> None:
        super().__init__()
        norm = norm or batch_norm()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = norm(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), norm(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else _shortcut(self.downsample, x)
        y = self.relu(conv_norm(self.conv1, self.bn1, x))
        y = self.relu(conv_norm(self.conv2, self.bn2, y))
        y = conv_norm(self.conv3, self.bn3, y)
        return self.relu(y + identity)


def make_layer(inplanes: int, planes: int, blocks: int, stride: int, norm: NormFactory | None = None) -> nn.Sequential:
    """``blocks`` bottlenecks, the first with ``stride``; input ``inplanes`` → output ``4·planes`` channels."""
    layers = [Bottleneck(inplanes, planes, stride, norm)]
    layers += [Bottleneck(planes * 4, planes, 1, norm) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """ResNet stem + ``len(blocks)`` bottleneck stages (widths 64, 128, 256, 512; stride 2 from stage 2 on).

    ``forward(x (B,3,H,W))`` returns a list of the feature maps of ``out_levels`` (stage indices 1..4 = C2..C5,
    strides 4, 8, 16, 32; channels 256, 512, 1024, 2048).

    Args:
        blocks: blocks per stage, e.g. ``(3, 4)`` for TransPose's ResNet-S, ``(3, 4, 6, 3)`` for ResNet-50,
            ``(3, 4, 23, 3)`` for ResNet-101.
        out_levels: which stages to return (1-based).
        norm: normalisation factory (``FrozenBatchNorm2d`` for DETR-style frozen backbones).
        frozen_stages: stages whose parameters get ``requires_grad=False`` (0 = stem only; -1 = none).
        widths: bottleneck widths of the stages (outputs are 4× these); the stem has ``widths[0]`` channels.
            Narrower widths make CPU-sized smoke models.
    """
    expansion = Bottleneck.expansion

    @staticmethod
    def _make_stage(inplanes: int, planes: int, blocks: int, stride: int, norm: NormFactory) -> nn.Sequential:
        return make_layer(inplanes, planes, blocks, stride, norm)

    def __init__(
        self,
        blocks: Sequence[int],
        out_levels: Sequence[int] | None = None,
        norm: NormFactory | None = None,
        frozen_stages: int = -1,
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        norm = norm or batch_norm()
        self.widths = tuple(widths)
        self.blocks = tuple(blocks)
        self.out_levels = tuple(out_levels or (len(blocks),))
        self.conv1 = nn.Conv2d(3, self.widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(self.widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = self.widths[0]
        for i, n in enumerate(self.blocks):
            stride = 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", self._make_stage(inplanes, self.widths[i], n, stride, norm))
            inplanes = self.widths[i] * self.expansion
        self.channels = [self.widths[i - 1] * self.expansion for i in self.out_levels]
        self.strides = [2 ** (i + 1) for i in self.out_levels]
        self.freeze(frozen_stages)

    def freeze(self, frozen_stages: int) -> None:
        """Stop gradients to the stem (``frozen_stages >= 0``) and stages ``1..frozen_stages``."""
        if frozen_stages < 0:
            return
        mods: list[nn.Module] = [self.conv1, self.bn1]
        mods += [getattr(self, f"layer{i}") for i in range(1, frozen_stages + 1)]
        for m in mods:
            for p in m.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(conv_norm(self.conv1, self.bn1, x)))
        outs = []
        for i in range(1, len(self.blocks) + 1):
            x = getattr(self, f"layer{i}")(x)
            if i in self.out_levels:
                outs.append(x)
        return outs


def resnet_s(norm: NormFactory | None = None, width: int = 64, blocks: Sequence[int] = (3, 4)) -> ResNet:
    """TransPose's ResNet-S: ResNet-50 stem + layer1 (3 blocks) + layer2 (4 blocks) → 512 ch at stride 8.

    ``width`` < 64 gives a proportionally narrower stem for CPU smoke models (output ``8·width`` channels).
    """
    return ResNet(blocks, out_levels=(2,), norm=norm, widths=(width, 2 * width, 4 * width, 8 * width))


def resnet50(out_levels: Sequence[int] = (4,), norm: NormFactory | None = None, frozen_stages: int = -1) -> ResNet:
    """ResNet-50 returning the requested stages (1..4 = C2..C5)."""
    return ResNet((3, 4, 6, 3), out_levels, norm, frozen_stages)


def resnet101(out_levels: Sequence[int] = (4,), norm: NormFactory | None = None, frozen_stages: int = -1) -> ResNet:
    """ResNet-101 returning the requested stages (1..4 = C2..C5)."""
    return ResNet((3, 4, 23, 3), out_levels, norm, frozen_stages)


def resnet152(out_levels: Sequence[int] = (4,), norm: NormFactory | None = None, frozen_stages: int = -1) -> ResNet:
    """ResNet-152 returning the requested stages (1..4 = C2..C5); torchvision's ``resnet152`` layout."""
    return ResNet((3, 8, 36, 3), out_levels, norm, frozen_stages)


class BasicBlock(nn.Module):
    """ResNet basic block (ResNet-18/34): 3×3 (stride here) → 3×3, projection shortcut when shapes change."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, norm: NormFactory | None = None) -> None:
        super().__init__()
        norm = norm or batch_norm()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), norm(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class BasicResNet(ResNet):
    """ResNet-18/34 (basic blocks; stage channels 64, 128, 256, 512 = C2..C5); same interface as :class:`ResNet`."""

    expansion = BasicBlock.expansion

    @staticmethod
    def _make_stage(inplanes: int, planes: int, blocks: int, stride: int, norm: NormFactory) -> nn.Sequential:
        layers = [BasicBlock(inplanes, planes, stride, norm)]
        layers += [BasicBlock(planes, planes, 1, norm) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)


def resnet18(out_levels: Sequence[int] = (4,), norm: NormFactory | None = None, frozen_stages: int = -1) -> ResNet:
    """ResNet-18 returning the requested stages (1..4 = C2..C5; channels 64, 128, 256, 512)."""
    return BasicResNet((2, 2, 2, 2), out_levels, norm, frozen_stages)
