"""``poserepro ablate NAME``: run a paper ablation (a named grid of recipe overrides)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import console, handle_errors, results_dir, runs_root


@handle_errors
def ablate_cmd(
    name: Annotated[str | None, typer.Argument(help="Sweep name (omit to list the sweeps).")] = None,
    smoke: Annotated[bool, typer.Option(help="Run on the synthetic benchmark with the family's smoke recipe.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override for every variant.")] = None,
) -> None:
    """Train + evaluate every variant of a paper ablation; resumable; tidy rows to results/ablation_<name>.csv."""
    from ..sweeps import SWEEPS, run_sweep

    if name is None:
        t = Table(title="ablations")
        for c in ("name", "paper", "base recipe", "smoke recipe", "variants"):
            t.add_column(c)
        for s in SWEEPS.values():
            t.add_row(s.name, s.paper_ref, s.base, s.smoke_base, ", ".join(v.name for v in s.variants))
        console.print(t)
        return
    out = results_dir() / f"ablation_{name}{'_smoke' if smoke else ''}.csv"
    rows = run_sweep(name, smoke=smoke, extra_overrides=set_ or [], runs_root=runs_root(), out_csv=out,
                     log=console.print)
    t = Table(title=f"ablation {name}{' (synthetic benchmark)' if smoke else ''}")
    for c in ("variant", "AP", "AP50", "paper AP"):
        t.add_column(c)
    by: dict[str, dict[str, str]] = {}
    for r in rows:
        by.setdefault(r["variant"], {})[r["metric"]] = r["value"]
        if r["metric"] == "AP":
            by[r["variant"]]["paper"] = r["paper_value"]
    for v, m in by.items():
        paper = m.get("paper")
        t.add_row(v, f"{m.get('AP', float('nan')):.4f}", f"{m.get('AP50', float('nan')):.4f}",
                  f"{paper:.3f}" if isinstance(paper, float) else "")
    console.print(t)
    console.print(f"rows appended to {out}")
