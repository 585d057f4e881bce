"""Regenerate ``results/ci_reference.csv``: train each smoke recipe with its CI budget and record the AP of the
trained and the untrained model on the synthetic val split.

    python scripts/ci_reference.py                      # every recipe with a ci: section
    python scripts/ci_reference.py transpose-r-smoke    # one recipe (its row is replaced)
    python scripts/ci_reference.py --tolerances-only    # copy the recipes' ci.tolerance into the rows, no training
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from poserepro.engine.checkpoint import atomic_write_text
from poserepro.recipes import list_recipes, load_recipe
from poserepro.regression import REFERENCE_COLUMNS, REFERENCE_FILE, reference_rows, run_ci_budget, to_row
from poserepro.results import append_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="*", help="recipe stems (default: every recipe with a ci: section)")
    ap.add_argument("--tolerances-only", action="store_true",
                    help="only update the tolerance column from the recipes' ci sections (no training)")
    args = ap.parse_args()
    names = args.recipes or [r for r in list_recipes() if load_recipe(r).ci.get("overrides")]
    rows = reference_rows()
    if args.tolerances_only:
        names = []
        for name, row in rows.items():
            row["tolerance"] = str(float(load_recipe(name).ci.get("tolerance", row["tolerance"])))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synthetic"
        for name in names:
            run = run_ci_budget(name, Path(tmp) / name, data_root=data)
            rows[name] = {k: str(v) for k, v in to_row(run).items()}
            print(f"{name}: AP untrained {run.ap_untrained:.4f} → trained {run.ap_trained:.4f} "
                  f"({run.train_seconds:.0f} s)", flush=True)
    atomic_write_text(REFERENCE_FILE, "")
    REFERENCE_FILE.unlink()
    append_rows(REFERENCE_FILE, [rows[k] for k in sorted(rows)], columns=REFERENCE_COLUMNS)
    print(f"wrote {REFERENCE_FILE}")


if __name__ == "__main__":
    main()
