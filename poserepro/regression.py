"""CI regression of AP: train a smoke recipe for a fixed budget from a fixed seed and compare its AP on the
synthetic val split with the reference stored in ``results/ci_reference.csv``.

A recipe's ``ci:`` section sets the budget (``--set``-style overrides under ``overrides``) and the tolerance.
The reference file also records the AP of the same model untrained, so a reader sees the margin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .engine.loop import build_model, evaluate, is_end_to_end, seed_everything, train
from .errors import RecipeError
from .recipes import load_recipe
from .results import RESULTS_DIR, environment, now, read_rows

REFERENCE_FILE = RESULTS_DIR / "ci_reference.csv"
REFERENCE_COLUMNS = (
    "recipe", "model", "budget", "ap_untrained", "ap_trained", "ap50_trained", "tolerance", "train_seconds",
    "torch", "git_sha", "timestamp",
)
DEFAULT_TOLERANCE = 0.03
# Every CI budget trains and evaluates on the same synthetic set, generated once per CI run.
CI_DATA = ("data.synth_images=600", "data.synth_val_images=100", "data.synth_seed=0")


@dataclass(frozen=True)
class CIRun:
    """Outcome of one CI budget run."""

    recipe: str
    model: str
    budget: str
    ap_untrained: float
    ap_trained: float
    ap50_trained: float
    tolerance: float
    train_seconds: float


def ci_overrides(recipe_name: str, data_root: str | Path) -> tuple[list[str], float]:
    """The recipe's CI overrides (``ci.overrides``) plus the data root, and its tolerance."""
    base = load_recipe(recipe_name)
    ci = dict(base.ci)
    over = list(CI_DATA) + [str(o) for o in ci.get("overrides", [])] + [f"data.root={data_root}"]
    return over, float(ci.get("tolerance", DEFAULT_TOLERANCE))


def run_ci_budget(
    recipe_name: str, workdir: str | Path, data_root: str | Path | None = None, with_untrained: bool = True,
) -> CIRun:
    """Train ``recipe_name`` with its CI budget in ``workdir`` and evaluate the trained (and, with
    ``with_untrained``, the untrained) model; ``ap_untrained`` is NaN when it was not measured.

    Evaluation: synthetic val, flip test on, pycocotools; detector boxes unless the recipe's ``ci.boxes`` is
    ``gt`` (PRTR two-stage: at a CI budget its detector-box AP is dominated by how it scores the false-positive
    boxes, so the GT-box AP is the one that moves with the keypoints). End-to-end models take whole images and
    no boxes, so they have no ``ci.boxes``.
    """
    workdir = Path(workdir)
    over, tol = ci_overrides(recipe_name, data_root or workdir / "synthetic")
    rec = load_recipe(recipe_name, over)
    seed_everything(rec.train.seed)
    untrained = build_model(rec)
    e2e = is_end_to_end(untrained)
    boxes = str(dict(rec.ci).get("boxes", "none" if e2e else "detected"))
    if boxes not in (("none",) if e2e else ("detected", "gt")):
        allowed = "left out (end-to-end models take no boxes)" if e2e else "'detected' or 'gt'"
        raise RecipeError(f"{recipe_name}: ci.boxes must be {allowed}, got {boxes!r}")
    gt = boxes == "gt"
    ap0 = float("nan")
    if with_untrained:
        with torch.inference_mode():
            ap0 = evaluate(untrained, rec, workdir / "untrained", split="val", use_gt_boxes=gt).metrics["AP"]
    t0 = time.perf_counter()
    result = train(rec, workdir / "run")
    secs = time.perf_counter() - t0
    model = build_model(rec)
    model.load_state_dict(torch.load(result.checkpoint, map_location="cpu", weights_only=True)["model"])
    with torch.inference_mode():
        m = evaluate(model, rec, workdir / "run", split="val", use_gt_boxes=gt).metrics
    given = "whole images (end-to-end)" if e2e else f"{boxes} boxes"
    budget = f"{rec.schedule.epochs} ep x {rec.data.synth_images} img, bs {rec.train.batch_size}, {given}"
    return CIRun(recipe_name, rec.model.name, budget, ap0, m["AP"], m["AP50"], tol, secs)


def reference_rows(path: Path = REFERENCE_FILE) -> dict[str, dict[str, str]]:
    """The stored reference rows keyed by recipe (the last row of a recipe wins)."""
    return {r["recipe"]: r for r in read_rows(path)}


def to_row(run: CIRun) -> dict[str, object]:
    """A reference-file row for ``run`` with provenance."""
    env = environment()
    return {
        "recipe": run.recipe, "model": run.model, "budget": run.budget, "ap_untrained": round(run.ap_untrained, 4),
        "ap_trained": round(run.ap_trained, 4), "ap50_trained": round(run.ap50_trained, 4),
        "tolerance": run.tolerance, "train_seconds": round(run.train_seconds, 1), "torch": env["torch"],
        "git_sha": env["git_sha"], "timestamp": now(),
    }
