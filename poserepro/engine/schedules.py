"""Optimisers and learning-rate schedules built from a recipe."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..recipes import OptimCfg, ScheduleCfg


def param_groups(model: nn.Module, cfg: OptimCfg, lr: float) -> list[dict]:
    """Parameter groups: ``backbone.*`` at ``backbone_lr`` (if set), names containing a ``lr_mult`` key scaled."""
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        g_lr = lr
        if cfg.backbone_lr is not None and name.startswith("backbone."):
            g_lr = cfg.backbone_lr * (lr / cfg.lr)
        for key, mult in cfg.lr_mult.items():
            if key in name:
                g_lr = g_lr * mult
        groups.setdefault(g_lr, []).append(p)
    return [{"params": ps, "lr": g, "initial_lr": g} for g, ps in groups.items()]


def fused_supported(groups: list[dict]) -> bool:
    """Whether the fused (one kernel for all parameters) optimiser step applies: every parameter a floating-point
    tensor on CPU or CUDA. On CPU the default step loops over parameters in Python, one small kernel per
    operation; the fused step gives the same update up to float rounding."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def build_optimizer(
    model: nn.Module, cfg: OptimCfg, global_batch: int = 1, fused: bool | None = None
) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD over :func:`param_groups`; the linear scaling rule when ``scale_lr_by_batch`` is set.

    ``fused=None`` uses the fused step wherever :func:`fused_supported` says it applies (build the optimiser
    after moving the model to its device); ``False`` keeps PyTorch's default per-parameter loop.
    """
    lr = cfg.lr * (global_batch / cfg.scale_lr_by_batch if cfg.scale_lr_by_batch else 1.0)
    groups = param_groups(model, cfg, lr)
    kw = {"fused": True} if (fused is None and fused_supported(groups)) or fused else {}
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=cfg.weight_decay, **kw)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay, **kw)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **kw)


def lr_factor(epoch: int, cfg: ScheduleCfg, base_lr: float) -> float:
    """Multiplier of the base lr at the start of ``epoch`` (0-based), stepped per epoch like the official code.

    cosine: ``CosineAnnealingLR(T_max=epochs, eta_min=min_lr)`` — factor ``(min + (base−min)(1+cos(πe/E))/2)/base``;
    multistep: ``gamma ** #(milestones ≤ e)``; linear warm-up over ``warmup_epochs`` in front of either.
    """
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return (epoch + 1) / cfg.warmup_epochs
    if cfg.name == "cosine":
        eta = min(cfg.min_lr / base_lr, 1.0) if base_lr > 0 else 0.0
        return eta + (1 - eta) * (1 + math.cos(math.pi * epoch / max(cfg.epochs, 1))) / 2
    if cfg.name == "multistep":
        return cfg.gamma ** sum(1 for m in cfg.milestones if epoch >= m)
    return 1.0


def set_epoch_lr(optimizer: torch.optim.Optimizer, epoch: int, cfg: ScheduleCfg, base_lr: float) -> float:
    """Set every group's lr for ``epoch`` (groups keep their ratio to ``initial_lr``); returns the base-group lr."""
    f = lr_factor(epoch, cfg, base_lr)
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * f
    return base_lr * f
