"""A sweep's markdown table and figure, from its tidy CSV: ours vs the paper per cell, the direction of each effect
against the paper's, and a matplotlib PNG (bars per cell; lines over the test resolution; AP vs epoch)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io import atomic_write_figure, atomic_write_text
from ..results import read_rows
from .cells import Sweep
from .plan import Cell


def latest_cells(sweep: Sweep, csv_path: Path) -> list[dict[str, Any]]:
    """One record per cell in sweep order, from the newest rows: ``{name, series, AP, paper, params, ...}``."""
    by: dict[str, dict[str, Any]] = {}
    for r in read_rows(csv_path):
        rec = by.setdefault(r["variant"], {"name": r["variant"]})
        rec.update(series=r.get("series", ""), model=r["model"], input=r["input_size"], boxes=r["boxes"],
                   flip=r["flip"], budget=r.get("budget", ""), train_s=r.get("train_seconds", ""),
                   run_dir=r.get("run_dir", ""), command=r.get("command", ""))
        if r["metric"] in ("AP", "params_M"):
            rec[r["metric"]] = float(r["value"])
            rec[f"paper_{r['metric']}"] = float(r["paper_value"]) if r["paper_value"] not in ("", None) else None
    order = [v.name for v in sweep.variants]
    return [by[n] for n in order if n in by and "AP" in by[n]]


def _reference(sweep: Sweep, series: str, present: set[str]) -> str | None:
    cells = [v for v in sweep.variants if v.series == series and v.name in present]
    refs = [v.name for v in cells if v.reference]
    return refs[0] if refs else (cells[0].name if cells else None)


def directions(sweep: Sweep, cells: list[dict[str, Any]]) -> dict[str, tuple[float | None, float | None, str]]:
    """Per cell: (our ΔAP, the paper's ΔAP, verdict) against its series' reference cell."""
    by = {c["name"]: c for c in cells}
    out: dict[str, tuple[float | None, float | None, str]] = {}
    for c in cells:
        ref = _reference(sweep, c.get("series", ""), set(by))
        if ref is None or ref == c["name"]:
            out[c["name"]] = (None, None, "reference")
            continue
        d_ours = c["AP"] - by[ref]["AP"]
        p, pr = c.get("paper_AP"), by[ref].get("paper_AP")
        d_paper = (p - pr) if (p is not None and pr is not None) else None
        if d_paper is None:
            verdict = "no paper value"
        elif abs(d_paper) < 1e-9:
            verdict = "paper: no change"
        elif abs(d_ours) < 5e-5:  # equal at the printed precision (e.g. both at the untrained floor)
            verdict = "ours: no change"
        else:
            verdict = "agrees" if d_ours * d_paper > 0 else "disagrees"
        out[c["name"]] = (d_ours, d_paper, f"{verdict} (vs {ref})")
    return out


def _f(v: Any, nd: int = 4) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def markdown(sweep: Sweep, csv_path: Path) -> str:
    """The sweep's table: ours vs paper per cell, with the direction of every effect."""
    cells = latest_cells(sweep, csv_path)
    dirs = directions(sweep, cells)
    head = ("| cell | series | model | input | boxes | flip | AP | paper AP | ΔAP ours | ΔAP paper | direction | "
            "params M | paper params M | train s |")
    lines = [f"**{sweep.name}** — {sweep.paper_ref}", "", head, "|" + "---|" * 14]
    for c in cells:
        d_o, d_p, verdict = dirs[c["name"]]
        lines.append(f"| {c['name']} | {c.get('series', '')} | {c['model']} | {c['input']} | {c['boxes']} | "
                     f"{c['flip']} | {_f(c['AP'])} | {_f(c.get('paper_AP'), 3)} | {_f(d_o)} | {_f(d_p, 3)} | "
                     f"{verdict} | {_f(c.get('params_M'), 3)} | {_f(c.get('paper_params_M'), 3)} | {c['train_s']} |")
    skipped = [f"{v.name} ({v.needs})" for v in sweep.variants if v.needs]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped)]
    wrong = [n for n, (_, _, verdict) in dirs.items() if verdict.startswith("disagrees")]
    same = [n for n, (_, _, verdict) in dirs.items() if verdict.startswith("ours: no change")]
    if cells:
        said = [f"disagrees for {', '.join(wrong)}"] if wrong else []
        said += [f"no change in ours for {', '.join(same)}"] if same else []
        lines += ["", f"Budget: {cells[0]['budget']}. Direction against the paper: "
                  + ("; ".join(said) if said else "no cell disagrees") + "."]
        commands = sorted({c["command"] for c in cells if c.get("command")})
        if commands:
            lines += ["", "Produced by " + "; ".join(f"`{c}`" for c in commands) + "."]
    if sweep.notes:
        lines += ["", sweep.notes]
    return "\n".join(lines) + "\n"


def _bars(ax: Any, cells: list[dict[str, Any]]) -> None:
    xs = range(len(cells))
    ax.bar([x - 0.2 for x in xs], [c["AP"] for c in cells], 0.4, label="ours")
    paper = [c.get("paper_AP") for c in cells]
    ax.bar([x + 0.2 for x in xs], [p if p is not None else 0.0 for p in paper], 0.4, label="paper (COCO val)")
    ax.set_xticks(list(xs), [c["name"] for c in cells], rotation=30, ha="right", fontsize=8)


def _lines(ax: Any, cells: list[dict[str, Any]]) -> None:
    def height(size: str) -> int:
        return int(str(size).split("x")[0])

    for s in dict.fromkeys(c.get("series", "") for c in cells):
        pts = sorted((height(c["input"]), c["AP"]) for c in cells if c.get("series", "") == s)
        ax.plot(*zip(*pts), marker="o", label=s or "ours")
    sizes = sorted({c["input"] for c in cells}, key=height)
    ax.set_xticks([height(x) for x in sizes], sizes)
    ax.set_xlabel("test input size (h x w)")


def val_curve(run_dir: str | Path) -> list[tuple[int, float]]:
    """``[(epoch (1-based), val/AP)]`` from a run's ``log.jsonl`` (validation during training, ``eval.every``);
    a resumed epoch keeps its last record, a missing or unreadable log gives no points."""
    path = Path(run_dir) / "log.jsonl"
    by: dict[int, float] = {}
    for line in (path.read_text().splitlines() if path.is_file() else []):
        try:
            rec = json.loads(line)
            if "val/AP" in rec:
                by[int(rec["epoch"]) + 1] = float(rec["val/AP"])
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(by.items())


def _curves(ax: Any, cells: list[dict[str, Any]]) -> None:
    for c in cells:
        pts = val_curve(c["run_dir"])
        if pts:
            line = ax.plot(*zip(*pts), marker="o", markersize=3, label=f"{c['name']} (ours)")[0]
            if c.get("paper_AP") is not None:  # the paper's final AP of the cell, for the gap's direction
                ax.axhline(c["paper_AP"], color=line.get_color(), ls="--", lw=1, label=f"{c['name']} (paper, final)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")


def figure(sweep: Sweep, csv_path: Path, out_png: Path) -> Path:
    """The sweep's PNG: bars (ours vs paper per cell), lines over test size, or AP vs epoch (``sweep.figure``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = latest_cells(sweep, csv_path)
    width = max(5.0, 0.7 * len(cells) + 2) if sweep.figure == "bars" else 7.0
    fig, ax = plt.subplots(figsize=(width, 3.8))
    {"bars": _bars, "lines": _lines, "curves": _curves}[sweep.figure](ax, cells)
    ax.set_ylabel("val AP")
    ax.set_title(f"{sweep.name} ({csv_path.stem})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_figure(out_png, fig, dpi=110)
    plt.close(fig)
    return out_png


def write_outputs(sweep: Sweep, csv_path: Path, runs: Sequence[Cell] = ()) -> list[Path]:
    """Write ``<csv stem>.md`` and ``<csv stem>.png`` beside the CSV; returns their paths."""
    del runs  # the run directories are read from the rows
    md = csv_path.with_suffix(".md")
    atomic_write_text(md, markdown(sweep, csv_path))
    return [md, figure(sweep, csv_path, csv_path.with_suffix(".png"))]
