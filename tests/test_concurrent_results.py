"""Result tables appended by concurrent processes lose no row (a lock around the read-modify-write)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from poserepro.results import append_rows, read_rows


def _writer(path: str, who: int, n: int) -> None:
    for i in range(n):
        append_rows(path, [{"recipe": f"w{who}", "metric": "AP", "value": float(i)}])


def test_eight_concurrent_writers_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "evaluations.csv"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 25)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = read_rows(path)
    assert len(rows) == 200
    assert sorted((r["recipe"], r["value"]) for r in rows) == sorted(
        (f"w{w}", f"{float(i):.6g}") for w in range(8) for i in range(25))
    assert path.read_text().count("recipe,") == 1  # one header
