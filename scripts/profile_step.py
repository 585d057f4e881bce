#!/usr/bin/env python
"""Where the time of a forward pass or a training step goes: the top operators of ``torch.profiler`` for a recipe.

The model, batch and step are those of ``scripts/speed_official_vs_ours.py``: the recipe's model on a synthetic
batch at the recipe's input size, ``train.channels_last=true``; ``forward`` is ``poserepro eval``'s pass (eval mode,
``no_grad``), ``train`` is :func:`poserepro.engine.loop.train_step` (forward, loss, backward, optimiser step).
``--official`` profiles the official-structure network that script times instead (its forward and its official
training step).

Usage: ``python scripts/profile_step.py RECIPE [--batch 8] [--threads 2] [--modes forward train] [--official]
[--steps 2] [--warmup 1] [--top 25] [--sort self_cpu_time_total]``. Prints one table per mode.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speed_official_vs_ours import at_least, official_model, official_step  # noqa: E402

from poserepro.bench.train_speed import synthetic_batch, train_recipe  # noqa: E402
from poserepro.engine.build import build_model, to_channels_last  # noqa: E402
from poserepro.engine.loop import train_step  # noqa: E402
from poserepro.engine.schedules import build_optimizer  # noqa: E402
from poserepro.errors import PoseReproError  # noqa: E402
from poserepro.families import family_of  # noqa: E402
from poserepro.recipes import load_recipe  # noqa: E402


def step_fn(mode: str, official: bool, model: torch.nn.Module, base: torch.nn.Module, rec: Any,
            data: dict[str, Any], batch: int) -> Callable[[], Any]:
    """The closure profiled for ``mode`` (see the module docstring)."""
    cpu = torch.device("cpu")
    family = family_of(base)
    if mode == "forward":
        def forward() -> None:
            with torch.no_grad():
                model.eval()(data["image"])
        return forward
    if official:
        return official_step(model, data, family.heatmap_output, rec, base)
    opt = build_optimizer(model, rec.optim, batch)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    crit = family.criterion(rec, model, cpu)
    params = list(model.parameters())

    def train() -> None:
        model.train()
        train_step(model, family, crit, dict(data), opt, scaler, rec, cpu, params)
    return train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", help="recipe name, e.g. tfpose-r50-e6-256x192")
    p.add_argument("--batch", type=at_least(1), default=8)
    p.add_argument("--threads", type=at_least(1), default=2)
    p.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    p.add_argument("--official", action="store_true", help="profile the official-structure network instead")
    p.add_argument("--steps", type=at_least(1), default=2, help="profiled repetitions")
    p.add_argument("--warmup", type=at_least(0), default=1)
    p.add_argument("--top", type=at_least(1), default=25)
    p.add_argument("--sort", default="self_cpu_time_total")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    try:
        w0, h0 = load_recipe(a.recipe).data.input_size
    except PoseReproError as e:
        p.error(str(e))
    hw = (int(h0), int(w0))
    rec = train_recipe("", a.recipe, hw, channels_last=True)
    base = build_model(rec)
    data = synthetic_batch(base, a.batch, hw, torch.device("cpu"), family_of(base).heatmap_output)
    if a.official:
        model = official_model(base)
    else:
        model = copy.deepcopy(base)
        to_channels_last(model)
    for mode in a.modes:
        fn = step_fn(mode, a.official, model, base, rec, data, a.batch)
        for _ in range(a.warmup):
            fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(a.steps):
                fn()
        side = "official" if a.official else "ours"
        print(f"== {a.recipe} {side} {mode} batch {a.batch}, {a.threads} threads, {a.steps} steps")
        print(prof.key_averages().table(sort_by=a.sort, row_limit=a.top))


if __name__ == "__main__":
    main()
