"""Regenerate ``results/ci_reference.csv`` and ``results/ci_spread.csv``: train each smoke recipe's CI budget the
way CI on this machine would (the reference), then the way other machines would see it (the spread), and once
with a planted regression; set each guarded metric's tolerance from the spread.

    python scripts/ci_reference.py                          # every recipe with a ci: section, every variant
    python scripts/ci_reference.py prtr-e2e-smoke           # one recipe (its rows are replaced)
    python scripts/ci_reference.py tfpose-smoke --variants base,seed1
    python scripts/ci_reference.py --finalize               # recompute the reference file from the spread file

Variants (each a fresh process, so the CPU-kernel switches apply before torch loads); each varies one factor
against ``base``, and all but ``threads2`` run on one thread, so two of them can run side by side on a 2-core
machine (see ``--variants``):
  base      seed 0, 1 thread (CI's ``CI_THREADS``), the native CPU kernels (what the reference row records)
  threads2  seed 0, 2 threads (another reduction order in every parallel kernel)
  seed1/2   train.seed=1 / 2
  avx2      ATen, oneDNN and MKL capped at AVX2 (an older or AMD CPU's kernels)
  sse       ATen's non-vectorised kernels, oneDNN capped at SSE4.1, MKL at SSE4.2
  planted   a planted regression: the same budget with a 10x smaller learning rate; the check must fail on it

Two invocations may run at once (the spread file is updated under a lock), e.g.
    python scripts/ci_reference.py --variants base,avx2,seed1 --data D & \
    python scripts/ci_reference.py --variants sse,planted,seed2 --data D
and ``threads2`` alone afterwards.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS: dict[str, dict[str, str]] = {
    "base": {"threads": "1"},
    "threads2": {"threads": "2"},
    "seed1": {"threads": "1", "seed": "1"},
    "seed2": {"threads": "1", "seed": "2"},
    "avx2": {"threads": "1", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "sse": {"threads": "1", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
            "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "planted": {"threads": "1", "planted": "lr/10"},
}
ISA_KEYS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def run_one(recipe: str, variant: str, data: str, out: str) -> None:
    """Child process: one CI budget run of ``recipe`` under ``variant``; writes its metrics as JSON to ``out``."""
    import torch

    from poserepro.recipes import load_recipe
    from poserepro.regression import ci_overrides, run_ci_budget

    spec = VARIANTS[variant]
    extra = []
    if "seed" in spec:
        extra.append(f"train.seed={spec['seed']}")
    if spec.get("planted") == "lr/10":
        lr = load_recipe(recipe, ci_overrides(recipe, data)).optim.lr
        extra.append(f"optim.lr={lr / 10!r}")
    with tempfile.TemporaryDirectory() as tmp:
        run = run_ci_budget(recipe, tmp, data_root=data, with_untrained=variant == "base", extra_overrides=extra,
                            threads=int(spec["threads"]))
    Path(out).write_text(json.dumps({
        "recipe": recipe, "variant": variant, "model": run.model, "budget": run.budget, "guard": list(run.guard),
        "trained": run.trained, "untrained": run.untrained, "train_seconds": run.train_seconds,
        "isa": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
    }))


def spawn(recipe: str, variant: str, data: str, tmp: Path) -> dict:
    """Run one variant in a fresh interpreter with its environment; its JSON result."""
    spec = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if k not in ISA_KEYS}
    env.update({k: v for k, v in spec.items() if k in ISA_KEYS})
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = spec["threads"]
    out = tmp / f"{recipe}.{variant}.json"
    subprocess.run([sys.executable, __file__, "--one", recipe, "--variant", variant, "--data", data,
                    "--json", str(out)], env=env, check=True)
    return json.loads(out.read_text())


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    """Replace the CSV at ``path`` with ``rows`` in one atomic write."""
    import csv
    import io

    from poserepro.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def finalize() -> None:
    """Write the reference file from the spread file: per (recipe, metric) the base value, the spread of the
    other variants, the tolerance from it, the untrained and the planted value."""
    from poserepro.regression import (
        REFERENCE_COLUMNS,
        REFERENCE_FILE,
        SPREAD_FILE,
        guarded_metrics,
        tolerance_from_spread,
    )
    from poserepro.results import environment, read_rows

    spread = read_rows(SPREAD_FILE)
    meta = {json.loads(r["value"])["recipe"]: json.loads(r["value"]) for r in spread if r["metric"] == "_meta"}
    rows = []
    for recipe in sorted(meta):
        m = meta[recipe]
        vals: dict[tuple[str, str], float] = {(r["variant"], r["metric"]): float(r["value"])
                                              for r in spread if r["recipe"] == recipe and r["metric"] != "_meta"}
        others = sorted({v for v, _ in vals if v not in ("base", "planted")})
        for metric in guarded_metrics(recipe):
            ref = vals[("base", metric)]
            sv = [vals[(v, metric)] for v in others if (v, metric) in vals]
            rows.append({
                "recipe": recipe, "model": m["model"], "budget": m["budget"], "metric": metric,
                "untrained": round(m["untrained"].get(metric, math.nan), 4), "reference": round(ref, 4),
                "spread_lo": round(min(sv), 4) if sv else "", "spread_hi": round(max(sv), 4) if sv else "",
                "variants": "+".join(others), "tolerance": tolerance_from_spread(ref, sv),
                "planted": round(vals[("planted", metric)], 4) if ("planted", metric) in vals else "",
                "train_seconds": round(m["train_seconds"], 1), "torch": m["torch"], "git_sha": m["git_sha"],
                "timestamp": m["timestamp"],
            })
    write_csv(REFERENCE_FILE, rows, REFERENCE_COLUMNS)
    print(f"wrote {REFERENCE_FILE} ({len(rows)} rows; {environment()['git_sha']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="*", help="recipe stems (default: every recipe with a ci: section)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated variants (default: all)")
    ap.add_argument("--finalize", action="store_true", help="only rebuild the reference file from the spread file")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--data", help="synthetic CI data directory (default: a temporary one)")
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run_one(args.one, args.variant, args.data, args.json)
        return
    if args.finalize:
        finalize()
        return
    from poserepro.data.splits import ensure_synthetic
    from poserepro.recipes import list_recipes, load_recipe
    from poserepro.regression import SPREAD_COLUMNS, SPREAD_FILE, ci_overrides
    from poserepro.results import environment, now, read_rows

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        sys.exit(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    names = args.recipes or [r for r in list_recipes() if load_recipe(r).ci.get("overrides")]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or str(Path(tmp) / "synthetic")
        ensure_synthetic(load_recipe(names[0], ci_overrides(names[0], data)).data)
        for variant in variants:
            for name in names:
                res = spawn(name, variant, data, Path(tmp))
                print(f"{name} [{variant}]: " + ", ".join(f"{k} {v:.4f}" for k, v in res["trained"].items())
                      + f" ({res['train_seconds']:.0f} s)", flush=True)
                lock = open(SPREAD_FILE.with_suffix(".lock"), "w")  # noqa: SIM115 - held until the write below
                fcntl.flock(lock, fcntl.LOCK_EX)
                rows = [r for r in read_rows(SPREAD_FILE) if not (r["recipe"] == name and r["variant"] == variant)]
                stamp = now()
                for metric, value in res["trained"].items():
                    rows.append({"recipe": name, "variant": variant, "seed": VARIANTS[variant].get("seed", "0"),
                                 "threads": res["threads"], "isa": res["isa"], "metric": metric,
                                 "value": round(value, 4), "train_seconds": round(res["train_seconds"], 1),
                                 "timestamp": stamp})
                if variant == "base":
                    rows = [r for r in rows if not (r["recipe"] == name and r["metric"] == "_meta")]
                    env = environment()
                    meta = {"recipe": name, "model": res["model"], "budget": res["budget"],
                            "untrained": res["untrained"], "train_seconds": res["train_seconds"],
                            "torch": env["torch"], "git_sha": env["git_sha"], "timestamp": stamp}
                    rows.append({"recipe": name, "variant": "base", "metric": "_meta", "value": json.dumps(meta),
                                 "timestamp": stamp})
                rows.sort(key=lambda r: (r["recipe"], list(VARIANTS).index(r["variant"]), r["metric"]))
                write_csv(SPREAD_FILE, rows, SPREAD_COLUMNS)
                lock.close()
    finalize()


if __name__ == "__main__":
    main()
