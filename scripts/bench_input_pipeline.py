#!/usr/bin/env python
"""Crops per second per CPU core: the fast input pipeline vs the per-sample OpenCV pipeline.

Measures decode + crop + augmentation + heatmap targets for training batches (256x192 crops, 64x48 heatmaps,
TransPose augmentation, DarkPose geometry) on two image sets generated into a temporary directory with
:func:`poserepro.data.synthetic.synthesize`:

* ``256x256``: the embedded synthetic benchmark as the smoke recipes use it;
* ``640x480``: COCO-sized JPEGs (same renderer at COCO's typical image size; real COCO is not needed).

Pipelines (one process, ``torch.set_num_threads(cores)``, OpenCV single-threaded as in the loaders):

* ``opencv_baseline``: :class:`~poserepro.data.coco.TopDownDataset` ``__getitem__`` + ``default_collate`` (decode,
  flip, ``cv2.warpAffine``, numpy normalisation and numpy Gaussian targets for every sample) — the official
  code bases' pipeline;
* ``fast_grid``: :class:`~poserepro.data.fast_pipeline.FastTopDownDataset` with cached decoded images and the
  batched ``affine_grid`` + ``grid_sample`` warp and ``encode_gaussian_batch`` targets (here on the CPU; the path
  meant for GPUs);
* ``fast_cv2``: same cache, per-sample ``cv2.warpAffine`` from the cache, batched normalisation and targets (the
  CPU choice);
* ``*_cold``: the first epoch of a fresh fast dataset (every image decoded once, then cached).

Rounds of all pipelines are interleaved and the median round is reported, so machine load affects all alike.
Writes ``results/input_pipeline_cpu_torch<version>.csv`` and prints the ratios.

    python scripts/bench_input_pipeline.py                # full run (a few minutes on 2 cores)
    python scripts/bench_input_pipeline.py --quick        # smaller sets, fewer rounds
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import torch
from torch.utils.data import default_collate

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from poserepro.data.coco import AugmentCfg, TopDownDataset, gt_person_records  # noqa: E402
from poserepro.data.fast_pipeline import FastTopDownDataset, collate_fast  # noqa: E402
from poserepro.data.synthetic import SynthConfig, synthesize  # noqa: E402
from poserepro.keypoints import get_spec  # noqa: E402

INPUT_SIZE = (192, 256)
HEATMAP_SIZE = (48, 64)
COLUMNS = ("pipeline", "image_size", "batch", "crops_per_s", "cores", "crops_per_s_per_core", "ratio_vs_baseline",
           "torch", "timestamp")


def make_set(root: Path, image_size: tuple[int, int], num_images: int) -> list:
    """Render ``num_images`` synthetic images of ``image_size`` and return their person records."""
    synthesize(root, SynthConfig(num_train=num_images, num_val=1, seed=7, image_size=image_size), workers=1)
    return gt_person_records(root / "annotations" / "person_keypoints_train.json", root / "images" / "train",
                             INPUT_SIZE[0] / INPUT_SIZE[1])


def dataset_kwargs() -> dict:
    return dict(input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE, sigma=2.0, train=True, augment=AugmentCfg(),
                flip_pairs=get_spec("coco").flip_pairs, convention="dark", seed=0)


def batches(n: int, batch: int) -> list[list[int]]:
    return [list(range(i, min(n, i + batch))) for i in range(0, n, batch)]


def run_baseline(ds: TopDownDataset, batch: int, epoch: int) -> int:
    ds.set_epoch(epoch)
    done = 0
    for idx in batches(len(ds), batch):
        b = default_collate([ds[i] for i in idx])
        done += b["image"].shape[0]
    return done


def run_fast(ds: FastTopDownDataset, batch: int, epoch: int) -> int:
    ds.set_epoch(epoch)
    done = 0
    for idx in batches(len(ds), batch):
        b = ds.transform(collate_fast([ds[i] for i in idx]))
        done += b["image"].shape[0]
    return done


def timed(fn: Callable[..., int], *args: object) -> float:
    """Crops per second of one call ``fn(*args)`` (which returns the number of crops it made)."""
    t0 = time.perf_counter()
    n = fn(*args)
    return n / (time.perf_counter() - t0)


def bench_set(records: list, label: str, batch: int, rounds: int, cores: int) -> list[dict]:
    kw = dataset_kwargs()
    base = TopDownDataset(records, **kw)
    warm = {w: FastTopDownDataset(records, **kw, warp=w, cache="image") for w in ("grid", "cv2")}
    for ds in warm.values():  # fill the caches (this is the cold epoch, measured separately below)
        run_fast(ds, batch, 0)
    speeds: dict[str, list[float]] = {k: [] for k in ("opencv_baseline", "fast_grid", "fast_cv2",
                                                       "fast_grid_cold", "fast_cv2_cold")}
    for r in range(rounds):
        ep = r + 1
        speeds["opencv_baseline"].append(timed(run_baseline, base, batch, ep))
        speeds["fast_grid"].append(timed(run_fast, warm["grid"], batch, ep))
        speeds["fast_cv2"].append(timed(run_fast, warm["cv2"], batch, ep))
        for w in ("grid", "cv2"):
            cold = FastTopDownDataset(records, **kw, warp=w, cache="image")
            speeds[f"fast_{w}_cold"].append(timed(run_fast, cold, batch, ep))
    ref = statistics.median(speeds["opencv_baseline"])
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    rows = []
    for name, vals in speeds.items():
        v = statistics.median(vals)
        rows.append({"pipeline": name, "image_size": label, "batch": batch, "crops_per_s": round(v, 1),
                     "cores": cores, "crops_per_s_per_core": round(v / cores, 1),
                     "ratio_vs_baseline": round(v / ref, 2), "torch": torch.__version__, "timestamp": stamp})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small image sets and 3 rounds (about a minute)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per pipeline (median reported)")
    ap.add_argument("--cores", type=int, default=1, help="torch threads (crops/s is divided by this)")
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV path (default results/input_pipeline_cpu_torch<ver>.csv)")
    ap.add_argument("--data-dir", type=Path, default=None, help="where to render the image sets (default: a temp dir)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.cores)
    cv2.setNumThreads(1)
    rounds = args.rounds or (3 if args.quick else 7)
    sets = [((256, 256), 24 if args.quick else 96), ((640, 480), 16 if args.quick else 64)]
    ver = torch.__version__.split("+")[0]
    out = args.out or REPO / "results" / f"input_pipeline_cpu_torch{ver}.csv"

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = args.data_dir or Path(tmp)
        for (w, h), n in sets:
            label = f"{w}x{h}"
            recs = make_set(base_dir / label, (w, h), n)
            print(f"{label}: {n} images, {len(recs)} person crops, batch {args.batch}, {rounds} rounds", flush=True)
            got = bench_set(recs, label, args.batch, rounds, args.cores)
            for r in got:
                print(f"  {r['pipeline']:<16} {r['crops_per_s_per_core']:>8.1f} crops/s/core   "
                      f"x{r['ratio_vs_baseline']:.2f} vs opencv_baseline", flush=True)
            rows += got
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=COLUMNS)
        wr.writeheader()
        wr.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
