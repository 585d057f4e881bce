"""One calibration run of the embedded benchmark: a smoke recipe trained on the shared CI synthetic set
(600 train / 100 val images, seed 0) with extra ``--set`` overrides, then AP on synthetic val with detector boxes
and with GT boxes (flip test on). Prints one JSON line and appends it to ``--log``.

End-to-end models (prtr-e2e-smoke) take no boxes; for them the line gives the end-to-end AP, the keypoint AP of
their keypoint Transformer on the GT boxes (``AP_oracle_boxes``: a perfect detector) and the COCO box AP of their
person detector (``box_AP``, ``box_AP50``), which tells which half limits the end-to-end AP.

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

from poserepro.codecs.whole_image import predict_with_boxes
from poserepro.data.splits import split_files
from poserepro.engine import build_model, evaluate, train
from poserepro.evaluation.coco import evaluate_keypoints, evaluate_person_boxes
from poserepro.families import family_of
from poserepro.families.whole_image import whole_image_dataset
from poserepro.keypoints import get_spec
from poserepro.recipes import load_recipe
from poserepro.regression import CI_DATA


def e2e_diagnostics(model: torch.nn.Module, rec) -> dict[str, float]:
    """Keypoint AP with GT boxes as crops (an oracle detector) and the person detector's box AP, on val."""
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
    return {"AP_oracle_boxes": evaluate_keypoints(ann, kpts, sigmas=get_spec("coco").sigmas)["AP"],
            "box_AP": box["AP"], "box_AP50": box["AP50"]}


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
            if family_of(model).whole_image:
                extra = e2e_diagnostics(model, rec)
            else:
                extra = {"AP_gt_boxes": evaluate(model, rec, run / "gt", split="val", use_gt_boxes=True).metrics["AP"]}
    line = json.dumps({"recipe": args.recipe, "overrides": args.sets, "train_seconds": round(secs, 1),
                       "AP": round(det["AP"], 4), "AP50": round(det["AP50"], 4),
                       **{k: round(v, 4) for k, v in extra.items()}})
    print(line)
    if args.log:
        with open(args.log, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
