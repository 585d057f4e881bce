"""CI regression of AP: train a smoke recipe for a fixed budget from a fixed seed and compare what it guards on
the synthetic val split with the reference stored in ``results/ci_reference.csv``.

A recipe's ``ci:`` section sets the budget (``--set``-style overrides under ``overrides``), the metrics it guards
(``guard``, default ``[AP]``) and, for two-stage models, the boxes (``boxes: gt|detected``). The tolerance of each
guarded metric is not hand-set: ``scripts/ci_reference.py`` re-trains the budget the way another machine would see
it (other seeds, 2 threads instead of 1, AVX2 and non-vectorised CPU kernels) and the tolerance is
``TOLERANCE_MARGIN`` times the largest deviation it saw from the reference (at least ``TOLERANCE_FLOOR``). The
reference file also records the untrained value and a planted regression (the same budget with a 10x smaller
learning rate) so a reader sees that the check is both robust and sensitive.

CI budgets train on ``CI_THREADS`` (one) intra-op thread: on a shared 2-core machine two OpenMP threads that spin
at every barrier slow down far more than twice when another process holds a core (a CI run took 2 h 26 min under
load against 17 min idle), while one thread degrades gracefully; the spread covers the 2-thread result too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .engine import build_model, evaluate, seed_everything, train
from .errors import RecipeError
from .families import family_of
from .io import load_torch
from .recipes import load_recipe
from .results import environment, now, read_rows  # noqa: F401  (read_rows: re-exported for tests)

# The committed reference lives in the source checkout (CI and maintainers); it is not a user output.
REFERENCE_FILE = Path(__file__).resolve().parent.parent / "results" / "ci_reference.csv"
SPREAD_FILE = REFERENCE_FILE.with_name("ci_spread.csv")
REFERENCE_COLUMNS = (
    "recipe", "model", "budget", "metric", "untrained", "reference", "spread_lo", "spread_hi", "variants",
    "tolerance", "planted", "train_seconds", "torch", "git_sha", "timestamp",
)
SPREAD_COLUMNS = ("recipe", "variant", "seed", "threads", "isa", "metric", "value", "train_seconds", "timestamp")
TOLERANCE_MARGIN = 2.0
TOLERANCE_FLOOR = 0.01
# Every CI budget trains and evaluates on the same synthetic set, generated once per CI run.
CI_DATA = ("data.synth_images=600", "data.synth_val_images=100", "data.synth_seed=0")
# End-to-end diagnostics (keypoint AP on GT-box crops, detector box AP) that a recipe may guard.
E2E_METRICS = ("AP_oracle_boxes", "box_AP", "box_AP50")
CI_THREADS = 1


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class CIRun:
    """Outcome of one CI budget run: every metric measured, trained and (NaN where not run) untrained."""

    recipe: str
    model: str
    budget: str
    guard: tuple[str, ...]
    trained: dict[str, float]
    untrained: dict[str, float] = field(default_factory=dict)
    train_seconds: float = math.nan


def ci_overrides(recipe_name: str, data_root: str | Path, extra: Iterable[str] = ()) -> list[str]:
    """The recipe's CI overrides (``ci.overrides``) plus the shared CI data, the data root and ``extra``."""
    ci = dict(load_recipe(recipe_name).ci)
    return list(CI_DATA) + [str(o) for o in ci.get("overrides", [])] + [f"data.root={data_root}", *extra]


def guarded_metrics(recipe_name: str) -> tuple[str, ...]:
    """The metrics the recipe's CI budget guards (``ci.guard``; default ``("AP",)``)."""
    guard = tuple(str(m) for m in dict(load_recipe(recipe_name).ci).get("guard", ["AP"]))
    unknown = [m for m in guard if m not in ("AP", "AP50", *E2E_METRICS)]
    if unknown:
        raise RecipeError(f"{recipe_name}: ci.guard names unknown metrics {unknown}; use AP, AP50 or {E2E_METRICS}")
    return guard


def _measure(model: torch.nn.Module, rec, workdir: Path, gt: bool, guard: tuple[str, ...]) -> dict[str, float]:
    with torch.inference_mode():
        m = evaluate(model, rec, workdir, split="val", use_gt_boxes=gt).metrics
        out = {"AP": float(m["AP"]), "AP50": float(m["AP50"])}
        if any(g in E2E_METRICS for g in guard):
            out.update(e2e_diagnostics(model, rec))
    return out


def run_ci_budget(
    recipe_name: str, workdir: str | Path, data_root: str | Path | None = None, with_untrained: bool = True,
    extra_overrides: Iterable[str] = (), threads: int = CI_THREADS,
) -> CIRun:
    """Train ``recipe_name`` with its CI budget in ``workdir`` and evaluate the trained (and, with
    ``with_untrained``, the untrained) model on the synthetic val split.

    Evaluation: flip test on, pycocotools; detector boxes unless the recipe's ``ci.boxes`` is ``gt`` (PRTR
    two-stage: at a CI budget its detector-box AP is dominated by how it scores the false-positive boxes, so the
    GT-box AP is the one that moves with the keypoints). End-to-end models take whole images and no boxes.
    Training and evaluation run on ``threads`` intra-op threads (the reference is recorded with ``CI_THREADS``).
    """
    with intra_op_threads(threads):
        return _run_ci_budget(recipe_name, Path(workdir), data_root, with_untrained, extra_overrides)


def _run_ci_budget(
    recipe_name: str, workdir: Path, data_root: str | Path | None, with_untrained: bool, extra_overrides: Iterable[str],
) -> CIRun:
    rec = load_recipe(recipe_name, ci_overrides(recipe_name, data_root or workdir / "synthetic", extra_overrides))
    guard = guarded_metrics(recipe_name)
    seed_everything(rec.train.seed)
    untrained = build_model(rec)
    e2e = family_of(untrained).whole_image
    boxes = str(dict(rec.ci).get("boxes", "none" if e2e else "detected"))
    if boxes not in (("none",) if e2e else ("detected", "gt")):
        allowed = "left out (end-to-end models take no boxes)" if e2e else "'detected' or 'gt'"
        raise RecipeError(f"{recipe_name}: ci.boxes must be {allowed}, got {boxes!r}")
    if not e2e and any(g in E2E_METRICS for g in guard):
        raise RecipeError(f"{recipe_name}: ci.guard {E2E_METRICS} apply to end-to-end models only")
    gt = boxes == "gt"
    before = _measure(untrained, rec, workdir / "untrained", gt, guard) if with_untrained else {}
    t0 = time.perf_counter()
    result = train(rec, workdir / "run")
    secs = time.perf_counter() - t0
    model = build_model(rec)
    model.load_state_dict(load_torch(result.checkpoint)["model"])
    after = _measure(model, rec, workdir / "run", gt, guard)
    given = "whole images (end-to-end)" if e2e else f"{boxes} boxes"
    budget = f"{rec.schedule.epochs} ep x {rec.data.synth_images} img, bs {rec.train.batch_size}, {given}"
    return CIRun(recipe_name, rec.model.name, budget, guard, after, before, secs)


def _ci_child(recipe_name: str, workdir: str, data_root: str) -> CIRun:
    return run_ci_budget(recipe_name, workdir, data_root=data_root, with_untrained=False)


def run_ci_budgets(recipe_names: Iterable[str], workdir: str | Path, data_root: str | Path,
                   workers: int = 2) -> dict[str, CIRun | BaseException]:
    """Run several CI budgets, each in a fresh spawned process on ``CI_THREADS`` threads, ``workers`` at a time
    (the longest first, by the reference file's train time); a failed run gives its exception.

    A fresh process per budget is how ``scripts/ci_reference.py`` recorded the references, and on a 2-core
    machine two 1-thread trainings side by side halve the wall time of the CI regression.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    names = list(recipe_names)
    rows = read_rows(REFERENCE_FILE) if REFERENCE_FILE.is_file() else []
    secs = {r["recipe"]: float(r["train_seconds"] or 0) for r in rows}
    names.sort(key=lambda n: -secs.get(n, 0.0))
    pinned = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({k: str(CI_THREADS) for k in pinned})  # children start with one OpenMP thread
    out: dict[str, CIRun | BaseException] = {}
    try:
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn")) as ex:
            futures = {n: ex.submit(_ci_child, n, str(Path(workdir) / n), str(data_root)) for n in names}
            for n, fut in futures.items():
                try:
                    out[n] = fut.result()
                except BaseException as err:  # noqa: BLE001 - reported per recipe by the caller
                    out[n] = err
    finally:
        for k, v in pinned.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def e2e_diagnostics(model: torch.nn.Module, rec) -> dict[str, float]:
    """End-to-end PRTR on val: keypoint AP with the GT boxes as crops (an oracle detector) and the COCO box AP of
    its person detector, the two halves whose product the end-to-end AP is."""
    from .codecs.whole_image import predict_with_boxes
    from .data.splits import split_files
    from .evaluation.coco import evaluate_keypoints, evaluate_person_boxes
    from .families.whole_image import whole_image_dataset
    from .keypoints import get_spec

    ds = whole_image_dataset(rec, "val", train=False)
    kpts: list[dict] = []
    boxes: list[dict] = []
    for start in range(0, len(ds), rec.eval.batch_size):
        batch = ds.collate([ds[i] for i in range(start, min(start + rec.eval.batch_size, len(ds)))])
        k, b = predict_with_boxes(model, batch["image"], [t["boxes"] for t in batch["targets"]], batch["image_id"],
                                  batch["orig_size"], in_vis_thre=rec.eval.in_vis_thre)
        kpts += k
        boxes += b
    ann = split_files(rec.data, "val").ann_file
    box = evaluate_person_boxes(ann, boxes)
    return {"AP_oracle_boxes": float(evaluate_keypoints(ann, kpts, sigmas=get_spec("coco").sigmas)["AP"]),
            "box_AP": float(box["AP"]), "box_AP50": float(box["AP50"])}


def reference_rows(path: Path = REFERENCE_FILE) -> dict[tuple[str, str], dict[str, str]]:
    """The stored reference rows keyed by (recipe, metric); the last row of a key wins."""
    return {(r["recipe"], r["metric"]): r for r in read_rows(path)}


def tolerance_from_spread(reference: float, values: Iterable[float]) -> float:
    """``TOLERANCE_MARGIN`` x the largest deviation of ``values`` from ``reference``, at least the floor."""
    dev = max((abs(v - reference) for v in values), default=0.0)
    return round(max(TOLERANCE_FLOOR, TOLERANCE_MARGIN * dev), 4)


def check(row: dict[str, str], value: float) -> str | None:
    """None when ``value`` passes the row's guard, else a one-line reason (for the test's assertion)."""
    ref, tol, untrained = float(row["reference"]), float(row["tolerance"]), float(row["untrained"])
    name = f"{row['recipe']} {row['metric']}"
    if value < ref - tol:
        return f"{name}: {value:.4f} fell more than {tol} below the reference {ref:.4f}"
    if value <= untrained + tol:
        return f"{name}: {value:.4f} is within {tol} of the untrained model ({untrained:.4f})"
    return None


def base_rows(run: CIRun) -> list[dict[str, object]]:
    """Reference-file rows (one per guarded metric) for the reference run ``run``; spread columns left empty."""
    env = environment()
    return [{
        "recipe": run.recipe, "model": run.model, "budget": run.budget, "metric": m,
        "untrained": round(run.untrained.get(m, math.nan), 4), "reference": round(run.trained[m], 4),
        "train_seconds": round(run.train_seconds, 1), "torch": env["torch"], "git_sha": env["git_sha"],
        "timestamp": now(),
    } for m in run.guard]
