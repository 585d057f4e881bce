#!/usr/bin/env python
"""Our TransPose forward vs a faithful re-implementation of the official layer structure, same weights, one process.

"Official" = the TransPose repository's encoder as it runs: sequence-first ``(L, B, d)`` tokens,
``nn.MultiheadAttention`` called with its default ``need_weights=True`` (so every layer materialises the attention
matrix and averages it over heads), the position table stored as ``(L, 1, d)`` and added to q and k in every layer,
post-norm, ReLU FFN, evaluated under ``torch.no_grad()`` as the official test loop does. The CNN backbone and the
head are the same modules as ours (a deep copy), so the comparison isolates the encoder implementation and the
execution settings.

Ours is timed in several settings: the same ``no_grad`` (the SDPA attention alone), ``inference_mode``, and
``inference_mode`` + channels-last convolutions; the encoders are also timed alone on random tokens. Variants are
interleaved and rotated; wall-clock and process CPU time are both recorded (on a shared machine the CPU time is
the steadier measure). Outputs must agree within 1e-5 (relative to the output scale).

Usage: ``python scripts/speed_official_vs_ours.py [--batch 8] [--repeats 7] [--models transpose_r_a4 transpose_h_a6]``
Writes ``results/speed_official_vs_ours_<device>_torch<version>.csv`` and prints the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poserepro import create_model  # noqa: E402
from poserepro.bench.runner import hardware_name  # noqa: E402
from poserepro.models.transpose import TransPose  # noqa: E402


class OfficialEncoderLayer(nn.Module):
    """TransPose / DETR ``TransformerEncoderLayer.forward_post`` on ``(L, B, d)`` tokens."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = k = src + pos
        src2 = self.self_attn(q, k, value=src)[0]  # need_weights=True: averaged attention computed and dropped
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class OfficialStyleTransPose(nn.Module):
    """Backbone → reduce → sequence-first encoder (PE every layer) → head, with ``ours``' weights."""

    def __init__(self, ours: TransPose) -> None:
        super().__init__()
        self.backbone = copy.deepcopy(ours.backbone)
        self.reduce = copy.deepcopy(ours.reduce)
        self.head = copy.deepcopy(ours.head)
        first = ours.encoder.layers[0]
        d = first.self_attn.d_model
        layers = [OfficialEncoderLayer(d, first.self_attn.num_heads, first.linear1.out_features)
                  for _ in ours.encoder.layers]
        self.layers = nn.ModuleList(layers)
        for mine, theirs in zip(ours.encoder.layers, self.layers):
            theirs.load_state_dict(mine.state_dict(), strict=True)  # same parameter names (packed in_proj)
        self.pos_embedding = nn.Parameter(ours.pos_embed.weight.detach().clone()[:, None, :], requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(self.backbone(x)[-1])
        bs, c, h, w = x.shape
        x = x.flatten(2).permute(2, 0, 1)
        for layer in self.layers:
            x = layer(x, self.pos_embedding)
        x = x.permute(1, 2, 0).contiguous().view(bs, c, h, w)
        return self.head(x)


def _time(fn, *args: torch.Tensor) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` of one call. On a shared machine the CPU time (summed over this
    process' threads) is the steadier measure of the work done; the wall time is what a user waits."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0


def _official_encoder(layers: nn.ModuleList, pos: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The official encoder on batch-first tokens ``(B, L, d)`` (transposed to sequence-first inside)."""
    src = tokens.transpose(0, 1)
    for layer in layers:
        src = layer(src, pos[:, None])
    return src


def _ours_encoder(encoder: nn.Module, pos: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return encoder(tokens, pos)[0]


def _stats(ts: list[float]) -> tuple[float, float]:
    med = statistics.median(ts)
    q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [med, med, med]
    return med, q[2] - q[0]


def run(models: list[str], batch: int, repeats: int, warmup: int, threads: int | None, out_dir: Path) -> Path:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = []
    for name in models:
        ours = create_model(name, input_size=(192, 256)).eval()
        official = OfficialStyleTransPose(ours).eval()
        ours_cl = copy.deepcopy(ours).to(memory_format=torch.channels_last)
        x = torch.randn(batch, 3, 256, 192)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            ref = official(x)
            diff = (ours(x) - ref).abs().max().item()
            diff_cl = (ours_cl(x_cl) - ref).abs().max().item()
        scale = max(1.0, ref.abs().max().item())
        assert diff <= 1e-5 * scale, f"{name}: outputs differ by {diff:g}"
        assert diff_cl <= 1e-5 * scale, f"{name}: channels-last outputs differ by {diff_cl:g}"

        tokens = torch.randn(batch, ours.pos_embed.weight.shape[0], ours.pos_embed.weight.shape[1])
        pos = ours.pos_embed.weight.detach()

        official_encoder = functools.partial(_official_encoder, official.layers, pos)
        ours_encoder = functools.partial(_ours_encoder, ours.encoder, pos)
        variants = {
            "official (nn.MultiheadAttention need_weights, no_grad)": (official, (x,), torch.no_grad),
            "ours (SDPA, no_grad)": (ours, (x,), torch.no_grad),
            "ours (SDPA, inference_mode)": (ours, (x,), torch.inference_mode),
            "ours (SDPA, inference_mode, channels_last)": (ours_cl, (x_cl,), torch.inference_mode),
            "encoder only: official (no_grad)": (official_encoder, (tokens,), torch.no_grad),
            "encoder only: ours (SDPA, inference_mode)": (ours_encoder, (tokens,), torch.inference_mode),
        }
        wall: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        labels = list(variants)
        for fn, args, ctx in variants.values():
            with ctx():
                for _ in range(warmup):
                    fn(*args)
        for r in range(repeats):
            # interleaved and rotated: drift, neighbours' load and allocator state after the previous variant
            # (the official path frees ~B·L² attention buffers) hit every variant alike
            for label in labels[r % len(labels):] + labels[: r % len(labels)]:
                fn, args, ctx = variants[label]
                with ctx():
                    w, c = _time(fn, *args)
                wall[label].append(w)
                cpu[label].append(c)
        for label in labels:
            base_label = labels[4] if label.startswith("encoder only") else labels[0]
            med, iqr = _stats(wall[label])
            cmed, ciqr = _stats(cpu[label])
            base, cbase = statistics.median(wall[base_label]), statistics.median(cpu[base_label])
            rows.append({
                "model": name, "variant": label, "batch": batch, "input_size": "256x192", "device": "cpu",
                "hardware": hardware_name("cpu"), "threads": torch.get_num_threads(),
                "latency_ms_median": f"{med * 1e3:.1f}", "latency_ms_iqr": f"{iqr * 1e3:.1f}",
                "cpu_ms_median": f"{cmed * 1e3:.1f}", "cpu_ms_iqr": f"{ciqr * 1e3:.1f}",
                "images_per_s": f"{batch / med:.2f}", "speedup_vs_official": f"{base / med:.3f}",
                "cpu_speedup_vs_official": f"{cbase / cmed:.3f}", "max_abs_diff": f"{max(diff, diff_cl):.2e}",
                "repeats": repeats, "load_avg_1m": f"{os.getloadavg()[0]:.2f}", "torch": torch.__version__,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            })
            print(f"{name:16s} {label:50s} wall {med * 1e3:8.1f} ms (x{base / med:.2f})  "
                  f"cpu {cmed * 1e3:8.1f} ms (x{cbase / cmed:.2f})", flush=True)
        del ours, official, ours_cl
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"speed_official_vs_ours_cpu_torch{torch.__version__.split('+')[0]}.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path}")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["transpose_r_a4", "transpose_h_a6"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent.parent / "results")
    a = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        run(a.models, a.batch, a.repeats, a.warmup, a.threads, a.out_dir)


if __name__ == "__main__":
    main()
