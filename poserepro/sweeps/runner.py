"""Run a sweep: train each distinct training configuration once (resuming interrupted runs, skipping finished
ones), evaluate every cell not yet in ``results/ablation_<sweep>[_smoke].csv``, append its tidy rows, then write
the sweep's markdown table and figure beside the CSV."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..engine import build_model, evaluate, train
from ..engine.checkpoint import load_checkpoint
from ..errors import DataError, RecipeError
from ..weights.state import load_model_weights
from .grids import Sweep, get_sweep
from .plan import Cell, budget, plan

#: the tidy ablation table: the result columns plus the sweep, the cell's identity, its budget and timings
ABLATION_COLUMNS = (
    "recipe", "variant", "series", "model", "paper", "table_ref", "dataset", "split", "input_size", "boxes", "flip",
    "metric", "value", "paper_value", "params", "gflops", "device", "git_sha", "torch", "timestamp", "seed", "run_dir",
    "sweep", "cell_key", "budget", "train_seconds", "eval_seconds", "note", "command",
)


def sweep_command(name: str, smoke: bool, extra: list[str]) -> str:
    """The ``poserepro ablate`` command line that produces a sweep's rows (recorded in every row)."""
    import shlex

    return " ".join(["poserepro", "ablate", name, *(["--smoke"] if smoke else []),
                     *(f"--set {shlex.quote(o)}" for o in extra)])


def _finished(run_dir: Path, epochs: int) -> bool:
    ck = run_dir / "checkpoint.pth"
    return ck.is_file() and int(load_checkpoint(ck).get("epoch", -1)) >= epochs - 1


def train_seconds(run_dir: Path) -> float:
    """Seconds the run's epochs took (``log.jsonl``; a resumed epoch counts once, with its last record)."""
    per_epoch: dict[int, float] = {}
    path = run_dir / "log.jsonl"
    for line in (path.read_text().splitlines() if path.is_file() else []):
        try:
            rec = json.loads(line)
            per_epoch[int(rec["epoch"])] = float(rec.get("seconds", 0.0))
        except (ValueError, KeyError, TypeError):
            continue
    return round(sum(per_epoch.values()), 1)


def trained_params(model: torch.nn.Module, checkpoint: Path) -> int:
    """Parameters of the model as trained (a learnable position table counts at its training grid, not at the
    test grid it was resized to)."""
    from ..io import load_torch
    from ..weights.fit import model_state_from

    state = model_state_from(load_torch(checkpoint))
    return sum(int(state[k].numel()) if k in state else p.numel() for k, p in model.named_parameters())


def _check_data(sweep: Sweep, cells: list[Cell], smoke: bool) -> None:
    """At paper scale the datasets must be there: one line saying so (and what to run) otherwise."""
    if smoke:
        return
    for c in cells:
        if c.train_recipe is not None and c.train_recipe.data.dataset != "synthetic":
            root = Path(c.train_recipe.data.root)
            if not (root / c.train_recipe.data.train_ann).is_file():
                raise DataError(f"ablation {sweep.name} at paper scale needs {c.train_recipe.data.dataset} under "
                                f"{root} (poserepro data download {c.train_recipe.data.dataset}); --smoke runs it on "
                                "the embedded synthetic benchmark")


def _done_keys(csv_path: Path) -> set[str]:
    from ..results import read_rows

    return {r.get("cell_key", "") for r in read_rows(csv_path)}


def _rows(cell: Cell, metrics: dict[str, float], model: torch.nn.Module, smoke: bool, t_train: float,
          t_eval: float, command: str) -> list[dict[str, Any]]:
    from ..results import tidy_rows

    rec = cell.eval_recipe
    assert rec is not None and cell.train_recipe is not None
    v = cell.variant
    params = trained_params(model, cell.run_dir / "checkpoint.pth")
    rows = tidy_rows(rec, metrics, "val", "gt" if rec.eval.use_gt_boxes else "detected", rec.eval.flip,
                     cell.run_dir, params)
    if rows:
        rows.append({**rows[0], "metric": "params_M", "value": params / 1e6})
    out = []
    for r in rows:
        paper: Any = ""
        if r["metric"] == "AP" and v.paper_value is not None:
            paper = v.paper_value / 100
        elif r["metric"] == "params_M" and v.paper_params_m is not None:
            paper = v.paper_params_m
        out.append({**r, "variant": v.name, "series": v.series, "table_ref": get_sweep(cell.sweep).paper_ref,
                    "paper_value": paper, "sweep": cell.sweep, "cell_key": cell.cell_key,
                    "budget": budget(cell.train_recipe), "train_seconds": t_train, "eval_seconds": round(t_eval, 1),
                    "note": v.note + (" (paper value on COCO; ours on the synthetic benchmark)" if smoke else ""),
                    "command": command})
    return out


def _pretrain_once(cell: Cell, log: Callable[[str], None]) -> None:
    """Run the cell's DINO pretraining unless its teacher backbone is already there (resuming a cut run)."""
    from ..pretrain.recipe import load_pretrain_recipe
    from ..pretrain.train import BACKBONE_FILE, pretrain_dino

    if cell.pretrain is None:
        return
    stem, over, pdir = cell.pretrain
    if (pdir / BACKBONE_FILE).is_file():
        return
    resume = (pdir / "checkpoint.pth").is_file()
    log(f"[{cell.variant.name}] {'resuming' if resume else 'running'} DINO pretraining {stem} → {pdir}")
    pretrain_dino(load_pretrain_recipe(stem, list(over)), pdir, resume=resume)


def _train_once(cell: Cell, trained: set[str], log: Callable[[str], None], progress: Any) -> None:
    rec = cell.train_recipe
    assert rec is not None
    _pretrain_once(cell, log)
    if cell.train_key in trained or _finished(cell.run_dir, rec.schedule.epochs):
        if cell.train_key not in trained:
            log(f"[{cell.variant.name}] trained model found in {cell.run_dir}")
        trained.add(cell.train_key)
        return
    resume = (cell.run_dir / "checkpoint.pth").is_file()
    log(f"[{cell.variant.name}] {'resuming' if resume else 'training'} {rec.name} → {cell.run_dir}")
    train(rec, cell.run_dir, resume=resume, progress=progress)
    trained.add(cell.train_key)


def run_sweep(
    name: str, smoke: bool = True, extra_overrides: list[str] | None = None, runs_root: Path = Path("runs"),
    out_csv: Path | None = None, log: Callable[[str], None] = print, train_progress: Any = None,
    redo: bool = False, outputs: bool = True, only: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every cell of sweep ``name``; returns the tidy rows it appended. Cells whose rows are
    already in ``out_csv`` are skipped (``redo`` evaluates them again); with ``outputs`` the sweep's markdown table
    and PNG figure are (re)written beside the CSV; ``only`` restricts the run to the cells named there."""
    from ..results import append_rows

    sweep = get_sweep(name)
    cells = plan(sweep, smoke, list(extra_overrides or []), runs_root)
    if only:
        unknown = sorted(set(only) - {c.variant.name for c in cells})
        if unknown:
            raise RecipeError(f"ablation {name} has no cell {unknown[0]!r}; its cells: "
                              f"{', '.join(c.variant.name for c in cells)}")
        cells = [c for c in cells if c.variant.name in only]
    _check_data(sweep, cells, smoke)
    out_csv = out_csv or Path("results") / f"ablation_{name}{'_smoke' if smoke else ''}.csv"
    done = set() if redo else _done_keys(out_csv)
    trained: set[str] = set()
    all_rows: list[dict[str, Any]] = []
    for cell in cells:
        v = cell.variant
        if cell.skip:
            log(f"[{v.name}] skipped: {cell.skip}")
            continue
        if cell.cell_key in done:
            log(f"[{v.name}] already evaluated: rows in {out_csv}")
            continue
        _train_once(cell, trained, log, train_progress)
        assert cell.eval_recipe is not None
        t0 = time.perf_counter()
        model = build_model(cell.eval_recipe)
        load_model_weights(model, cell.run_dir / "checkpoint.pth")
        with torch.inference_mode():
            res = evaluate(model, cell.eval_recipe, cell.run_dir, split="val", results_name=f"results_{v.name}.json")
        log(f"[{v.name}] AP {res.metrics.get('AP', float('nan')):.4f}")
        rows = _rows(cell, res.metrics, model, smoke, train_seconds(cell.run_dir), time.perf_counter() - t0,
                     sweep_command(name, smoke, list(extra_overrides or [])))
        append_rows(out_csv, rows, ABLATION_COLUMNS)
        all_rows += rows
    if outputs and out_csv.is_file():
        from .outputs import write_outputs

        for path in write_outputs(sweep, out_csv, runs=cells):
            log(f"wrote {path}")
    return all_rows
