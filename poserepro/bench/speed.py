"""Inference speed and peak memory of a model: warm-up, synchronised timing, median and IQR over repeats.

Peak memory is what the forwards (warm-up included) need on top of what is already resident (weights, input): on
CUDA ``torch.cuda.max_memory_allocated()`` (after a reset) minus the allocation before the runs; on CPU the growth
of the process' peak resident set over the runs, after returning freed heap pages to the OS (``malloc_trim``).
The kernel's high-water mark (``VmHWM`` in ``/proc/self/status``) is reset through ``/proc/self/clear_refs``
where allowed, otherwise the ``resource.getrusage`` peak is used (then only growth beyond the process' earlier
peak is visible).
"""

from __future__ import annotations

import contextlib
import gc
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class SpeedResult:
    """Timing of ``batch``-sized forwards: ``fps`` = images / s at the median latency."""

    batch: int
    latency_ms_median: float
    latency_ms_iqr: float
    fps: float
    peak_mem_mb: float
    repeats: int


def _quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` = 5); ``False`` if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _ru_maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _release_free_heap() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``) so that RSS growth measures new allocations."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _CpuPeakMemory:
    """Context manager measuring the peak RSS growth (MiB) inside the block."""

    def __enter__(self) -> _CpuPeakMemory:
        gc.collect()
        _release_free_heap()
        self.base_kb = _status_kb("VmRSS") or _ru_maxrss_kb()
        self.reset = _reset_peak_rss()
        self.start_peak_kb = (_status_kb("VmHWM") if self.reset else None) or _ru_maxrss_kb()
        self.mb = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        peak = (_status_kb("VmHWM") if self.reset else None) or _ru_maxrss_kb()
        base = self.base_kb if self.reset else self.start_peak_kb
        self.mb = max(peak - base, 0) / 1024


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def precision_name(device: str | torch.device, amp: bool) -> str:
    """``"fp32"``, ``"amp-fp16"`` (CUDA) or ``"amp-bf16"`` (CPU)."""
    if not amp:
        return "fp32"
    return "amp-fp16" if torch.device(device).type == "cuda" else "amp-bf16"


def measure_speed(
    model: nn.Module, input_size: tuple[int, int], batch: int = 1, device: str | torch.device = "cpu",
    amp: bool = False, warmup: int = 3, repeats: int = 10, channels_last: bool = False,
) -> SpeedResult:
    """Time ``repeats`` eval-mode forwards of a ``(batch, 3, H, W)`` input after ``warmup`` untimed ones.

    Args:
        model: the network (moved to ``device`` and put in eval mode; its mode is restored afterwards).
        input_size: ``(H, W)``.
        batch: images per forward.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        amp: autocast (fp16 on CUDA, bf16 on CPU).
        warmup, repeats: untimed and timed iterations.
        channels_last: convert model and input to the channels-last memory format.
    """
    dev = torch.device(device)
    was_training = model.training
    model = model.to(dev).eval()
    x = torch.randn(batch, 3, *input_size, device=dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    times: list[float] = []
    try:
        with torch.inference_mode(), _autocast(dev, amp):
            if cuda:
                sync()
                torch.cuda.reset_peak_memory_stats(dev)
                base = torch.cuda.memory_allocated(dev)
            # memory is tracked from before the first forward (on CPU the allocator keeps pages after it)
            mem = _CpuPeakMemory() if not cuda else contextlib.nullcontext()
            with mem:
                for _ in range(warmup):
                    model(x)
                sync()
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    model(x)
                    sync()
                    times.append(time.perf_counter() - t0)
            if cuda:
                peak_mb = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
            else:
                peak_mb = mem.mb  # type: ignore[union-attr]
    finally:
        model.train(was_training)
    med = statistics.median(times)
    iqr = _quantile(times, 0.75) - _quantile(times, 0.25)
    return SpeedResult(batch, med * 1e3, iqr * 1e3, batch / med, peak_mb, repeats)
