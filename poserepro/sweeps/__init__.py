"""Paper ablations as named grids of recipe overrides, and a resumable runner (``poserepro ablate``)."""

from .grids import SWEEPS, Sweep, Variant, get_sweep
from .runner import run_sweep

__all__ = ["SWEEPS", "Sweep", "Variant", "get_sweep", "run_sweep"]
