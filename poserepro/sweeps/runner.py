"""Run a sweep: train each distinct training configuration once (resuming interrupted runs, skipping finished
ones), evaluate every variant, append tidy rows to ``results/ablation_<sweep>.csv``."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..engine import build_model, evaluate, train
from ..engine.build import with_device
from ..engine.checkpoint import load_checkpoint
from ..errors import RecipeError
from ..models.registry import model_entrypoint
from ..recipes import Recipe, load_recipe
from ..weights.state import load_model_weights
from .grids import Sweep, Variant, get_sweep


def _check_args(recipe: Recipe, variant: Variant) -> None:
    params = inspect.signature(model_entrypoint(recipe.model.name)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in recipe.model.args if k not in params and k not in ("input_size", "num_joints")]
    if unknown:
        raise RecipeError(f"variant {variant.name!r}: model {recipe.model.name} takes no argument {unknown[0]!r}")


def _train_key(overrides: list[str]) -> str:
    return hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:10]


def _finished(run_dir: Path, epochs: int) -> bool:
    ck = run_dir / "checkpoint.pth"
    return ck.is_file() and int(load_checkpoint(ck).get("epoch", -1)) >= epochs - 1


def plan(sweep: Sweep, smoke: bool, extra: list[str]) -> list[tuple[Variant, Recipe, Recipe, str]]:
    """(variant, training recipe, evaluation recipe, training key) for every variant; checks all overrides first."""
    base = sweep.smoke_base if smoke else sweep.base
    out = []
    for v in sweep.variants:
        own = v.smoke if (smoke and v.smoke is not None) else v.overrides
        train_over = list(own) + list(extra)
        ev = v.smoke_eval if (smoke and v.smoke_eval is not None) else v.eval_overrides
        eval_over = list(ev)
        rec_train = with_device(load_recipe(base, train_over))
        rec_eval = with_device(load_recipe(base, train_over + eval_over))
        _check_args(rec_train, v)
        out.append((v, rec_train, rec_eval, _train_key(train_over)))
    return out


def run_sweep(
    name: str, smoke: bool = True, extra_overrides: list[str] | None = None, runs_root: Path = Path("runs"),
    out_csv: Path | None = None, log: Callable[[str], None] = print, train_progress: Any = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every variant of sweep ``name``; returns the tidy rows it appended."""
    from ..results import RESULTS_DIR, append_rows, tidy_rows

    sweep = get_sweep(name)
    extra = list(extra_overrides or [])
    cells = plan(sweep, smoke, extra)
    out_csv = out_csv or RESULTS_DIR / f"ablation_{name}{'_smoke' if smoke else ''}.csv"
    all_rows: list[dict[str, Any]] = []
    for v, rec_train, rec_eval, key in cells:
        run_dir = runs_root / "ablate" / name / f"{'smoke-' if smoke else ''}{key}"
        if _finished(run_dir, rec_train.schedule.epochs):
            log(f"[{v.name}] trained model found in {run_dir}")
        else:
            resume = (run_dir / "checkpoint.pth").is_file()
            log(f"[{v.name}] {'resuming' if resume else 'training'} {rec_train.name} → {run_dir}")
            train(rec_train, run_dir, resume=resume, progress=train_progress)
        model = build_model(rec_eval)
        load_model_weights(model, run_dir / "checkpoint.pth")
        with torch.inference_mode():
            res = evaluate(model, rec_eval, run_dir, split="val", results_name=f"results_{v.name}.json")
        log(f"[{v.name}] AP {res.metrics.get('AP', float('nan')):.4f}")
        rows = tidy_rows(rec_eval, res.metrics, "val", "gt" if rec_eval.eval.use_gt_boxes else "detected",
                         rec_eval.eval.flip, run_dir, sum(p.numel() for p in model.parameters()))
        for r in rows:
            r["variant"] = v.name
            r["table_ref"] = sweep.paper_ref
            if r["metric"] == "AP":
                r["paper_value"] = v.paper_value / 100 if (v.paper_value and not smoke) else ""
            else:
                r["paper_value"] = ""
        append_rows(out_csv, rows)
        all_rows += rows
    return all_rows
