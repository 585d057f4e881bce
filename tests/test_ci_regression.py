"""CI regression: retrain each smoke recipe with its fixed CI budget and compare every guarded metric with
``results/ci_reference.csv`` (written by ``scripts/ci_reference.py``, tolerances from the measured spread)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from poserepro.recipes import list_recipes, load_recipe
from poserepro.regression import (
    REFERENCE_FILE,
    SPREAD_FILE,
    CIRun,
    check,
    ci_overrides,
    guarded_metrics,
    read_rows,
    reference_rows,
    run_ci_budgets,
    tolerance_from_spread,
)

REFS = reference_rows()
RECIPES = sorted({recipe for recipe, _ in REFS})
FAMILIES = {"transpose-r-smoke", "transpose-h-smoke", "simplebaseline-smoke", "btranspose-smoke", "tfpose-smoke",
            "prtr-smoke", "prtr-e2e-smoke"}
# What a different machine may change (issue: seeds, threads, CPU kernel level); every row must have seen all.
REQUIRED_VARIANTS = {"seed1", "seed2", "threads2", "avx2", "sse"}


def _row(reference: float, tolerance: float, untrained: float = 0.0) -> dict[str, str]:
    return {"recipe": "r", "metric": "AP", "reference": str(reference), "tolerance": str(tolerance),
            "untrained": str(untrained)}


def test_tolerance_from_spread_by_hand() -> None:
    assert tolerance_from_spread(0.40, [0.41, 0.37, 0.395]) == pytest.approx(0.06)   # 2 x |0.37 - 0.40|
    assert tolerance_from_spread(0.40, [0.401]) == pytest.approx(0.01)                # the floor
    assert tolerance_from_spread(0.40, []) == pytest.approx(0.01)


def test_check_by_hand() -> None:
    assert check(_row(0.40, 0.05), 0.36) is None
    assert "below the reference" in check(_row(0.40, 0.05), 0.34)
    assert "untrained" in check(_row(0.10, 0.09, untrained=0.0), 0.05)


def test_every_family_has_rows_with_measured_spread() -> None:
    assert REFERENCE_FILE.is_file(), "results/ci_reference.csv missing: run scripts/ci_reference.py"
    assert FAMILIES <= set(RECIPES), f"CI reference rows missing for {sorted(FAMILIES - set(RECIPES))}"
    with_ci = {r for r in list_recipes() if load_recipe(r).ci.get("overrides")}
    assert with_ci == set(RECIPES), "every recipe with a ci: section needs reference rows, and only those"
    for recipe in RECIPES:
        assert {m for r, m in REFS if r == recipe} == set(guarded_metrics(recipe)), recipe
    for (recipe, metric), row in REFS.items():
        assert REQUIRED_VARIANTS <= set(row["variants"].split("+")), f"{recipe} {metric}: spread not measured"


@pytest.mark.parametrize("key", sorted(REFS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_reference_is_robust_and_sensitive(key: tuple[str, str]) -> None:
    """Consistency of the committed numbers: the tolerance covers the spread with a margin, the floor stays clear
    of the untrained model, and the planted regression (10x smaller lr) fails the check."""
    row = REFS[key]
    ref, tol, untrained = float(row["reference"]), float(row["tolerance"]), float(row["untrained"])
    spread = [float(v["value"]) for v in read_rows(SPREAD_FILE)
              if (v["recipe"], v["metric"]) == key and v["variant"] not in ("base", "planted")]
    assert spread, f"{key}: no spread rows in {SPREAD_FILE.name}"
    assert tol == pytest.approx(tolerance_from_spread(ref, spread), abs=1e-4)
    assert all(check(row, v) is None for v in spread), f"{key}: a spread run would fail its own check"
    assert ref - tol > untrained + tol, f"{key}: reference too close to untrained ({untrained} vs {ref} - {tol})"
    assert row["planted"] != "" and not math.isnan(float(row["planted"]))
    assert check(row, float(row["planted"])) is not None, f"{key}: the planted regression passes the check"


@pytest.fixture(scope="module")
def ci_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic benchmark at the CI size, shared by every family (all CI budgets use the same data)."""
    from poserepro.data.splits import ensure_synthetic

    root = tmp_path_factory.mktemp("ci") / "synthetic"
    ensure_synthetic(load_recipe("transpose-r-smoke", ci_overrides("transpose-r-smoke", root)).data)
    return root


@pytest.fixture(scope="module")
def ci_runs(ci_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, CIRun | BaseException]:
    """Every CI budget, each in a fresh 1-thread process, two at a time (as many as the machine has cores)."""
    return run_ci_budgets(RECIPES, tmp_path_factory.mktemp("ci_runs"), ci_data, workers=min(2, os.cpu_count() or 1))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES)
def test_ap_does_not_regress(recipe: str, ci_runs: dict[str, CIRun | BaseException]) -> None:
    run = ci_runs[recipe]
    if isinstance(run, BaseException):
        raise run
    for (r, metric), row in REFS.items():  # shown with pytest -s: the measured value beside the reference
        if r == recipe:
            print(f"CI {recipe} {metric}: {run.trained[metric]:.4f} (reference {float(row['reference']):.4f}, "
                  f"tolerance {row['tolerance']}, {run.train_seconds:.0f} s)")
    failures = [msg for (r, metric), row in REFS.items() if r == recipe and (msg := check(row, run.trained[metric]))]
    assert not failures, "; ".join(failures)
