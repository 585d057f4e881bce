"""Paper ablations as named grids of recipe overrides, and a resumable runner (``poserepro ablate``)."""

from .grids import SWEEPS, Sweep, Variant, get_sweep
from .plan import Cell, check_model_args, commands, plan
from .runner import run_sweep

__all__ = ["SWEEPS", "Cell", "Sweep", "Variant", "check_model_args", "commands", "get_sweep", "plan", "run_sweep"]
