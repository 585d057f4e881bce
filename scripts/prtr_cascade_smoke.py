"""The PRTR cascade measured end to end on the embedded benchmark: the smoke person detector's box AP (trained
against untrained, same seed; the benchmark's synthetic detector file beside them), its detections written by
``poserepro detect``, and a two-stage PRTR smoke model scored on three kinds of boxes: ground truth, the synthetic
detector file the benchmark ships, and our detector's.

    python scripts/prtr_cascade_smoke.py --detector runs/prtr-detector-smoke/<time> --pose runs/prtr-smoke/<time>

Both runs are trained beforehand (README "PRTR cascade" gives the commands). Writes ``results/prtr_cascade_smoke.csv``
(one row per measurement, with the commands) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

from poserepro.data.splits import split_files
from poserepro.engine import build_model, evaluate
from poserepro.engine.detect import detect
from poserepro.evaluation.boxes import evaluate_boxes
from poserepro.io import read_json
from poserepro.recipes import recipe_from_dict
from poserepro.results import RESULTS_DIR, append_rows, environment, now
from poserepro.weights.state import load_model_weights

COLUMNS = ("stage", "recipe", "model", "boxes", "metric", "value", "budget", "run_dir", "command", "git_sha",
           "torch", "timestamp")


def _run(run: Path):
    rec = recipe_from_dict(yaml.safe_load((run / "recipe.yaml").read_text()) or {})
    return rec, f"{rec.schedule.epochs} ep x {rec.data.synth_images} img, bs {rec.train.batch_size}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", type=Path, required=True, help="prtr-detector-smoke run directory")
    ap.add_argument("--pose", type=Path, required=True, help="prtr-smoke run directory")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "prtr_cascade_smoke.csv")
    args = ap.parse_args()
    torch.set_num_threads(1)
    env = environment()
    command = "python scripts/prtr_cascade_smoke.py " + " ".join(sys.argv[1:])
    rows: list[dict] = []

    def row(stage: str, rec, boxes: str, metrics: dict[str, float], keys: tuple[str, ...], budget: str,
            run: Path | str) -> None:
        for k in keys:
            rows.append({"stage": stage, "recipe": rec.name, "model": rec.model.name, "boxes": boxes, "metric": k,
                         "value": round(float(metrics[k]), 4), "budget": budget, "run_dir": str(run),
                         "command": command, "git_sha": env["git_sha"], "torch": env["torch"], "timestamp": now()})

    det_rec, det_budget = _run(args.detector)
    box_keys = ("AP", "AP50", "AP75", "AP_kpt", "AP50_kpt")
    torch.manual_seed(det_rec.train.seed)
    untrained = build_model(det_rec)
    res = detect(untrained, det_rec, args.detector / "dets_val_untrained.json", split="val", device="cpu")
    row("detector (untrained, seed init)", det_rec, "none", res.metrics, box_keys, "0 ep", "")
    detector = build_model(det_rec)
    load_model_weights(detector, str(args.detector / "checkpoint.pth"))
    res = detect(detector, det_rec, args.detector / "dets_val.json", split="val", device="cpu")
    row("detector (trained)", det_rec, "none", res.metrics, box_keys, det_budget, args.detector)
    dets = res.dets_file
    synth = split_files(det_rec.data, "val")
    assert synth.det_file is not None
    synth_dets = read_json(synth.det_file, "detection file")
    row("synthetic detector file", det_rec, "none", evaluate_boxes(synth.ann_file, synth_dets), box_keys[:3], "", "")

    pose_rec, pose_budget = _run(args.pose)
    pose = build_model(pose_rec)
    load_model_weights(pose, str(args.pose / "checkpoint.pth"))
    kpt_keys = ("AP", "AP50", "AP75", "AR")
    for label, gt, det_file in (("gt", True, None), ("synthetic detector file", False, None),
                                ("prtr-detector-smoke (ours)", False, dets)):
        ev = evaluate(pose, pose_rec, args.pose, split="val", use_gt_boxes=gt, det_file=det_file, device="cpu",
                      results_name=f"results_val_cascade_{label.split()[0]}.json")
        row("two-stage PRTR", pose_rec, label, ev.metrics, kpt_keys, pose_budget, args.pose)

    append_rows(args.out, rows, COLUMNS)
    table: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        table.setdefault((r["stage"], r["boxes"]), {})[r["metric"]] = r["value"]
    for (stage, boxes), m in table.items():
        print(f"{stage} | {boxes} | " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
    print(f"rows appended to {args.out}")


if __name__ == "__main__":
    main()
