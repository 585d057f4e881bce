"""The package works installed from its wheel, outside the checkout: the wheel carries the recipes, the console
script runs, and a smoke recipe trains. The fresh venv reuses the test venv's third-party packages through a
``.pth`` line (so nothing is downloaded) but gets poserepro only from the wheel."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", POSEREPRO_RUNS=str(tmp_path / "runs"), POSEREPRO_RESULTS=str(tmp_path / "res"))
    dist = tmp_path / "dist"
    r = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
              str(REPO)], tmp_path, env)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(dist.glob("poserepro-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    shipped = {n.removeprefix("poserepro/_recipes/") for n in names if n.startswith("poserepro/_recipes/")}
    recipes = {p.relative_to(REPO / "recipes").as_posix() for p in (REPO / "recipes").rglob("*.yaml")}
    assert recipes <= shipped, sorted(recipes - shipped)  # every recipe (pretraining ones too) is in the wheel

    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    py = fresh / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    r = _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
             tmp_path, env)
    assert r.returncode == 0, r.stderr[-2000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    r = _run([str(py), "-c", "import poserepro, sys; print(poserepro.__file__)"], work, env)
    assert r.returncode == 0 and r.stdout.strip().startswith(purelib), (r.stdout, r.stderr[-2000:])
    cli = str(fresh / "bin" / "poserepro")
    r = _run([cli, "list", "recipes"], work, env)
    assert r.returncode == 0 and "transpose-r-a4" in r.stdout and "prtr-smoke" in r.stdout, r.stderr[-2000:]
    r = _run([cli, "--version"], work, env)
    assert r.returncode == 0 and r.stdout.startswith("poserepro "), r.stderr
    r = _run([cli, "train", "transpose-r-smoke", "--run-dir", str(work / "run"), "--set", "data.synth_images=16",
              "--set", "data.synth_val_images=4", "--set", "schedule.epochs=1", "--set", "train.batch_size=8",
              "--set", "data.workers=0", "--set", "eval.every=0"], work, env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (work / "run" / "checkpoint.pth").is_file() and (work / "run" / "log.jsonl").is_file()
    assert (work / "data").is_dir()  # the recipe's relative data root is the user's folder, not the package's
