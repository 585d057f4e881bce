"""Training curves: loss and validation metric vs epoch of one or more runs, from their ``log.jsonl``.

``poserepro report curves RUN_DIR [RUN_DIR ...]`` writes a PNG (loss on the left, ``val/AP`` or ``val/PCKh`` on
the right, every run on the same axes) and the tidy CSV behind it (``run, epoch, metric, value``) — what
TFPose Fig. 5 (with / without the auxiliary loss) and TransPose's MPII training-curve comparison plot.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .errors import DataError
from .io import atomic_write_figure, atomic_write_text

#: log.jsonl keys that are bookkeeping, not curves
_NOT_CURVES = ("epoch", "lr", "steps", "images", "seconds")


def read_log(run_dir: str | Path) -> dict[int, dict[str, float]]:
    """``{epoch: {metric: value}}`` from ``run_dir/log.jsonl``; a resumed run's repeated epoch keeps its last
    record. Raises a one-line :class:`DataError` for a missing, empty or malformed log."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        raise DataError(f"{run_dir} has no log.jsonl: pass training run directories (runs/RECIPE/...)")
    out: dict[int, dict[str, float]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            epoch = int(rec["epoch"])
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}: line {n} is not a JSON epoch record; was the file edited?") from None
        out[epoch] = {k: float(v) for k, v in rec.items()
                      if k not in _NOT_CURVES and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not out:
        raise DataError(f"{path} holds no epoch yet: train at least one epoch")
    return out


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Short unique labels: the folder name, with its parent where two runs share a name."""
    names = [p.resolve().name for p in run_dirs]
    return [f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(run_dirs, names)]


def curve_rows(run_dirs: list[Path]) -> list[dict[str, object]]:
    """Tidy rows ``{run, epoch, metric, value}`` of every run (epochs 1-based, as papers plot them)."""
    rows: list[dict[str, object]] = []
    for label, run in zip(run_labels(run_dirs), run_dirs):
        for epoch, rec in sorted(read_log(run).items()):
            rows += [{"run": label, "epoch": epoch + 1, "metric": k, "value": v} for k, v in sorted(rec.items())]
    return rows


def write_curves(run_dirs: list[str | Path], out_png: str | Path) -> tuple[Path, Path]:
    """Plot loss and validation metric vs epoch of ``run_dirs`` into ``out_png`` and write the CSV beside it
    (same name, ``.csv``). Both files are written atomically; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [Path(r) for r in run_dirs]
    if not runs:
        raise DataError("report curves: name at least one run directory")
    out_png = Path(out_png)
    if out_png.suffix.lower() != ".png":
        raise DataError(f"report curves: --out must end in .png, got {out_png.name!r}")
    rows = curve_rows(runs)
    val_metrics = sorted({str(r["metric"]) for r in rows if str(r["metric"]).startswith("val/")})
    panels = ["loss"] + val_metrics
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], panels):
        for label in run_labels(runs):
            pts = [(int(r["epoch"]), float(r["value"])) for r in rows
                   if r["run"] == label and r["metric"] == metric and math.isfinite(float(r["value"]))]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=("run", "epoch", "metric", "value"), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    out_csv = out_png.with_suffix(".csv")
    atomic_write_figure(out_png, fig)
    plt.close(fig)
    atomic_write_text(out_csv, text.getvalue())
    return out_png, out_csv
