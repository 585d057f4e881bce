"""The training-step fast paths keep the numerics (fused optimiser step, attention dropout without SDPA's CPU
math path, one-pass FrozenBatchNorm), and ``bench --train`` times the engine's own step."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from poserepro.bench.runner import COLUMNS, bench_one
from poserepro.bench.train_speed import measure_train_speed, synthetic_batch, train_recipe
from poserepro.engine.build import build_model
from poserepro.engine.loop import train_step
from poserepro.engine.schedules import build_optimizer
from poserepro.families import family_of
from poserepro.models.backbones.resnet import FrozenBatchNorm2d
from poserepro.models.layers.attention import MultiheadAttention, attention_with_dropout
from poserepro.models.layers.dropout import Dropout
from poserepro.recipes import load_recipe


@pytest.mark.parametrize("masked", [False, True])
def test_attention_with_dropout_is_sdpa_with_the_same_mask(masked: bool) -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 40, 8, generator=g, requires_grad=True) for _ in range(3))
    mask = (torch.rand(2, 1, 1, 40, generator=g) > 0.3) if masked else None
    mask = None if mask is None else mask | (torch.arange(40) == 0)  # every row keeps a key
    torch.manual_seed(5)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.2)
    torch.manual_seed(5)
    fast = attention_with_dropout(q, k, v, 0.2, mask, rng="torch")
    assert torch.allclose(fast, ref, atol=1e-6, rtol=1e-5)
    g_ref = torch.autograd.grad(ref.square().sum(), (q, k, v))
    g_fast = torch.autograd.grad(fast.square().sum(), (q, k, v))
    for a, b in zip(g_fast, g_ref):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    torch.manual_seed(5)
    other = attention_with_dropout(q, k, v, 0.2, mask, rng="torch")
    torch.manual_seed(6)
    assert torch.equal(other, fast) and not torch.allclose(attention_with_dropout(q, k, v, 0.2, mask, rng="torch"),
                                                           fast)


def test_frozen_batch_norm_one_pass_equals_the_two_pass_formula() -> None:
    bn = FrozenBatchNorm2d(5)
    g = torch.Generator().manual_seed(1)
    for name in ("weight", "bias", "running_mean"):
        getattr(bn, name).copy_(torch.randn(5, generator=g))
    bn.running_var.copy_(torch.rand(5, generator=g) + 0.1)
    x = torch.randn(2, 5, 7, 6, generator=g)
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    ref = x * scale[None, :, None, None] + (bn.bias - bn.running_mean * scale)[None, :, None, None]
    assert torch.allclose(bn(x), ref, atol=1e-6, rtol=1e-6)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert bn(cl).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels_last", [False, True])
def test_frozen_batch_norm_inside_the_convolution(channels_last: bool) -> None:
    """``conv_norm``: FrozenBatchNorm folded into the convolution in training gives the two modules' output and
    gradients (input, conv weight, conv bias) to float rounding; any other norm runs as ``norm(conv(x))``."""
    from poserepro.models.backbones.resnet import conv_norm

    g = torch.Generator().manual_seed(2)
    bn = FrozenBatchNorm2d(6)
    for name in ("weight", "bias", "running_mean"):
        getattr(bn, name).copy_(torch.randn(6, generator=g))
    bn.running_var.copy_(torch.rand(6, generator=g) + 0.1)
    for bias in (False, True):
        conv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=bias)
        x = torch.randn(2, 4, 9, 8, generator=g, requires_grad=True)
        if channels_last:
            conv.to(memory_format=torch.channels_last)
            x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        ref = bn(conv(x))
        out = conv_norm(conv, bn, x)
        assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
        params = [x, conv.weight] + ([conv.bias] if bias else [])
        grads = torch.autograd.grad(out.square().sum(), params), torch.autograd.grad(ref.square().sum(), params)
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    plain = torch.nn.BatchNorm2d(6).eval()
    assert torch.equal(conv_norm(conv, plain, x), plain(conv(x)))


def _losses(recipe_name: str, fast: bool, steps: int = 3, rng: str = "torch") -> list[float]:
    """Losses of ``steps`` training steps on one fixed batch from fixed weights and RNG, reference or fast path
    (``rng="torch"``: every dropout mask is ``F.dropout``'s own draw, as on the reference path)."""
    rec = load_recipe(recipe_name, ["data.input_size=[64,96]", "train.channels_last=false"])
    torch.manual_seed(0)
    model = build_model(rec)
    family = family_of(model)
    for m in model.modules():
        if isinstance(m, MultiheadAttention):
            m.fast_dropout = fast
            m.dropout_rng = rng if fast else "torch"
        if isinstance(m, Dropout):
            m.rng = rng if fast else "torch"
    data = synthetic_batch(model, 2, (96, 64), torch.device("cpu"), family.heatmap_output, seed=3)
    opt = build_optimizer(model, rec.optim, 2, fused=None if fast else False)
    assert bool(opt.defaults.get("fused")) is fast
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    crit = family.criterion(rec, model, torch.device("cpu"))
    params = list(model.parameters())
    model.train()
    torch.manual_seed(11)  # dropout draws
    return [train_step(model, family, crit, dict(data), opt, scaler, rec, torch.device("cpu"), params)[0]
            for _ in range(steps)]


@pytest.mark.parametrize("recipe_name", ["smoke", "btranspose-smoke", "tfpose-smoke", "prtr-smoke"])
def test_fast_training_step_keeps_the_losses(recipe_name: str) -> None:
    """Reference path (PyTorch's per-parameter optimiser loop, SDPA's dropout path) and fast path agree to 1e-6
    over three steps on a fixed batch (dropout on: the same masks are drawn, ``F.dropout``'s); with the fast masks
    the losses move by the dropout noise only and the masks follow ``torch.manual_seed``."""
    torch.set_num_threads(1)
    ref = _losses(recipe_name, fast=False)
    fast = _losses(recipe_name, fast=True)
    assert len(set(ref)) == len(ref)  # the steps changed the weights
    for a, b in zip(fast, ref):
        assert abs(a - b) <= 1e-6 * max(1.0, abs(b)), (recipe_name, fast, ref)
    drawn = _losses(recipe_name, fast=True, rng="fast")
    assert drawn == _losses(recipe_name, fast=True, rng="fast")  # the torch seed fixes the fast masks
    assert all(abs(a - b) <= 0.05 * max(1.0, abs(b)) for a, b in zip(drawn, ref)), (drawn, ref)


def test_bench_train_row_and_recipe_settings() -> None:
    torch.set_num_threads(1)
    rows = bench_one("transpose_r_smoke", (64, 48), (2,), repeats=1, warmup=0, skip_flops=True, train=True,
                     train_repeats=1, train_warmup=1)
    (row,) = rows
    assert set(row) <= set(COLUMNS)
    assert row["train_images_per_s"] > 0 and row["train_step_ms_median"] > 0
    assert row["train_settings"] == "adam fused, amp off, contiguous, eager"
    assert row["python"] and row["numpy"] and row["load_avg_1m"] is not None
    rec = train_recipe("transpose_r_smoke", "smoke", (64, 48), channels_last=True)
    assert rec.data.input_size == (48, 64) and rec.train.channels_last and rec.train.threads is None
    res = measure_train_speed(rec, batch=2, warmup=0, repeats=1, fused=False)
    assert res.settings == "adam, amp off, channels_last, eager" and res.images_per_s > 0


def test_compile_switch_is_a_recipe_key_off_by_default() -> None:
    assert load_recipe("smoke").train.compile is False
    assert load_recipe("smoke", ["train.compile=true"]).train.compile is True
    rec = load_recipe("smoke")
    assert dataclasses.replace(rec.train, compile=True).compile
    # the loop compiles only the training forward; copying a recipe keeps the switch
    assert copy.deepcopy(load_recipe("smoke", ["train.compile=true"])).train.compile
