"""The DINO measurements of README "DINO pretraining", on the embedded synthetic data (CPU).

    # 1. the smoke pretraining (k-NN probe vs the same backbone at random init, entropy / KL, seconds)
    python -m poserepro pretrain dino btranspose-smoke-dino --run-dir runs/pretrain/btranspose-smoke-dino/main
    python scripts/dino_smoke.py record runs/pretrain/btranspose-smoke-dino/main          # -> results/dino_smoke.csv
    # 2. Table 2 in miniature: the smoke BTranspose at its CI budget (4 epochs x 600 images, 1 thread), from the
    #    DINO teacher backbone vs from random init, same seeds
    python scripts/dino_smoke.py table2 --backbone runs/pretrain/btranspose-smoke-dino/main/teacher_backbone.pth \
        --init dino --seeds 0 1                                                  # -> results/dino_table2_smoke.csv
    python scripts/dino_smoke.py table2 --init random --seeds 0 1

Rows are appended (under a lock) with the command that made them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poserepro.results import RESULTS_DIR, append_rows, environment  # noqa: E402

PRETRAIN_COLUMNS = ("recipe", "model", "run_dir", "epochs", "images", "knn_label", "knn_init", "knn", "knn_majority",
                    "teacher_entropy", "max_entropy", "kl", "train_seconds", "threads", "torch", "git_sha",
                    "timestamp", "command")
TABLE2_COLUMNS = ("recipe", "model", "init", "backbone", "seed", "budget", "AP", "AP50", "train_seconds", "torch",
                  "git_sha", "timestamp", "command")


def record(run_dir: Path, out: Path) -> dict:
    """One row from a finished pretraining run (its log.jsonl and meta.json)."""
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    meta = json.loads((run_dir / "meta.json").read_text())
    import yaml

    rec = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    last, env = log[-1], environment()
    row = {"recipe": rec["name"], "model": rec["model"]["name"], "run_dir": str(run_dir), "epochs": len(log),
           "images": meta["images"], "knn_label": rec["probe"]["label"], "knn_init": last.get("knn_init"),
           "knn": last.get("knn"), "knn_majority": last.get("knn_majority"),
           "teacher_entropy": last["teacher_entropy"], "max_entropy": last["max_entropy"], "kl": last["kl"],
           "train_seconds": round(sum(r["seconds"] for r in log), 1), "threads": rec["train"]["threads"],
           "torch": env.get("torch", ""), "git_sha": env.get("git_sha", ""),
           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "command": f"python -m poserepro pretrain dino {rec['name']} --run-dir {run_dir}"}
    append_rows(out, [row], PRETRAIN_COLUMNS)  # under the file's lock
    return row


def table2(init: str, backbone: str | None, seeds: list[int], data: str, workdir: Path, out: Path) -> list[dict]:
    from poserepro.regression import run_ci_budget

    rows = []
    for seed in seeds:
        extra = [f"train.seed={seed}"]
        if init == "dino":
            extra.append(f"model.init=dino:{backbone}")
        wd = workdir / f"{init}-seed{seed}"
        res = _finished(wd, data, extra) or run_ci_budget("btranspose-smoke", wd, data_root=data,
                                                          with_untrained=False, extra_overrides=extra)
        env = environment()
        cmd = " ".join(["python scripts/dino_smoke.py table2 --init", init, *(["--backbone", backbone] if backbone
                                                                                else []), "--seeds", str(seed)])
        row = {"recipe": "btranspose-smoke", "model": res.model, "init": init, "backbone": backbone or "",
               "seed": seed, "budget": res.budget, "AP": res.trained["AP"], "AP50": res.trained["AP50"],
               "train_seconds": round(res.train_seconds, 1), "torch": env.get("torch", ""),
               "git_sha": env.get("git_sha", ""), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "command": shlex.join(cmd.split())}
        append_rows(out, [row], TABLE2_COLUMNS)  # under the file's lock
        print(row, flush=True)
        rows.append(row)
    return rows


def _finished(wd: Path, data: str, extra: list[str]):  # noqa: ANN202
    """A CI-budget run already trained in ``wd`` (its last epoch checkpointed): evaluated again, not retrained."""
    import torch

    from poserepro.engine import build_model, evaluate
    from poserepro.engine.checkpoint import load_checkpoint
    from poserepro.recipes import load_recipe
    from poserepro.regression import CIRun, ci_overrides, intra_op_threads

    rec = load_recipe("btranspose-smoke", ci_overrides("btranspose-smoke", data, extra))
    ck = wd / "run" / "checkpoint.pth"
    if not ck.is_file() or int(load_checkpoint(ck)["epoch"]) != rec.schedule.epochs - 1:
        return None
    with intra_op_threads(1):
        model = build_model(rec)
        model.load_state_dict(load_checkpoint(ck)["model"])
        with torch.inference_mode():
            m = evaluate(model, rec, wd / "run", split="val", use_gt_boxes=False).metrics
    log = [json.loads(line) for line in (wd / "run" / "log.jsonl").read_text().splitlines()]
    budget = f"{rec.schedule.epochs} ep x {rec.data.synth_images} img, bs {rec.train.batch_size}, detected boxes"
    return CIRun("btranspose-smoke", rec.model.name, budget, ("AP",), {"AP": float(m["AP"]), "AP50": float(m["AP50"])},
                 {}, sum(r["seconds"] for r in log))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("record")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--out", type=Path, default=RESULTS_DIR / "dino_smoke.csv")
    t = sub.add_parser("table2")
    t.add_argument("--init", choices=("dino", "random"), required=True)
    t.add_argument("--backbone", default=None)
    t.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    t.add_argument("--data", default="data/synthetic-ci")
    t.add_argument("--workdir", type=Path, default=Path("runs/dino-table2-smoke"))
    t.add_argument("--out", type=Path, default=RESULTS_DIR / "dino_table2_smoke.csv")
    a = ap.parse_args()
    if a.what == "record":
        print(record(a.run_dir, a.out))
    else:
        if a.init == "dino" and not a.backbone:
            ap.error("--init dino needs --backbone PATH (a teacher_backbone.pth)")
        table2(a.init, a.backbone, a.seeds, a.data, a.workdir, a.out)


if __name__ == "__main__":
    main()
