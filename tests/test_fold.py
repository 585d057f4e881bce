"""BatchNorm folding at inference (``poserepro.models.fold``): a hand-computed case, every smoke model's outputs
unchanged, the pair counts of the standard backbones, and the eval paths that use it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from poserepro.engine.build import build_model
from poserepro.models.backbones.resnet import FrozenBatchNorm2d, resnet50
from poserepro.models.fold import fold_batchnorm
from poserepro.recipes import load_recipe


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial statistics and affine parameters in every BatchNorm (fresh ones are the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
                c = m.running_mean.numel()
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)


def _norms(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)) for m in model.modules())


def test_hand_computed_conv_bn() -> None:
    """1×1 conv w = 2, b = 1 then BN(mean 3, var 4 - eps, γ 5, β 6): y = (2x + 1 - 3) · 5 / 2 + 6 = 5x + 1."""
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
    with torch.no_grad():
        net[0].weight.fill_(2.0)
        net[0].bias.fill_(1.0)
        bn = net[1]
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0 - bn.eps)
        bn.weight.fill_(5.0)
        bn.bias.fill_(6.0)
    folded, n = fold_batchnorm(net)
    assert n == 1
    assert isinstance(folded[1], nn.Identity)
    assert folded[0].weight.item() == pytest.approx(5.0)
    assert folded[0].bias.item() == pytest.approx(1.0)
    x = torch.tensor([[[[0.0, 1.0], [-2.0, 0.5]]]])
    torch.testing.assert_close(folded(x), 5 * x + 1)
    assert isinstance(net[1], nn.BatchNorm2d) and net.training  # the original is untouched


def _fold_all(net: nn.Module, count: int) -> nn.Module:
    """``net`` (statistics randomised, eval mode) folded: exactly ``count`` pairs, no BatchNorm left."""
    _randomise_bn(net)
    net.eval()
    folded, n = fold_batchnorm(net)
    assert n == count and _norms(folded) == 0
    return folded


def test_transposed_conv_and_bias_free_conv() -> None:
    net = nn.Sequential(nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5))
    folded = _fold_all(net, 2)
    x = torch.randn(2, 3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)


def test_resnet50_every_batchnorm_folded() -> None:
    """torchvision ResNet-50: 53 BatchNorms (stem 1, 16 bottlenecks × 3, 4 projection shortcuts), all after a conv."""
    for norm in (None, FrozenBatchNorm2d):
        net = resnet50(norm=norm) if norm else resnet50()
        assert _norms(net) == 53
        folded = _fold_all(net, 53)
        x = torch.randn(1, 3, 64, 48)
        with torch.no_grad():
            for a, b in zip(net(x), folded(x)):
                torch.testing.assert_close(b, a, atol=1e-4 * a.abs().max().item(), rtol=1e-4)


def test_unfoldable_left_alone() -> None:
    """A BatchNorm without running statistics, or after something that is not a convolution, stays."""
    net = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2, track_running_stats=False), nn.ReLU(), nn.BatchNorm2d(2))
    folded, n = fold_batchnorm(net)
    assert n == 0 and _norms(folded) == 2


@pytest.mark.parametrize("recipe_name", ["smoke", "transpose-h-smoke", "btranspose-smoke", "tfpose-smoke",
                                         "prtr-smoke", "simplebaseline-smoke", "prtr-e2e-smoke"])
def test_every_smoke_model_same_outputs(recipe_name: str) -> None:
    rec = load_recipe(recipe_name)
    torch.manual_seed(0)
    model = build_model(rec)
    before = _norms(model)
    _randomise_bn(model)
    model.eval()
    folded, n = fold_batchnorm(model)
    assert n > 0 and n == before - _norms(folded)
    left = [k for k, m in folded.named_modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    # BTranspose: the BatchNorm after each MHSA (attention, not a convolution, precedes it) stays
    assert left == (["backbone.layer4.0.bn2"] if recipe_name == "btranspose-smoke" else [])
    w, h = rec.data.input_size
    x = torch.randn(2, 3, int(h), int(w))
    with torch.no_grad():
        a, b = model(x), folded(x)
    if isinstance(a, dict):
        for key in a:
            if isinstance(a[key], torch.Tensor) and a[key].is_floating_point():
                scale = max(1e-3, a[key].abs().max().item())
                torch.testing.assert_close(b[key], a[key], atol=2e-5 * scale, rtol=1e-4, msg=key)
    else:
        scale = max(1e-3, a.abs().max().item())
        torch.testing.assert_close(b, a, atol=2e-5 * scale, rtol=1e-4)


def test_evaluation_runs_a_folded_copy() -> None:
    """``engine.evaluate.inference_copy`` (eval, validation, and the speed script's forward) folds a copy and
    makes it channels-last; the trained model keeps its layout; both switches off give back the model itself."""
    from poserepro.engine.evaluate import inference_copy

    rec = load_recipe("smoke")
    model = build_model(rec)
    n = _norms(model)
    copy_ = inference_copy(model, rec, torch.device("cpu"))
    assert copy_ is not model and _norms(copy_) == 0 and _norms(model) == n and model.training
    conv = next(m for m in copy_.modules() if isinstance(m, nn.Conv2d)).weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and conv.shape[2] > 1
    nchw = load_recipe("smoke", ["train.channels_last=false", "eval.fold_batchnorm=false"])
    model = build_model(nchw)
    other = inference_copy(model, nchw, torch.device("cpu"))
    assert other is not model and _norms(other) == n and next(model.parameters()).is_contiguous()
    off = load_recipe("smoke", ["eval.fold_batchnorm=false", "eval.channels_last=false"])
    assert inference_copy(model, off, torch.device("cpu")) is model
