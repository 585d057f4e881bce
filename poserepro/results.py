"""Tidy result tables in ``results/``: long format, one row per (run, metric), appended atomically."""

from __future__ import annotations

import csv
import io
import platform
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .io import atomic_write_text, locked

if TYPE_CHECKING:
    from .recipes import Recipe

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"

COLUMNS = (
    "recipe", "variant", "model", "paper", "table_ref", "dataset", "split", "input_size", "boxes", "flip", "metric",
    "value", "paper_value", "params", "gflops", "device", "git_sha", "torch", "timestamp", "seed", "run_dir",
)


def git_sha(short: bool = True) -> str:
    """The repository's current commit (``"unknown"`` outside a git checkout); ``-dirty`` when modified."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"] if short else ["git", "rev-parse", "HEAD"],
            cwd=root, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha or "unknown") + ("-dirty" if sha and dirty else "")


def environment() -> dict[str, str]:
    """Versions and hardware for provenance."""
    import numpy

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    return {
        "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
        "platform": platform.platform(), "device_name": dev, "git_sha": git_sha(),
    }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def append_rows(path: str | Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> Path:
    """Append ``rows`` to the CSV at ``path`` (created with a header if missing), atomically.

    Unknown keys are an error (the schema is fixed); missing keys are written empty.
    """
    path = Path(path)
    for r in rows:
        extra = set(r) - set(columns)
        if extra:
            raise ValueError(f"unknown result columns {sorted(extra)}")
    with locked(path):
        _append_locked(path, rows, columns)
    return path


def _append_locked(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    old = path.read_text() if path.is_file() else ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    if not old:
        w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k, "")) for k in columns})
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + buf.getvalue())


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (tuple, list)):
        return "x".join(str(x) for x in v)
    return v


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results CSV as dicts (empty list if the file does not exist)."""
    p = Path(path)
    if not p.is_file():
        return []
    with p.open(newline="") as f:
        return list(csv.DictReader(f))


def tidy_rows(recipe: Recipe, metrics: dict[str, float], split: str, boxes: str, flip: bool,
              run_dir: Path | None, params: int | None = None, dataset: str | None = None) -> list[dict[str, Any]]:
    """Long-format rows (one per metric) for :func:`poserepro.results.append_rows`."""
    env = environment()
    base = {
        "recipe": recipe.name, "model": recipe.model.name, "paper": recipe.paper.name,
        "table_ref": recipe.paper.table_ref, "dataset": dataset or recipe.data.dataset, "split": split,
        "input_size": f"{recipe.data.input_size[1]}x{recipe.data.input_size[0]}", "boxes": boxes,
        "flip": flip, "params": params or "", "device": recipe.train.device, "git_sha": env["git_sha"],
        "torch": env["torch"], "timestamp": now(), "seed": recipe.train.seed, "run_dir": str(run_dir or ""),
    }
    rows = []
    for m, v in metrics.items():
        paper = recipe.paper.value / 100 if (m == recipe.paper.metric and recipe.paper.value) else ""
        rows.append({**base, "metric": m, "value": float(v), "paper_value": paper})
    return rows
