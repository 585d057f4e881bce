"""The fast CPU dropout masks (``poserepro.models.layers.dropout``): the threshold by hand, the Bernoulli(1 − p)
statistics, seeding from torch's generator, and the module's agreement with ``nn.Dropout`` in everything but the
random numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from poserepro.models.layers.dropout import Dropout, dropout, keep_mask, keep_threshold


def test_threshold_by_hand() -> None:
    """Keep iff a uniform int32 is below T: P = (T + 2³¹) / 2³²."""
    assert keep_threshold(0.5) == 0                      # the non-negative half is dropped
    assert keep_threshold(0.0) == 2**31                  # every int32 is below 2³¹
    assert keep_threshold(0.75) == -(2**30)              # a quarter kept: [-2³¹, -2³⁰)
    assert keep_threshold(0.1) == round(0.9 * 2**32) - 2**31 == 1717986918
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            keep_threshold(bad)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_bernoulli_statistics(p: float) -> None:
    torch.manual_seed(0)
    n = 1 << 20
    m = keep_mask((4, n // 4), p).flatten().double()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(m.mean().item() - (1 - p)) < 5 * sigma
    for part in m.view(8, -1):  # no drift along the tensor (the two int32 halves of every 64-bit output)
        assert abs(part.mean().item() - (1 - p)) < 5 * sigma * math.sqrt(8)
    for half in (m[0::2], m[1::2]):
        assert abs(half.mean().item() - (1 - p)) < 5 * sigma * math.sqrt(2)
    c = m - m.mean()
    for lag in (1, 2, 768):  # neighbours independent (lag 1 pairs the halves of one 64-bit draw)
        r = (c[:-lag] * c[lag:]).mean() / c.var()
        assert abs(r.item()) < 5 / math.sqrt(n)


def test_seeded_by_torch() -> None:
    torch.manual_seed(3)
    a, b = keep_mask((64, 65), 0.2), keep_mask((64, 65), 0.2)
    torch.manual_seed(3)
    assert torch.equal(keep_mask((64, 65), 0.2), a)      # torch.manual_seed fixes the masks
    assert not torch.equal(a, b)                          # successive calls differ
    state = torch.get_rng_state()
    c = keep_mask((7,), 0.3)
    torch.set_rng_state(state)                            # a checkpoint's RNG state resumes them
    assert torch.equal(keep_mask((7,), 0.3), c)
    assert keep_mask((3, 5), 0.3).shape == (3, 5) and keep_mask((3, 5), 0.3).dtype == torch.bool


def test_torch_rng_is_f_dropout() -> None:
    x = torch.randn(50, 40)
    torch.manual_seed(1)
    ref = nn.functional.dropout(x, 0.3)
    torch.manual_seed(1)
    assert torch.allclose(dropout(x, 0.3, rng="torch"), ref)


def test_module_like_nn_dropout() -> None:
    x = torch.randn(200, 300, requires_grad=True)
    d = Dropout(0.25)
    assert isinstance(d, nn.Dropout) and d.state_dict() == {}
    y = d(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)  # the kept ones scaled by 1 / (1 - p)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, kept.float() / 0.75)   # gradient through the same mask
    d.eval()
    assert d(x) is x
    assert Dropout(0.0)(x) is x
