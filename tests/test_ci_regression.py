"""CI regression of AP: retrain each smoke recipe with its fixed CI budget and compare with
``results/ci_reference.csv`` (written by ``scripts/ci_reference.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from poserepro.recipes import load_recipe
from poserepro.regression import REFERENCE_FILE, ci_overrides, reference_rows, run_ci_budget

REFS = reference_rows()


def test_reference_file_exists_and_margins_are_real() -> None:
    assert REFERENCE_FILE.is_file(), "results/ci_reference.csv missing: run scripts/ci_reference.py"
    assert "transpose-r-smoke" in REFS
    families = {"transpose-r-smoke", "transpose-h-smoke", "simplebaseline-smoke", "btranspose-smoke", "tfpose-smoke",
                "prtr-smoke", "prtr-e2e-smoke"}
    assert families <= set(REFS), f"CI reference rows missing for {sorted(families - set(REFS))}"
    for name, row in REFS.items():
        margin = 2 * float(row["tolerance"])
        trained, untrained = float(row["ap_trained"]), float(row["ap_untrained"])
        assert trained > untrained + margin, f"{name}: reference too close to untrained"


@pytest.fixture(scope="module")
def ci_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic benchmark at the CI size, shared by every family (all CI budgets use the same data)."""
    from poserepro.engine.data import ensure_synthetic

    root = tmp_path_factory.mktemp("ci") / "synthetic"
    over, _ = ci_overrides("transpose-r-smoke", root)
    ensure_synthetic(load_recipe("transpose-r-smoke", over).data)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(REFS))
def test_ap_does_not_regress(recipe: str, ci_data: Path, tmp_path: Path) -> None:
    ref = REFS[recipe]
    run = run_ci_budget(recipe, tmp_path, data_root=ci_data, with_untrained=False)  # untrained AP: the reference's
    tol = float(ref["tolerance"])
    assert run.ap_trained >= float(ref["ap_trained"]) - tol, (
        f"{recipe}: AP {run.ap_trained:.4f} fell more than {tol} below the reference {ref['ap_trained']}"
    )
    assert run.ap_trained > float(ref["ap_untrained"]) + tol
