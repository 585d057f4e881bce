#!/usr/bin/env python
"""What each speed change contributes: our forward / training step with all changes on, and with one switched off.

Variants (interleaved in one process, order rotated every repeat, 2 threads; the same weights and batch):

* ``all``: what ``poserepro eval`` / ``poserepro train`` run (channels-last convolutions, fused optimiser step,
  attention dropout without SDPA's CPU math path, dropout masks from NumPy's SFC64 stream, BTranspose MHSA on
  SDPA's fused kernel; the forward on an eval-only copy with BatchNorm folded into the convolutions);
* ``-channels_last``: contiguous (NCHW) convolutions (training step and forward);
* ``-fold_bn``: the forward of the unfolded network (forward only);
* ``-fast_masks``: every dropout mask drawn by ``bernoulli_`` as ``F.dropout`` draws it (training only);
* ``-fused_optim``: PyTorch's default per-parameter optimiser loop (training only);
* ``-fast_dropout``: SDPA's dropout path for the encoder attention (training only, where dropout > 0);
* ``-mhsa_fused``: BTranspose's MHSA through SDPA's math path (q/k and v of unequal head width; BTranspose only);
* ``official``: the official layer structure and training step of ``scripts/speed_official_vs_ours.py``.

``slowdown`` is a variant's median time over ``all``'s (> 1: switching that change off costs time);
``slowdown_of_min`` the same for the fastest repeat (the least disturbed one on a shared machine).
Usage: ``python scripts/speed_attribution.py --models tp_r_a4 bt_c3a1 --batch 8 --repeats 3``. Writes
``results/speed_attribution_cpu_torch<version>.csv`` (rows of the same model, mode, batch and variant replaced).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import speed_official_vs_ours as official  # noqa: E402

from poserepro.bench.runner import hardware_name  # noqa: E402
from poserepro.bench.train_speed import synthetic_batch, train_recipe  # noqa: E402
from poserepro.engine.build import build_model, to_channels_last  # noqa: E402
from poserepro.engine.evaluate import inference_copy  # noqa: E402
from poserepro.engine.loop import train_step  # noqa: E402
from poserepro.engine.schedules import build_optimizer  # noqa: E402
from poserepro.families import family_of  # noqa: E402
from poserepro.models.backbones.botnet import GridMHSA  # noqa: E402
from poserepro.models.layers.attention import MultiheadAttention  # noqa: E402
from poserepro.models.layers.dropout import Dropout  # noqa: E402
from poserepro.recipes import load_recipe  # noqa: E402

KEY = ("model", "mode", "batch", "variant")


def _switch(model: torch.nn.Module, kind: type, attr: str) -> int:
    mods = [m for m in model.modules() if isinstance(m, kind)]
    for m in mods:
        setattr(m, attr, False)
    return len(mods)


def variants(key: str, batch: int, modes: list[str]) -> tuple[dict[str, Callable[[], object]], str]:
    """The timed closures ``"<mode>/<variant>"`` of model ``key`` at ``batch``, and the input size."""
    stem, _ = official.MODELS[key]
    w0, h0 = load_recipe(stem).data.input_size
    hw = (int(h0), int(w0))
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    rec = train_recipe("", stem, hw, channels_last=True)
    base = build_model(rec)
    family = family_of(base)
    data = synthetic_batch(base, batch, hw, cpu, family.heatmap_output)
    has_dropout = any(isinstance(m, MultiheadAttention) and m.dropout > 0 for m in base.modules())
    has_mhsa = any(isinstance(m, GridMHSA) for m in base.modules())

    def make(channels_last: bool = True, fused: bool | None = None, fast_dropout: bool = True,
             mhsa_fused: bool = True, fold_bn: bool = True, fast_masks: bool = True,
             ) -> tuple[torch.nn.Module, Callable[[], object], Callable[[], object]]:
        m = copy.deepcopy(base)
        if channels_last:
            to_channels_last(m)
        if not fast_dropout:
            _switch(m, MultiheadAttention, "fast_dropout")
        if not mhsa_fused:
            _switch(m, GridMHSA, "fused_kernel")
        if not fast_masks:
            for mod in m.modules():
                if isinstance(mod, MultiheadAttention):
                    mod.dropout_rng = "torch"
                if isinstance(mod, Dropout):
                    mod.rng = "torch"
        r = train_recipe("", stem, hw, channels_last=channels_last)
        ev = inference_copy(m, dataclasses.replace(r, eval=dataclasses.replace(
            r.eval, fold_batchnorm=fold_bn, channels_last=channels_last)), cpu)
        opt = build_optimizer(m, r.optim, batch, fused=fused)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        crit = family.criterion(r, m, cpu)
        params = list(m.parameters())

        def fwd() -> None:
            with torch.no_grad():
                ev.eval()(data["image"])

        def step() -> float:
            m.train()
            return train_step(m, family, crit, dict(data), opt, scaler, r, cpu, params)[0]

        return m, fwd, step

    out: dict[str, Callable[[], object]] = {}
    settings: dict[str, dict] = {"all": {}, "-channels_last": {"channels_last": False}}
    if has_mhsa:
        settings["-mhsa_fused"] = {"mhsa_fused": False}
    off = official.official_model(base)
    for mode in modes:
        for name, kw in settings.items():
            _, fwd, step = make(**kw)
            out[f"{mode}/{name}"] = fwd if mode == "forward" else step
        if mode == "forward":
            out["forward/-fold_bn"] = make(fold_bn=False)[1]
        if mode == "train":
            out["train/-fast_masks"] = make(fast_masks=False)[2]
            out["train/-fused_optim"] = make(fused=False)[2]
            if has_dropout:
                out["train/-fast_dropout"] = make(fast_dropout=False)[2]
            out["train/official"] = official.official_step(off, data, family.heatmap_output, rec, base)
        else:
            def fwd_official() -> None:
                with torch.no_grad():
                    off.eval()(data["image"])

            out["forward/official"] = fwd_official
    return out, f"{hw[0]}x{hw[1]}"


def run(key: str, batch: int, modes: list[str], repeats: int, warmup: int) -> list[dict]:
    fns, size = variants(key, batch, modes)
    labels = list(fns)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in labels}
    cpu: dict[str, list[float]] = {k: [] for k in labels}
    load0 = official._load()
    for rep in range(repeats):
        for label in labels[rep % len(labels):] + labels[: rep % len(labels)]:
            w, c = official._time(fns[label])
            wall[label].append(w)
            cpu[label].append(c)
    load = (load0 + official._load()) / 2
    rows = []
    for label in labels:
        mode, name = label.split("/")
        ref_w, ref_c = statistics.median(wall[f"{mode}/all"]), statistics.median(cpu[f"{mode}/all"])
        w, c = statistics.median(wall[label]), statistics.median(cpu[label])
        rows.append({"model": key, "paper_name": official.MODELS[key][1], "mode": mode, "batch": batch,
                     "input_size": size, "variant": name, "ms": f"{w * 1e3:.1f}", "cpu_ms": f"{c * 1e3:.1f}",
                     "ms_min": f"{min(wall[label]) * 1e3:.1f}",
                     "slowdown_of_min": f"{min(wall[label]) / min(wall[f'{mode}/all']):.3f}",
                     "slowdown": f"{w / ref_w:.3f}", "cpu_slowdown": f"{c / ref_c:.3f}", "repeats": repeats,
                     "threads": torch.get_num_threads(), "load_avg_1m": f"{load:.2f}",
                     "hardware": hardware_name("cpu"), "torch": torch.__version__,
                     "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")})
        print(f"{key:10s} {mode:7s} b{batch} {name:15s} {w * 1e3:9.1f} ms  x{w / ref_w:.2f} of all "
              f"(cpu x{c / ref_c:.2f})  load {load:.2f}", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tp_r_a4", "bt_c3a1"], choices=list(official.MODELS))
    p.add_argument("--batch", type=official.at_least(1), default=8)
    p.add_argument("--modes", nargs="+", default=["forward", "train"], choices=["forward", "train"])
    p.add_argument("--repeats", type=official.at_least(1), default=3)
    p.add_argument("--warmup", type=official.at_least(0), default=1)
    p.add_argument("--threads", type=official.at_least(1), default=2)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent / "results")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    path = a.out_dir / f"speed_attribution_cpu_torch{torch.__version__.split('+')[0]}.csv"
    for key in a.models:
        official.write(path, run(key, a.batch, a.modes, a.repeats, a.warmup), key_fields=KEY)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
