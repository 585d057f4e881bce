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
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poserepro.bench.train_speed import synthetic_batch, train_recipe  # noqa: E402
from poserepro.engine.build import build_model, to_channels_last  # noqa: E402
from poserepro.engine.loop import train_step  # noqa: E402
from poserepro.engine.schedules import build_optimizer  # noqa: E402
from poserepro.families import family_of  # noqa: E402
from poserepro.recipes import load_recipe  # noqa: E402
from speed_official_vs_ours import official_model, official_step  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", help="recipe name, e.g. tfpose-r50-e6-256x192")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    p.add_argument("--official", action="store_true", help="profile the official-structure network instead")
    p.add_argument("--steps", type=int, default=2, help="profiled repetitions")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--sort", default="self_cpu_time_total")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    w0, h0 = load_recipe(a.recipe).data.input_size
    hw = (int(h0), int(w0))
    rec = train_recipe("", a.recipe, hw, channels_last=True)
    base = build_model(rec)
    family = family_of(base)
    data = synthetic_batch(base, a.batch, hw, cpu, family.heatmap_output)
    if a.official:
        model = official_model(base)
    else:
        model = copy.deepcopy(base)
        to_channels_last(model)
    x = data["image"]
    for mode in a.modes:
        if mode == "forward":
            def fn() -> None:
                with torch.no_grad():
                    model.eval()(x)
        elif a.official:
            fn = official_step(model, data, family.heatmap_output, rec, base)  # type: ignore[assignment]
        else:
            opt = build_optimizer(model, rec.optim, a.batch)
            scaler = torch.amp.GradScaler("cpu", enabled=False)
            crit = family.criterion(rec, model, cpu)
            params = list(model.parameters())

            def fn() -> None:
                model.train()
                train_step(model, family, crit, dict(data), opt, scaler, rec, cpu, params)
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
