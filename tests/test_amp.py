"""Mixed precision and channels-last through the training loop, as far as a CPU can check them.

``train.amp=bf16`` (autocast), ``train.amp=fp16`` (autocast + GradScaler) and ``train.channels_last`` are meant for
``--set train.device=cuda``. No GPU was available where these tests were written, so GPU speed/memory numbers are
not measured here; on CPU we check that bf16 autocast really runs the model in bfloat16 and trains with a finite
loss, that the fp16 path (scaler included; PyTorch's CPU GradScaler) constructs and steps, and that channels-last
training works and keeps the weights channels-last.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from poserepro.engine import build_model, train
from poserepro.engine.build import amp_context
from poserepro.engine.checkpoint import load_checkpoint
from poserepro.recipes import load_recipe

from .conftest import tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


def _recipe(root: Path, *extra: str):  # noqa: ANN202
    return load_recipe("transpose-r-smoke", [*tiny_overrides(root), "train.batch_size=4",
                                             "train.max_steps_per_epoch=2", *extra])


def test_bf16_autocast_runs_in_bfloat16_and_trains(tiny_synth: Path, tmp_path: Path) -> None:
    rec = _recipe(tiny_synth, "train.amp=bf16")
    model = build_model(rec)
    with amp_context(torch.device("cpu"), "bf16"):
        out = model(torch.randn(2, 3, 96, 72))
    assert out.dtype == torch.bfloat16
    res = train(rec, tmp_path / "run")
    assert np.isfinite(res.last_loss)
    log = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert log["steps"] == 2 and np.isfinite(log["loss"])


def test_fp16_path_constructs_and_steps_with_a_grad_scaler(tiny_synth: Path, tmp_path: Path) -> None:
    rec = _recipe(tiny_synth, "train.amp=fp16", "train.max_steps_per_epoch=1", "train.batch_size=2")
    res = train(rec, tmp_path / "run")
    assert np.isfinite(res.last_loss)
    scaler = load_checkpoint(res.checkpoint)["scaler"]
    assert scaler and scaler["scale"] > 0          # the GradScaler was enabled and its state is checkpointed


def test_channels_last_training(tiny_synth: Path, tmp_path: Path) -> None:
    res = train(_recipe(tiny_synth, "train.channels_last=true", "train.amp=bf16"), tmp_path / "run")
    assert np.isfinite(res.last_loss)
    state = load_checkpoint(res.checkpoint)["model"]
    conv = state["backbone.conv1.weight"]
    assert conv.dim() == 4 and conv.is_contiguous(memory_format=torch.channels_last)
