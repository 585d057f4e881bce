"""Dropout masks drawn fast on CPU: the same Bernoulli(1 − p) distribution as ``F.dropout``, other random numbers.

PyTorch's CPU ``bernoulli_`` (what ``F.dropout`` and SDPA's dropout draw) runs one Mersenne-Twister draw per
element in a serial loop on CPUs other than Intel's (its MKL path is Intel-only): on this AMD EPYC it was the
largest item of a TP-R-A4 training step (``aten::bernoulli_`` 21.6 % of the self CPU time, 328 ms for one
``(8, 8, 768, 768)`` attention matrix, ``python scripts/profile_step.py transpose-r-a4 --modes train``).
:func:`keep_mask` instead draws 32 random bits per element from NumPy's SFC64 generator (two per 64-bit output;
89 ms for the same matrix, an ad-hoc run) and keeps an element when its bits, read as a signed int32, fall below
``round((1 − p)·2³²) − 2³¹``: the keep probability is ``1 − p`` to within 2⁻³³ (``F.dropout`` compares a float
with ``1 − p``). The SFC64 stream is seeded by one 63-bit draw from torch's default generator, so
``torch.manual_seed`` fixes the masks and a checkpoint's RNG state resumes them (each call consumes one torch
draw). The masks differ from ``F.dropout``'s for the same seed; ``rng="torch"`` (module attribute ``rng`` /
``dropout_rng``) draws ``bernoulli_`` as ``F.dropout`` does, which ``tests/test_train_speed.py`` uses to pin the
rest of the fast training step to the reference losses. On other devices (CUDA's dropout is a fused kernel) and
under tracing (fvcore's FLOP counts, export) the masks always come from ``bernoulli_`` / ``F.dropout``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DropoutRng = Literal["fast", "torch"]


def keep_threshold(p: float) -> int:
    """The int32 threshold below which a uniform 32-bit draw (read signed) is kept with probability ``1 − p``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability {p} is not in [0, 1)")
    return int(round((1.0 - p) * 2**32)) - 2**31


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu",
              rng: DropoutRng = "fast") -> torch.Tensor:
    """A boolean tensor of ``shape``, ``True`` with probability ``1 − p`` independently per element."""
    device = torch.device(device)
    if rng == "torch" or device.type != "cpu" or torch.jit.is_tracing():  # traced graphs keep bernoulli_
        return torch.empty(shape, dtype=torch.bool, device=device).bernoulli_(1.0 - p)
    n = math.prod(int(s) for s in shape)
    seed = int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64).item())
    raw = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw((n + 1) // 2)
    bits = torch.from_numpy(raw.view(np.int32)[:n])
    return (bits < keep_threshold(p)).view(shape)


def dropout(x: torch.Tensor, p: float, training: bool = True, rng: DropoutRng = "fast") -> torch.Tensor:
    """``F.dropout(x, p, training)`` with the mask of :func:`keep_mask` (zero, or ``x / (1 − p)``); ``F.dropout``
    itself for ``rng="torch"``, off the CPU and under tracing (traced graphs keep their ``aten::dropout`` node,
    which fvcore's eval-mode trace counts, :mod:`poserepro.bench.flops`)."""
    if rng == "torch" or x.device.type != "cpu" or torch.jit.is_tracing():
        return F.dropout(x, p, training)
    if not training or p == 0.0:
        return x
    keep = keep_mask(x.shape, p, x.device, rng)
    return torch.where(keep, x, 0.0).mul_(1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU masks come from :func:`keep_mask` (``rng="fast"``; ``"torch"``: ``F.dropout``)."""

    def __init__(self, p: float = 0.5, rng: DropoutRng = "fast") -> None:
        super().__init__(p)
        self.rng: DropoutRng = rng

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.rng)
