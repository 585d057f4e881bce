"""A real ``kill -9`` in the middle of a training run, then ``--resume``: the final weights are bitwise those of
an uninterrupted run, with one log line per epoch and no temporary files left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from poserepro.io import load_torch

from .conftest import tiny_overrides

EPOCHS = 6


def _cmd(run: Path, root: Path, resume: bool = False) -> list[str]:
    sets = [*tiny_overrides(root, epochs=EPOCHS), "train.max_steps_per_epoch=2", "eval.every=0", "train.threads=1"]
    args = [sys.executable, "-m", "poserepro", "train", "transpose-r-smoke", "--run-dir", str(run)]
    for s in sets:
        args += ["--set", s]
    return args + (["--resume"] if resume else [])


def _epochs_logged(run: Path) -> list[int]:
    log = run / "log.jsonl"
    if not log.is_file():
        return []
    return [json.loads(line)["epoch"] for line in log.read_text().splitlines() if line.strip().endswith("}")]


@pytest.mark.slow
def test_kill_9_then_resume_is_bitwise_the_uninterrupted_run(tiny_synth: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_cmd(whole, tiny_synth), env=env, check=True, capture_output=True, timeout=900)

    proc = subprocess.Popen(_cmd(killed, tiny_synth), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (killed / "checkpoint.pth").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = _epochs_logged(killed)
    assert len(done) < EPOCHS, done  # killed mid-run

    subprocess.run(_cmd(killed, tiny_synth, resume=True), env=env, check=True, capture_output=True, timeout=900)
    a, b = load_torch(whole / "checkpoint.pth")["model"], load_torch(killed / "checkpoint.pth")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _epochs_logged(killed) == list(range(EPOCHS))
    assert not list(killed.glob(".*.tmp")) and not list(killed.glob("*.tmp"))
