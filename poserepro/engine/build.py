"""Building blocks of a run: seeding, the recipe's model, autocast, moving batches to the device."""

from __future__ import annotations

import dataclasses
import inspect
import random
import re
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import RecipeError
from ..models.registry import create_model, model_entrypoint
from ..recipes import Recipe

_NOTICED: set[str] = set()


def resolve_device(spec: str, what: str = "train.device") -> str:
    """``auto`` → ``cuda`` when a CUDA device is there, else ``cpu`` (with a one-line notice on stderr, once);
    ``cpu``, ``cuda`` and ``cuda:N`` are checked against the machine.

    Raises:
        RecipeError: an explicit device this machine does not have, or an unknown device string.
    """
    text = str(spec).strip().lower()
    if text == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev == "cpu" and "auto" not in _NOTICED:
            _NOTICED.add("auto")
            print("poserepro: train.device=auto -> cpu (no CUDA device here)", file=sys.stderr)
        return dev
    if text == "cpu":
        return text
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m is None:
        raise RecipeError(f"{what}={spec!r} is not a device; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise RecipeError(f"{what}={spec} but this machine has no CUDA device (torch {torch.__version__}); "
                          f"use {what}=auto (or cpu)")
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise RecipeError(f"{what}={spec} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return text


def with_device(recipe: Recipe) -> Recipe:
    """``recipe`` with ``train.device`` resolved by :func:`resolve_device`."""
    dev = resolve_device(recipe.train.device)
    if dev == recipe.train.device:
        return recipe
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, device=dev))


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; deterministic algorithms on request."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def build_model(recipe: Recipe) -> nn.Module:
    """``create_model`` with the recipe's args, plus ``input_size`` / ``num_joints`` where the builder takes them;
    a model that flips by itself (``flip_pairs`` attribute) gets the recipe's keypoint layout's pairs unless the
    recipe's ``model.args`` name them."""
    args = dict(recipe.model.args)
    params = inspect.signature(model_entrypoint(recipe.model.name)).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if "input_size" in params or takes_any:
        args.setdefault("input_size", tuple(recipe.data.input_size))
    if "num_joints" in params or takes_any:
        args.setdefault("num_joints", recipe.data.num_joints)
    if isinstance(args.get("input_size"), list):
        args["input_size"] = tuple(args["input_size"])
    model = create_model(recipe.model.name, **args)
    if hasattr(model, "flip_pairs") and "flip_pairs" not in args:
        model.flip_pairs = tuple(recipe.data.keypoint_spec().flip_pairs)
    return model


def amp_context(device: torch.device, amp: str) -> AbstractContextManager:
    """Autocast for ``amp`` ("bf16", "fp16"); a no-op context for "off"."""
    if amp == "off":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a batch (also inside lists and dicts, e.g. per-image targets) to ``device``."""
    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if isinstance(v, list):
            return [move(x) for x in v]
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        return v

    return {k: move(v) for k, v in batch.items()}


def to_channels_last(model: nn.Module) -> None:
    """Convert every 2-D convolution's weights to channels-last (other parameters keep their layout)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.to(memory_format=torch.channels_last)
