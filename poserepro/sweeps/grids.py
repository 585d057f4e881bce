"""The paper ablations by name: every sweep of TransPose (:mod:`.tables_transpose`), BTranspose, TFPose and PRTR
(:mod:`.tables_others`). Each names a base recipe (paper scale) and a smoke recipe (the embedded synthetic
benchmark), and its cells (:class:`~.cells.Variant`)."""

from __future__ import annotations

from ..errors import UnknownNameError, suggest
from .cells import Sweep, Variant, res_overrides
from .tables_others import OTHER_SWEEPS
from .tables_transpose import TRANSPOSE_SWEEPS

SWEEPS: dict[str, Sweep] = {s.name: s for s in (*TRANSPOSE_SWEEPS, *OTHER_SWEEPS)}

_res = res_overrides  # the old private name

__all__ = ["SWEEPS", "Sweep", "Variant", "get_sweep", "res_overrides"]


def get_sweep(name: str) -> Sweep:
    """The sweep called ``name`` (UnknownNameError with suggestions otherwise)."""
    if name not in SWEEPS:
        raise UnknownNameError(f"unknown ablation {name!r}{suggest(name, list(SWEEPS))}; "
                               f"choose from {', '.join(SWEEPS)}")
    return SWEEPS[name]
