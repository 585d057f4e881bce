"""``poserepro ablate NAME``: run a paper ablation (a named grid of recipe overrides)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, handle_errors, results_dir, runs_root


def _say(line: str) -> None:
    """Print a log line as text: ``[sine]``-style cell labels are not rich markup."""
    console.print(escape(line), soft_wrap=True)


def _list() -> None:
    from ..sweeps import SWEEPS

    t = Table(title="ablations")
    for c in ("name", "paper", "base recipe", "smoke recipe", "cells"):
        t.add_column(c)
    for s in SWEEPS.values():
        t.add_row(*(escape(x) for x in (s.name, s.paper_ref, s.base, s.smoke_base,
                                        ", ".join(v.name for v in s.variants))))
    console.print(t)


def _dry_run(name: str, smoke: bool, sets: list[str], only: list[str]) -> None:
    from ..errors import RecipeError
    from ..sweeps import commands, get_sweep, plan

    sweep = get_sweep(name)
    cells = plan(sweep, smoke, sets, runs_root())
    unknown = sorted(set(only) - {c.variant.name for c in cells})
    if unknown:
        raise RecipeError(f"ablation {name} has no cell {unknown[0]!r}; its cells: "
                          f"{', '.join(c.variant.name for c in cells)}")
    cells = [c for c in cells if not only or c.variant.name in only]
    _say(f"ablation {sweep.name}{' (smoke: embedded synthetic benchmark)' if smoke else ''}: {sweep.paper_ref}")
    trained: set[str] = set()
    pretrained: set[Path] = set()
    for c in cells:
        v = c.variant
        paper = f"{v.paper_value}" if v.paper_value is not None else "-"
        _say(f"[{v.name}] base {c.base}; train {list(c.train_overrides)}; eval {list(c.eval_overrides)}; "
             f"paper AP {paper}")
        if c.skip:
            _say(f"    skipped: {c.skip}")
            continue
        *pre, train_cmd, eval_cmd = commands(c)  # pre: the DINO pretraining a cell starts from, if any
        if pre and c.train_key not in trained:
            assert c.pretrain is not None
            pdir = c.pretrain[2]
            _say(f"    {pre[0]}" if pdir not in pretrained else f"    (shares the pretraining {pdir})")
            pretrained.add(pdir)
        _say(f"    {train_cmd}" if c.train_key not in trained else f"    (shares the trained model {c.run_dir})")
        _say(f"    {eval_cmd}")
        trained.add(c.train_key)
    _say(f"{len(cells)} cells, {len(trained)} trainings, "
         f"{sum(1 for c in cells if c.skip)} skipped")


@handle_errors
def ablate_cmd(
    name: Annotated[str | None, typer.Argument(help="Sweep name (omit to list the sweeps).")] = None,
    smoke: Annotated[bool, typer.Option(help="Run on the synthetic benchmark with the family's smoke recipe.")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override for every cell.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the cells, their overrides and the commands "
                                          "they amount to; train nothing.")] = False,
    redo: Annotated[bool, typer.Option(help="Evaluate cells again even if their rows are in the CSV.")] = False,
    cell: Annotated[list[str] | None, typer.Option("--cell", help="Run only this cell (repeatable).")] = None,
) -> None:
    """Train + evaluate every cell of a paper ablation; resumable; tidy rows, a markdown table and a PNG figure
    to results/ablation_<name>[_smoke].{csv,md,png}."""
    from ..sweeps import get_sweep, run_sweep

    if name is None:
        _list()
        return
    if dry_run:
        _dry_run(name, smoke, set_ or [], cell or [])
        return
    get_sweep(name)
    out = results_dir() / f"ablation_{name}{'_smoke' if smoke else ''}.csv"
    rows = run_sweep(name, smoke=smoke, extra_overrides=set_ or [], runs_root=runs_root(), out_csv=out, log=_say,
                     redo=redo, only=cell or None)
    t = Table(title=f"ablation {name}{' (synthetic benchmark)' if smoke else ''}")
    for c in ("cell", "AP", "AP50", "paper AP"):
        t.add_column(c)
    by: dict[str, dict[str, object]] = {}
    for r in rows:
        by.setdefault(r["variant"], {})[r["metric"]] = r["value"]
        if r["metric"] == "AP":
            by[r["variant"]]["paper"] = r["paper_value"]
    for v, m in by.items():
        paper = m.get("paper")
        t.add_row(escape(v), f"{m.get('AP', float('nan')):.4f}", f"{m.get('AP50', float('nan')):.4f}",
                  f"{paper:.3f}" if isinstance(paper, float) else "")
    console.print(t)
    _say(f"rows appended to {out} (table {out.with_suffix('.md')}, figure {out.with_suffix('.png')})")
