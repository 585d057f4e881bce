"""Markdown tables from the tidy CSVs in ``results/``, and the README sections they fill.

The README holds blocks ``<!-- report:NAME -->`` … ``<!-- /report:NAME -->``; ``poserepro report --readme``
regenerates each block from the CSVs, so every figure in the README is one the code produced.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .results import RESULTS_DIR


def _md(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows yet)_"
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v) for v in r.tolist()) + " |")
    return "\n".join(lines)


def _latest(pattern: str, root: Path) -> Path | None:
    files = sorted(root.glob(pattern))
    return files[-1] if files else None


def models_table(root: Path = RESULTS_DIR) -> str:
    """Parameters and GFLOPs of every benchmarked model against the paper (from ``bench_cpu_*.csv``)."""
    f = _latest("bench_cpu_fp32_*.csv", root) or _latest("bench_cpu*.csv", root)
    if f is None:
        return "_(run `poserepro bench` to produce results/bench_cpu_*.csv)_"
    df = pd.read_csv(f)
    df = df[df["batch"] == df["batch"].min()].drop_duplicates(["model", "input_size"], keep="last")
    out = pd.DataFrame({
        "model": df["model"],
        "input": df["input_size"],
        "params": df["params"].map(lambda v: f"{int(v):,}"),
        "paper params": df["paper_params"].map(lambda v: "" if pd.isna(v) else f"{v / 1e6:.2f}M"),
        "GFLOPs (paper conv.)": df["gflops_paper_convention"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
        "GFLOPs (fvcore)": df["gflops_fvcore"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}"),
        "paper GFLOPs": df["paper_gflops"].map(lambda v: "" if pd.isna(v) else f"{v:.1f}"),
    })
    return f"From `{f.relative_to(root.parent)}` (measured by `poserepro bench`).\n\n" + _md(out)


def ci_table(root: Path = RESULTS_DIR) -> str:
    """The CI references: per guarded metric the untrained, reference, spread (other seeds, threads and CPU
    kernels), tolerance and planted-regression values on the synthetic val split."""
    f = root / "ci_reference.csv"
    if not f.is_file():
        return "_(run `python scripts/ci_reference.py`)_"
    df = pd.read_csv(f)
    cols = ["recipe", "metric", "budget", "untrained", "reference", "spread_lo", "spread_hi", "tolerance", "planted",
            "train_seconds"]
    if not set(cols) <= set(df.columns):  # a file of the previous layout: show what it holds
        cols = list(df.columns)
    return "From `results/ci_reference.csv` (`python scripts/ci_reference.py`).\n\n" + _md(df[cols])


def evaluations_table(root: Path = RESULTS_DIR) -> str:
    """AP rows of ``evaluations.csv`` (demo and eval runs committed to the repository)."""
    f = root / "evaluations.csv"
    if not f.is_file():
        return "_(no evaluations recorded)_"
    df = pd.read_csv(f)
    df = df[df["metric"].isin(["AP", "AP50", "AP75", "AR"])]
    piv = df.pivot_table(index=["recipe", "dataset", "split", "boxes", "flip", "timestamp"], columns="metric",
                         values="value", aggfunc="last").reset_index()
    piv = piv.round(4)
    return "From `results/evaluations.csv`.\n\n" + _md(piv)


def _sweep_seconds(df: pd.DataFrame) -> tuple[float, float]:
    """(training seconds, counted once per trained model; evaluation seconds) of one ablation CSV."""
    train = df.drop_duplicates("run_dir")["train_seconds"] if "train_seconds" in df else pd.Series(dtype=float)
    ev = df.drop_duplicates("cell_key")["eval_seconds"] if "eval_seconds" in df else pd.Series(dtype=float)
    return float(pd.to_numeric(train, errors="coerce").sum()), float(pd.to_numeric(ev, errors="coerce").sum())


def ablations_table(root: Path = RESULTS_DIR) -> str:
    """Every ablation CSV: its budget and seconds, the table the sweep wrote beside it (``ablation_*.md``: ours vs
    paper per cell, the direction of each effect) and its figure; AP per cell where no markdown exists."""
    parts = []
    for f in sorted(root.glob("ablation_*.csv")):
        df = pd.read_csv(f)
        if df.empty:
            continue
        t_train, t_eval = _sweep_seconds(df)
        budget = df["budget"].dropna().iloc[-1] if "budget" in df and df["budget"].notna().any() else "?"
        head = f"`{f.name}` — budget {budget}; {t_train:.0f} s training + {t_eval:.0f} s evaluation"
        md, png = f.with_suffix(".md"), f.with_suffix(".png")
        if md.is_file():
            body = md.read_text().strip()
        else:
            ap = df[df["metric"] == "AP"].drop_duplicates("variant", keep="last")
            body = f"{ap['table_ref'].iloc[0] if len(ap) else ''}\n\n" + _md(
                ap[["variant", "model", "input_size", "value", "paper_value"]].rename(columns={"value": "AP"}).round(4))
        fig = f"\n\n![{f.stem}]({png.relative_to(root.parent)})" if png.is_file() else ""
        parts.append(f"{head}\n\n{body}{fig}")
    return "\n\n".join(parts) or "_(run `poserepro ablate NAME --smoke`)_"


def csv_table(name_glob: str) -> Callable[[Path], str]:
    """A plain rendering of the newest CSV matching ``name_glob``."""

    def render(root: Path = RESULTS_DIR) -> str:
        f = _latest(name_glob, root)
        if f is None:
            return f"_(no {name_glob} yet)_"
        return f"From `results/{f.name}`.\n\n" + _md(pd.read_csv(f))

    return render


SECTIONS: dict[str, Callable[[Path], str]] = {
    "models": models_table,
    "ci": ci_table,
    "evaluations": evaluations_table,
    "ablations": ablations_table,
    "speed": csv_table("speed_official_vs_ours_*.csv"),
    "attribution": csv_table("speed_attribution_*.csv"),
    "pipeline": csv_table("input_pipeline_*.csv"),
}


def update_readme(readme: Path, root: Path = RESULTS_DIR) -> list[str]:
    """Regenerate every ``<!-- report:NAME -->`` block of ``readme``; returns the names updated."""
    text = readme.read_text()
    done = []
    for name, fn in SECTIONS.items():
        pat = re.compile(rf"(<!-- report:{name} -->\n)(.*?)(<!-- /report:{name} -->)", re.S)
        if pat.search(text):
            body = fn(root)
            text = pat.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(3), text)
            done.append(name)
    from .io import atomic_write_text

    atomic_write_text(readme, text)
    return done
