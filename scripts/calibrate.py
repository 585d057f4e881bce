"""One calibration run of the embedded benchmark: a smoke recipe trained on the shared CI synthetic set
(600 train / 100 val images, seed 0) with extra ``--set`` overrides, then AP on synthetic val with detector boxes
and with GT boxes (flip test on). Prints one JSON line and appends it to ``--log``.

    python scripts/calibrate.py transpose-r-smoke --set schedule.epochs=14 --set "schedule.milestones=[13]"
    python scripts/calibrate.py transpose-r-smoke --data /tmp/synth_easy \\
        --set "data.synth_difficulty={occlusion: 0.0}" --set schedule.epochs=8

The README "Calibration" table was produced this way (each row: its overrides on top of the recipe of the time).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from poserepro.engine.loop import build_model, evaluate, train
from poserepro.recipes import load_recipe
from poserepro.regression import CI_DATA


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="recipe override key=value")
    ap.add_argument("--data", default=None, help="synthetic data directory (generated when missing or different)")
    ap.add_argument("--log", default=None, help="append the result line to this JSON-lines file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(Path(tmp) / "synthetic")
        rec = load_recipe(args.recipe, [*CI_DATA, *args.sets, f"data.root={data}"])
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        result = train(rec, run)
        secs = time.perf_counter() - t0
        model = build_model(rec)
        model.load_state_dict(torch.load(result.checkpoint, map_location="cpu", weights_only=True)["model"])
        with torch.inference_mode():
            det = evaluate(model, rec, run / "det", split="val", use_gt_boxes=False).metrics
            gt = evaluate(model, rec, run / "gt", split="val", use_gt_boxes=True).metrics
    line = json.dumps({"recipe": args.recipe, "overrides": args.sets, "train_seconds": round(secs, 1),
                       "AP": round(det["AP"], 4), "AP50": round(det["AP50"], 4), "AP_gt_boxes": round(gt["AP"], 4)})
    print(line)
    if args.log:
        with open(args.log, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
