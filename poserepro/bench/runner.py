"""Benchmark rows: parameters, FLOPs (two conventions), speed and memory of registered models or recipes.

One row per (model, input size, batch). FLOPs are always counted at batch 1 (per image, the papers' convention)
and cached per (model, args, input size) for the life of the process. Rows go to a tidy CSV named
``bench_<device>_<precision>_torch<version>.csv``; re-running a subset replaces only those rows.
"""

from __future__ import annotations

import csv
import gc
import inspect
import io
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import PoseReproError, UnknownNameError, suggest
from ..models.fold import fold_batchnorm
from .flops import FlopCounts, count_flops, count_params
from .paper_numbers import paper_numbers
from .speed import SpeedResult, measure_speed, precision_name

COLUMNS = (
    "model", "recipe", "input_size", "batch", "device", "hardware", "precision", "threads", "params",
    "paper_params", "official_params", "params_rel_diff", "gflops_fvcore", "gflops_paper_convention",
    "paper_gflops", "paper_gflops_convention", "gflops_rel_diff", "fps", "latency_ms_median", "latency_ms_iqr",
    "peak_mem_mb", "fold_batchnorm", "train_images_per_s", "train_step_ms_median", "train_step_ms_iqr",
    "train_peak_mem_mb",
    "train_settings", "load_avg_1m", "torch", "python", "numpy", "timestamp", "paper_source",
)
KEY = ("model", "recipe", "input_size", "batch", "train_settings")  # a training setting is its own row

_FLOP_CACHE: dict[tuple[str, str, tuple[int, int]], FlopCounts] = {}


@dataclass(frozen=True)
class ModelSpec:
    """What to build: ``create_model(model, **args)``; ``recipe`` is the stem it came from (or ``""``)."""

    model: str
    args: dict[str, Any]
    recipe: str = ""


def parse_input_size(text: str) -> tuple[int, int]:
    """``"256x192"`` (H×W) → ``(256, 192)``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×,]\s*(\d+)\s*", text)
    if not m:
        raise PoseReproError(f"input size {text!r} must look like HxW, e.g. 256x192")
    return int(m.group(1)), int(m.group(2))


def check_bench_args(size_hw: tuple[int, int], batches: tuple[int, ...], repeats: int, warmup: int,
                     threads: int | None, device: str, train_repeats: int = 1) -> str:
    """Check ``bench``'s numbers before anything runs (one line naming the option and the fix) and return the
    device, checked against this machine (``auto`` allowed)."""
    from ..engine.build import resolve_device

    if min(size_hw) < 32:
        raise PoseReproError(f"--input {size_hw[0]}x{size_hw[1]}: both sides must be at least 32 pixels "
                             "(the backbones downsample 32x), e.g. 256x192")
    if min(batches) < 1:
        raise PoseReproError(f"batch size {min(batches)}: --batch and --throughput-batch must be at least 1")
    if repeats < 1:
        raise PoseReproError(f"--repeats {repeats}: time at least one forward (e.g. 10)")
    if train_repeats < 1:
        raise PoseReproError(f"--train-repeats {train_repeats}: time at least one training step (e.g. 5)")
    if warmup < 0:
        raise PoseReproError(f"--warmup {warmup}: use 0 or more untimed forwards")
    if threads is not None and threads < 1:
        raise PoseReproError(f"--threads {threads}: use 1 or more (or leave it out for torch's default)")
    return resolve_device(device, "--device")


def resolve(name: str) -> ModelSpec:
    """A registered model name (``transpose_h_a6``) or a recipe stem (``transpose-h-a6``) → :class:`ModelSpec`.

    An exact model name is a model; otherwise a recipe stem (with its model arguments) is tried, then the name
    with hyphens read as underscores. Unknown names raise
    :class:`~poserepro.errors.UnknownNameError` with close matches among models and recipes.
    """
    from ..models.registry import list_models
    from ..recipes import list_recipes, load_recipe

    recipes = list_recipes()
    models = list_models()
    if name in models:
        return ModelSpec(name, {})
    stem = name.replace("_", "-")
    if stem in recipes:
        rec = load_recipe(stem)
        return ModelSpec(rec.model.name, dict(rec.model.args), stem)
    key = name.replace("-", "_")
    if key in models:
        return ModelSpec(key, {})
    raise UnknownNameError(f"unknown model or recipe {name!r}{suggest(key, models + recipes)}; "
                           "see `poserepro list models` / `poserepro list recipes`")


def build(spec: ModelSpec, input_size_hw: tuple[int, int]) -> torch.nn.Module:
    """Build the model for an ``(H, W)`` input (``input_size=(W, H)`` is passed when the builder takes it)."""
    from ..models.registry import create_model, model_entrypoint

    args = dict(spec.args)
    params = inspect.signature(model_entrypoint(spec.model)).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "input_size" in params or takes_any:
        args["input_size"] = (input_size_hw[1], input_size_hw[0])
    return create_model(spec.model, **args)


def flops_cached(spec: ModelSpec, model: torch.nn.Module, input_size_hw: tuple[int, int]) -> FlopCounts:
    """Both FLOP conventions at batch 1, cached per (model, args, input size) for this process."""
    key = (spec.model, repr(sorted(spec.args.items())), input_size_hw)
    if key not in _FLOP_CACHE:
        x = torch.randn(1, 3, *input_size_hw)
        _FLOP_CACHE[key] = count_flops(model.cpu(), x)
    return _FLOP_CACHE[key]


def hardware_name(device: str) -> str:
    """The GPU's name on CUDA, else the CPU model name (``/proc/cpuinfo``) or ``platform.processor()``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def device_slug(device: str) -> str:
    """File-name part for a device: ``cpu`` or ``cuda-<gpu name>`` (lower case, dashes)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return dev.type
    return "cuda-" + re.sub(r"[^a-z0-9]+", "-", hardware_name(device).lower()).strip("-")


def default_csv_name(device: str, amp: bool) -> str:
    """``bench_<device>_<precision>_torch<version>.csv``."""
    ver = torch.__version__.split("+")[0]
    return f"bench_{device_slug(device)}_{precision_name(device, amp)}_torch{ver}.csv"


def _rel(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else (a - b) / b


def bench_one(
    name: str, input_size_hw: tuple[int, int] = (256, 192), batches: tuple[int, ...] = (1,), device: str = "cpu",
    amp: bool = False, repeats: int = 10, warmup: int = 3, skip_fps: bool = False, skip_flops: bool = False,
    channels_last: bool = False, train: bool = False, train_repeats: int = 5, train_warmup: int = 2,
    compile: bool | None = None, fold_bn: bool = True,
) -> list[dict[str, Any]]:
    """Benchmark one model or recipe; one row per batch size in ``batches``.

    The forward is timed as ``poserepro eval`` runs it: with ``fold_bn`` on an eval-only copy whose BatchNorm
    layers are folded into their convolutions (:func:`~poserepro.models.fold.fold_batchnorm`).

    With ``train`` every row also gets the images / s of a full training step
    (:func:`~poserepro.bench.train_speed.measure_train_speed`) with the recipe's optimiser and its
    ``train.amp`` / ``train.channels_last`` / ``train.compile``, each switched on when ``amp`` / ``channels_last``
    / ``compile`` ask for it.
    """
    import numpy

    spec = resolve(name)
    model = build(spec, input_size_hw)
    params = count_params(model)
    flops = None if skip_flops else flops_cached(spec, model, input_size_hw)
    paper = paper_numbers(spec.model, input_size_hw)
    p_flops = None
    if flops is not None:
        p_flops = flops.paper_convention / 1e9 if (paper is None or paper.gflops_convention == "paper") \
            else flops.fvcore / 1e9
    rows = []
    timed = fold_batchnorm(model)[0] if fold_bn and not skip_fps else model
    for batch in batches:
        speed: SpeedResult | None = None
        if not skip_fps:
            speed = measure_speed(timed, input_size_hw, batch, device, amp, warmup, repeats, channels_last)
        tr = None
        if train:
            from .train_speed import measure_train_speed, train_recipe

            rec = train_recipe(spec.model, spec.recipe, input_size_hw,
                               amp=("fp16" if torch.device(device).type == "cuda" else "bf16") if amp else None,
                               channels_last=True if channels_last else None, compile=compile)
            tr = measure_train_speed(rec, batch, device, train_warmup, train_repeats)
        rows.append({
            "model": spec.model, "recipe": spec.recipe, "input_size": f"{input_size_hw[0]}x{input_size_hw[1]}",
            "batch": batch, "device": str(device), "hardware": hardware_name(device),
            "precision": precision_name(device, amp), "threads": torch.get_num_threads(), "params": params,
            "paper_params": paper.params if paper else None,
            "official_params": paper.official_params if paper else None,
            "params_rel_diff": _rel(params, paper.params) if paper else None,
            "gflops_fvcore": flops.fvcore / 1e9 if flops else None,
            "gflops_paper_convention": flops.paper_convention / 1e9 if flops else None,
            "paper_gflops": paper.gflops if paper else None,
            "paper_gflops_convention": paper.gflops_convention if paper and paper.gflops else None,
            "gflops_rel_diff": _rel(p_flops, paper.gflops) if paper else None,
            "fps": speed.fps if speed else None,
            "latency_ms_median": speed.latency_ms_median if speed else None,
            "latency_ms_iqr": speed.latency_ms_iqr if speed else None,
            "peak_mem_mb": speed.peak_mem_mb if speed else None,
            "fold_batchnorm": fold_bn if speed else None,
            "train_images_per_s": tr.images_per_s if tr else None,
            "train_step_ms_median": tr.step_ms_median if tr else None,
            "train_step_ms_iqr": tr.step_ms_iqr if tr else None,
            "train_peak_mem_mb": tr.peak_mem_mb if tr else None,
            "train_settings": tr.settings if tr else "",
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "torch": torch.__version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "paper_source": paper.source if paper else "",
        })
    del model, timed
    gc.collect()
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_rows(path: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Merge ``rows`` into the CSV at ``path``: rows with the same (model, recipe, input_size, batch) are
    replaced, the rest kept; sorted by model, input size and batch; written atomically."""
    from ..io import locked

    path = Path(path)
    with locked(path):
        _merge_locked(path, rows)
    return path


def _merge_locked(path: Path, rows: list[dict[str, Any]]) -> None:
    from ..io import atomic_write_text

    old: list[dict[str, str]] = []
    if path.is_file():
        with open(path, newline="") as fh:
            old = list(csv.DictReader(fh))
    new = [{k: _fmt(r.get(k)) for k in COLUMNS} for r in rows]
    keys = {tuple(r[k] for k in KEY) for r in new}
    merged = [{k: r.get(k, "") for k in COLUMNS} for r in old if tuple(r.get(k, "") for k in KEY) not in keys]
    merged += new
    merged.sort(key=lambda r: (r["model"], r["recipe"], r["input_size"], int(r["batch"] or 0), r["train_settings"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(merged)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())
