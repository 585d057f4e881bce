"""``poserepro bench``: parameters, FLOPs (fvcore and the TransPose paper convention), FPS and memory.

Register with ``app.command("bench")(bench)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .common import console, handle_errors, results_dir


def _num(v: object, fmt: str) -> str:
    return "" if v is None or v == "" else format(v, fmt)


@handle_errors
def bench(
    models: Annotated[list[str] | None, typer.Argument(
        help="Model names or recipe stems (default: every registered heatmap model except *_smoke).")] = None,
    input: Annotated[str, typer.Option("--input", help="Input size HxW.")] = "256x192",
    batch: Annotated[int, typer.Option(help="Batch size of the latency measurement.")] = 1,
    throughput_batch: Annotated[int | None, typer.Option(
        help="Also time this batch size (a throughput row per model).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1 ...")] = "cpu",
    amp: Annotated[bool, typer.Option(help="Autocast: fp16 on CUDA, bf16 on CPU.")] = False,
    repeats: Annotated[int, typer.Option(help="Timed forwards per measurement.")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up forwards.")] = 3,
    skip_fps: Annotated[bool, typer.Option(help="Only count parameters and FLOPs.")] = False,
    skip_flops: Annotated[bool, typer.Option(help="Do not count FLOPs (faster).")] = False,
    channels_last: Annotated[bool, typer.Option(help="Run convolutions in channels-last memory format.")] = False,
    fold_bn: Annotated[bool, typer.Option(
        "--fold-bn/--no-fold-bn", help="Time the forward with BatchNorm folded into the convolutions, as "
        "`poserepro eval` runs it (eval.fold_batchnorm).")] = True,
    threads: Annotated[int | None, typer.Option(help="torch.set_num_threads for CPU runs.")] = None,
    train: Annotated[bool, typer.Option(
        "--train", help="Also time a full training step (forward, loss, backward, optimiser step) as the "
        "recipe trains: its optimiser, train.amp, train.channels_last, train.compile.")] = False,
    train_repeats: Annotated[int, typer.Option(help="Timed training steps per measurement.")] = 5,
    compile: Annotated[bool | None, typer.Option(
        "--compile/--no-compile", help="Force train.compile on / off for --train (default: the recipe's).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="CSV to write (default: results/bench_<device>_<precision>_torch<version>.csv).")] = None,
) -> None:
    """Benchmark models: params vs paper, GFLOPs in both conventions vs paper, latency / FPS / peak memory, and
    with --train the images/s of a training step."""
    import torch

    from ..bench.runner import bench_one, check_bench_args, default_csv_name, parse_input_size, write_rows
    from ..errors import PoseReproError
    from ..families import family_of
    from ..io import check_writable
    from ..models.registry import create_model, list_models

    size = parse_input_size(input)
    if out is not None:
        check_writable(out, "--out")
    batches = tuple(dict.fromkeys([batch] + ([throughput_batch] if throughput_batch is not None else [])))
    device = check_bench_args(size, batches, repeats, warmup, threads, device, train_repeats)
    if threads:
        torch.set_num_threads(threads)
    if not models:
        models = [n for n in list_models() if not n.endswith("_smoke")
                  and family_of(create_model(n)).heatmap_output]
    rows = []
    for name in models:
        console.print(f"[dim]bench {name} ...[/]")
        try:
            rows += bench_one(name, size, batches, device, amp, repeats, warmup, skip_fps, skip_flops, channels_last,
                              train=train, train_repeats=train_repeats, compile=compile, fold_bn=fold_bn)
        except RuntimeError as e:  # e.g. a kernel larger than the feature map at a small --input
            first = (str(e).splitlines() or [type(e).__name__])[0][:160]
            raise PoseReproError(f"{name} cannot run at --input {input} (batch {batches}): {first}") from None
    path = out or results_dir() / default_csv_name(device, amp)
    write_rows(path, rows)

    t = Table(title=f"bench {input} on {device} ({rows[0]['precision'] if rows else ''}), torch {torch.__version__}")
    for c in ("model", "batch", "params (M)", "paper", "GFLOPs fvcore", "GFLOPs paper-conv.", "paper", "Δ",
              "FPS", "ms (median ± IQR)", "peak MB", "train img/s"):
        t.add_column(c, justify="left" if c == "model" else "right")
    for r in rows:
        t.add_row(
            r["recipe"] or r["model"], str(r["batch"]), _num(r["params"] / 1e6, ".3f"),
            _num(r["paper_params"] and r["paper_params"] / 1e6, ".2f"), _num(r["gflops_fvcore"], ".3f"),
            _num(r["gflops_paper_convention"], ".3f"), _num(r["paper_gflops"], ".1f"),
            _num(r["gflops_rel_diff"] and 100 * r["gflops_rel_diff"], "+.1f") + ("%" if r["gflops_rel_diff"] else ""),
            _num(r["fps"], ".1f"),
            "" if r["latency_ms_median"] is None else f"{r['latency_ms_median']:.1f} ± {r['latency_ms_iqr']:.1f}",
            _num(r["peak_mem_mb"], ".0f"), _num(r["train_images_per_s"], ".2f"),
        )
    console.print(t)
    console.print(f"wrote {path}")
