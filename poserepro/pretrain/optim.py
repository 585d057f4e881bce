"""DINO's optimisation pieces (facebookresearch/dino ``utils.py`` / ``main_dino.py`` behaviour, FACTS §2).

* :func:`cosine_schedule`: one value per iteration: linear warm-up from ``start_warmup_value`` to ``base`` over
  ``warmup_epochs`` (both ends included), then a half cosine from ``base`` to ``final``. Used for the lr
  (``lr·batch/256`` → ``min_lr``), the weight decay (0.04 → 0.4, no warm-up) and the teacher momentum
  (0.996 → 1).
* :func:`param_groups`: weight decay only on tensors that are not biases and not 1-D (group 0 gets the decay
  schedule, group 1 stays at 0).
* :class:`LARS`: SGD with momentum whose update of each non-1-D tensor is decayed and rescaled by the trust ratio
  ``eta·‖p‖/‖update‖``.
* :func:`clip_gradients`: **per tensor**: every gradient is rescaled to norm ≤ ``clip`` on its own (not the
  global norm of ``torch.nn.utils.clip_grad_norm_``).
* :func:`cancel_last_layer_grads`: the head's ``last_layer`` gets no update during the first
  ``freeze_last_layer`` epochs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn


def cosine_schedule(base: float, final: float, epochs: int, iters_per_epoch: int, warmup_epochs: int = 0,
                    start_warmup_value: float = 0.0) -> np.ndarray:
    """``epochs · iters_per_epoch`` values (see the module docstring)."""
    warmup_iters = warmup_epochs * iters_per_epoch
    warm = np.linspace(start_warmup_value, base, warmup_iters) if warmup_iters > 0 else np.array([])
    iters = np.arange(epochs * iters_per_epoch - warmup_iters)
    cos = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / max(len(iters), 1)))
    out = np.concatenate((warm, cos))
    assert len(out) == epochs * iters_per_epoch
    return out


def param_groups(model: nn.Module) -> list[dict]:
    """``[{"params": decayed}, {"params": not decayed, "weight_decay": 0}]`` over trainable parameters."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or p.ndim == 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as DINO uses it: for non-1-D tensors ``d = g + wd·p`` scaled by
    ``eta·‖p‖/‖d‖`` (1 when either norm is 0); then heavy-ball momentum ``μ ← m·μ + d``, ``p ← p − lr·μ``.
    1-D tensors (biases, norms) skip the decay and the trust ratio."""

    def __init__(self, params: Iterable, lr: float = 0.0, weight_decay: float = 0.0, momentum: float = 0.9,
                 eta: float = 0.001) -> None:
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                dp = p.grad
                if p.ndim != 1:
                    dp = dp.add(p, alpha=g["weight_decay"])
                    pn, un = torch.norm(p), torch.norm(dp)
                    one = torch.ones_like(pn)
                    q = torch.where(pn > 0.0, torch.where(un > 0, g["eta"] * pn / un, one), one)
                    dp = dp.mul(q)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(g["momentum"]).add_(dp)
                p.add_(mu, alpha=-g["lr"])
        return None


def build_optimizer(name: str, groups: list[dict], momentum: float = 0.9) -> torch.optim.Optimizer:
    """``adamw`` | ``sgd`` (momentum 0.9) | ``lars``; lr and weight decay are set every iteration."""
    if name == "adamw":
        return torch.optim.AdamW(groups)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=0.0, momentum=momentum)
    if name == "lars":
        return LARS(groups)
    raise ValueError(f"unknown optimizer {name!r}")


def clip_gradients(model: nn.Module, clip: float) -> list[float]:
    """Rescale each parameter's gradient to L2 norm ≤ ``clip`` (factor ``clip / (norm + 1e-6)`` when < 1);
    returns the norms before clipping."""
    norms = []
    for p in model.parameters():
        if p.grad is None:
            continue
        norm = p.grad.detach().norm(2)
        norms.append(float(norm))
        coef = clip / (norm + 1e-6)
        if coef < 1:
            p.grad.mul_(coef)
    return norms


def cancel_last_layer_grads(epoch: int, model: nn.Module, freeze_last_layer: int) -> None:
    """Drop the gradients of every ``last_layer`` parameter while ``epoch < freeze_last_layer``."""
    if epoch >= freeze_last_layer:
        return
    for name, p in model.named_parameters():
        if "last_layer" in name:
            p.grad = None


@torch.no_grad()
def ema_update(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """``θ_teacher ← m·θ_teacher + (1 − m)·θ_student`` over the parameters (buffers are the teacher's own)."""
    for ps, pt in zip(student.parameters(), teacher.parameters()):
        pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)
