"""Training-step speed: images / s of the engine's own step (forward, loss, backward, clip, optimiser step).

:func:`measure_train_speed` builds the model, optimiser, grad scaler and criterion exactly as
:func:`poserepro.engine.train` does (same recipe fields: ``optim.*``, ``train.amp``, ``train.channels_last``,
``train.compile``) and times :func:`poserepro.engine.loop.train_step` on one synthetic batch (random image, targets
of the family's shape), so the figure is what a training run gets minus data loading. Warm-up steps are not
timed (the first steps allocate the optimiser state and, with ``compile``, trace the graph).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import PoseReproError
from ..recipes import ModelCfg, Recipe
from .speed import _CpuPeakMemory, _quantile


@dataclass(frozen=True)
class TrainSpeedResult:
    """Timing of ``batch``-sized training steps: ``images_per_s`` at the median step time."""

    batch: int
    step_ms_median: float
    step_ms_iqr: float
    images_per_s: float
    peak_mem_mb: float
    repeats: int
    settings: str           # e.g. "adam fused, amp off, channels_last, eager"
    loss: float             # the last step's loss (a sanity value, not a metric)


def train_recipe(model: str, recipe: str, input_size_hw: tuple[int, int], *, amp: str | None = None,
                 channels_last: bool | None = None, compile: bool | None = None) -> Recipe:
    """The recipe a training step is timed with: the named recipe (or the defaults for a bare model name) at
    ``input_size_hw``, CPU threads left alone, with ``amp`` / ``channels_last`` / ``compile`` overridden when given."""
    from ..recipes import load_recipe

    rec = load_recipe(recipe) if recipe else Recipe(name=model, model=ModelCfg(name=model))
    train = rec.train
    if amp is not None:
        train = dataclasses.replace(train, amp=amp)
    if channels_last is not None:
        train = dataclasses.replace(train, channels_last=channels_last)
    if compile is not None:
        train = dataclasses.replace(train, compile=compile)
    data = dataclasses.replace(rec.data, input_size=(input_size_hw[1], input_size_hw[0]))
    return dataclasses.replace(rec, data=data, train=dataclasses.replace(train, threads=None))


def synthetic_batch(model: nn.Module, batch: int, input_size_hw: tuple[int, int], device: torch.device,
                    heatmap_output: bool, seed: int = 0) -> dict[str, Any]:
    """A top-down training batch: ``image (B, 3, H, W)``, ``joints (B, K, 2)`` inside the crop (crop pixels),
    ``joints_vis`` / ``target_weight (B, K)`` all 1 and, for heatmap models, ``heatmaps`` of the model's output
    shape (uniform in [0, 1))."""
    g = torch.Generator().manual_seed(seed)
    h, w = input_size_hw
    k = int(getattr(model, "num_joints", 17))
    out: dict[str, Any] = {"image": torch.randn(batch, 3, h, w, generator=g)}
    if heatmap_output:
        was = model.training
        with torch.no_grad():
            shape = model.eval()(out["image"][:1].to(device)).shape
        model.train(was)
        k = shape[1]
        out["heatmaps"] = torch.rand(batch, *shape[1:], generator=g)
    size = torch.tensor([w, h], dtype=torch.float32)
    out["joints"] = (torch.rand(batch, k, 2, generator=g) * 0.8 + 0.1) * size
    out["joints_vis"] = torch.ones(batch, k)
    out["target_weight"] = torch.ones(batch, k)
    return {key: v.to(device) for key, v in out.items()}


def settings_name(recipe: Recipe, optimizer: torch.optim.Optimizer) -> str:
    """``"<optimiser> [fused], amp <mode>, channels_last|contiguous, compiled|eager"``."""
    fused = optimizer.defaults.get("fused") or False
    return (f"{recipe.optim.name}{' fused' if fused else ''}, amp {recipe.train.amp}, "
            f"{'channels_last' if recipe.train.channels_last else 'contiguous'}, "
            f"{'compiled' if recipe.train.compile else 'eager'}")


def measure_train_speed(
    recipe: Recipe, batch: int = 8, device: str = "cpu", warmup: int = 2, repeats: int = 5, fused: bool | None = None,
) -> TrainSpeedResult:
    """Time ``repeats`` training steps of ``recipe``'s model on a synthetic batch of ``batch`` after ``warmup``.

    ``fused`` is passed to :func:`~poserepro.engine.schedules.build_optimizer` (``None``: fused where supported,
    as training does; ``False``: PyTorch's per-parameter loop).
    """
    from ..engine.build import build_model, to_channels_last
    from ..engine.loop import train_step
    from ..engine.schedules import build_optimizer
    from ..families import family_of

    dev = torch.device(device)
    recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, device=str(dev)))
    model = build_model(recipe)
    family = family_of(model)
    if family.whole_image:
        raise PoseReproError(f"{recipe.model.name}: bench --train times top-down families; whole-image models "
                             "(end-to-end PRTR) need per-image targets")
    model.to(dev)
    if recipe.train.channels_last:
        to_channels_last(model)
    hw = (int(recipe.data.input_size[1]), int(recipe.data.input_size[0]))
    data = synthetic_batch(model, batch, hw, dev, family.heatmap_output)
    optimizer = build_optimizer(model, recipe.optim, batch, fused=fused)
    scaler = torch.amp.GradScaler(dev.type, enabled=recipe.train.amp == "fp16")
    criterion = family.criterion(recipe, model, dev)
    params = list(model.parameters())
    step_model: nn.Module = torch.compile(model) if recipe.train.compile else model
    step_model.train()
    cuda = dev.type == "cuda"

    def step() -> float:
        loss, _ = train_step(step_model, family, criterion, dict(data), optimizer, scaler, recipe, dev, params)
        if cuda:
            torch.cuda.synchronize(dev)
        return loss

    times: list[float] = []
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    mem = _CpuPeakMemory() if not cuda else contextlib.nullcontext()
    loss = float("nan")
    with mem:
        for _ in range(warmup):
            step()
        for _ in range(repeats):
            t0 = time.perf_counter()
            loss = step()
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated(dev) - base) / 2**20 if cuda else mem.mb  # type: ignore[union-attr]
    med = statistics.median(times)
    iqr = _quantile(times, 0.75) - _quantile(times, 0.25)
    return TrainSpeedResult(batch, med * 1e3, iqr * 1e3, batch / med, peak, repeats,
                            settings_name(recipe, optimizer), loss)
