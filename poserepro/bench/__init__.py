"""Benchmarks: parameters, FLOPs (fvcore and the TransPose paper convention), speed and memory, paper numbers.

* :mod:`.flops` — :func:`count_params`, :func:`flops_fvcore`, :func:`flops_paper_convention`, :func:`count_flops`.
* :mod:`.speed` — :func:`measure_speed` (warm-up, synchronised timing, median / IQR, peak memory).
* :mod:`.paper_numbers` — the published numbers of every registered model, with sources, and ``KNOWN_GAPS``.
* :mod:`.runner` — rows for ``poserepro bench`` and the tidy CSV in ``results/``.
"""

from .flops import count_flops, count_params, flops_fvcore, flops_paper_convention
from .paper_numbers import KNOWN_GAPS, PAPER_NUMBERS, paper_numbers
from .speed import measure_speed

__all__ = [
    "KNOWN_GAPS", "PAPER_NUMBERS", "count_flops", "count_params", "flops_fvcore", "flops_paper_convention",
    "measure_speed", "paper_numbers",
]
