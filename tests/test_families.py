"""The model-family protocol: a fifth family defined here trains and evaluates through the engine without an
edit in ``engine/``; validation during training (``eval.every``), ``best.pth`` and resume; training curves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from poserepro.engine import build_model, evaluate, train
from poserepro.engine.checkpoint import load_checkpoint
from poserepro.families import ModelFamily, TopDownFamily, family_of, register_family
from poserepro.geometry import affine_points, get_affine_transform
from poserepro.models.registry import create_model, list_models, register_model
from poserepro.recipes import load_recipe

from .conftest import tiny_overrides

PACKAGE = Path(__file__).resolve().parent.parent / "poserepro"


class ToyDirectRegressor(nn.Module):
    """Pooled conv features → K (x, y) in crop-input pixels and K scores: a model no built-in family knows."""

    output_type = "toy-direct"

    def __init__(self, num_joints: int = 17, input_size: tuple[int, int] = (192, 256)) -> None:
        super().__init__()
        self.num_joints, self.input_size = num_joints, tuple(input_size)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.coords = nn.Linear(8, num_joints * 2)
        self.scores = nn.Linear(8, num_joints)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x).flatten(1)
        size = torch.tensor(self.input_size, dtype=f.dtype)
        xy = self.coords(f).sigmoid().reshape(-1, self.num_joints, 2) * size
        return {"coords": xy, "scores": self.scores(f).sigmoid()}


if "toy_direct_regressor" not in list_models():
    @register_model
    def toy_direct_regressor(num_joints: int = 17, input_size: tuple[int, int] = (192, 256)) -> nn.Module:
        return ToyDirectRegressor(num_joints, input_size)


class ToyFamily(TopDownFamily):
    """Crops as for every top-down model; an L1 loss on the joints; read-out straight from the coordinates."""

    output_types = ("toy-direct",)

    def criterion(self, recipe: Any, model: nn.Module, device: torch.device):  # noqa: ANN201
        def loss(out: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
            vis = batch["joints_vis"].float()
            vis = vis[..., 0] if vis.dim() == 3 else vis
            l1 = ((out["coords"] - batch["joints"][..., :2]).abs().sum(-1) * vis).sum() / vis.sum().clamp(min=1)
            return l1, {"loss_l1": float(l1.detach())}

        return loss

    def readout(self, model: nn.Module, outputs: Any, flipped: Any, batch: dict[str, Any],
                recipe: Any) -> tuple[np.ndarray, np.ndarray]:
        xy = outputs["coords"].detach().numpy()
        pts = np.stack([affine_points(xy[i], get_affine_transform(c, s, 0.0, tuple(recipe.data.input_size),
                                                                  inv=True, convention=recipe.data.affine))
                        for i, (c, s) in enumerate(zip(batch["center"].numpy(), batch["scale"].numpy()))])
        return pts, outputs["scores"].detach().numpy()


try:
    register_family(ToyFamily)
except ValueError:  # the module imported twice in one session
    pass


def test_engine_and_callers_never_test_output_type_strings() -> None:
    """Family names live in ``families/`` (and the models that declare them); the rest calls the protocol."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).parts
        if rel[0] in ("families", "models"):
            continue
        text = path.read_text()
        kinds = r"""["'](heatmap|set|regression|e2e)["']"""
        if "output_type" in text or re.search(rf"(==|!=)\s*{kinds}|{kinds}\s*(==|!=|in\b)", text):
            offenders.append("/".join(rel))
    assert offenders == []


def test_every_registered_model_has_a_family() -> None:
    kinds = {}
    for name in list_models():
        if name.endswith("_smoke"):
            kinds[name] = type(family_of(create_model(name))).__name__
    assert kinds["transpose_r_smoke"] == "HeatmapFamily" and kinds["btranspose_smoke"] == "HeatmapFamily"
    assert kinds["tfpose_smoke"] == kinds["prtr_smoke"] == "SelfDecodingFamily"
    assert kinds["prtr_e2e_smoke"] == "WholeImageFamily"


def test_unknown_output_type_is_a_one_line_error() -> None:
    from poserepro.errors import UnknownNameError

    class Stray(nn.Module):
        output_type = "heatmaps"

    with pytest.raises(UnknownNameError, match="no model family handles output_type 'heatmaps'.*heatmap"):
        family_of(Stray())
    assert not issubclass(ModelFamily, nn.Module)


def test_toy_family_trains_and_evaluates_through_the_engine(tiny_synth: Path, tmp_path: Path, one_thread) -> None:
    rec = load_recipe("transpose-r-smoke", [*tiny_overrides(tiny_synth, epochs=2), "model.name=toy_direct_regressor",
                                            "model.args={}", "optim.lr=0.01", "eval.every=1"])
    res = train(rec, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1]
    assert all(r["loss_l1"] == pytest.approx(r["loss"]) for r in log)  # the family's part, as an epoch mean
    assert all(0.0 <= r["val/AP"] <= 1.0 for r in log) and res.best is not None
    model = build_model(rec)
    model.load_state_dict(load_checkpoint(res.checkpoint)["model"])
    ev = evaluate(model, rec, tmp_path / "eval", split="val", use_gt_boxes=True)
    assert ev.num_crops > 0 and ev.num_results > 0 and "AP" in ev.metrics
    assert json.loads(ev.results_file.read_text())[0]["category_id"] == 1


def _log(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_eval_every_logs_val_ap_keeps_best_and_resumes(tiny_synth: Path, tmp_path: Path, one_thread) -> None:
    over = [*tiny_overrides(tiny_synth, epochs=3), "train.max_steps_per_epoch=2"]
    plain = train(load_recipe("transpose-r-smoke", over), tmp_path / "plain")
    assert not (tmp_path / "plain" / "best.pth").exists() and plain.best is None

    # 2 epochs, then resume to 3: validation every epoch
    first = load_recipe("transpose-r-smoke", [*over, "schedule.epochs=2", "eval.every=1"])
    train(first, tmp_path / "val")
    best_after_2 = load_checkpoint(tmp_path / "val" / "checkpoint.pth")["best"]
    res = train(load_recipe("transpose-r-smoke", [*over, "eval.every=1"]), tmp_path / "val", resume=True)
    log = _log(tmp_path / "val")
    assert [r["epoch"] for r in log] == [0, 1, 2]
    values = [r["val/AP"] for r in log]
    top = len(values) - 1 - int(np.argmax(values[::-1]))  # ties go to the later epoch, as the official code
    assert res.best == {"metric": "val/AP", "value": values[top], "epoch": top}
    assert best_after_2 == {"metric": "val/AP", "value": max(values[:2]),
                            "epoch": 1 - int(np.argmax(values[1::-1]))}
    best = load_checkpoint(tmp_path / "val" / "best.pth")
    assert best["epoch"] == top and best["best"] == res.best
    # validation draws no random numbers from the training streams: the same losses as without it
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in _log(tmp_path / "plain")], rel=0, abs=0)


def test_report_curves_writes_png_and_csv(tiny_synth: Path, tmp_path: Path, one_thread) -> None:
    from typer.testing import CliRunner

    from poserepro.cli.main import app

    over = [*tiny_overrides(tiny_synth, epochs=2), "train.max_steps_per_epoch=1", "eval.every=1"]
    for name in ("a", "b"):
        train(load_recipe("transpose-r-smoke", over), tmp_path / name)
    out = tmp_path / "fig" / "curves.png"
    r = CliRunner().invoke(app, ["report", "curves", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = out.with_suffix(".csv").read_text().splitlines()
    assert rows[0] == "run,epoch,metric,value"
    assert {tuple(x.split(",")[:3]) for x in rows[1:]} >= {("a", "1", "loss"), ("b", "2", "val/AP")}
    bad = CliRunner().invoke(app, ["report", "curves", str(tmp_path / "nope")])
    assert bad.exit_code != 0 and "has no log.jsonl" in bad.output and "Traceback" not in bad.output


def test_paper_recipes_validate_as_their_official_code() -> None:
    """TransPose, BTranspose, SimpleBaseline and two-stage PRTR validate every epoch in their official
    ``tools/train.py``; TFPose and end-to-end PRTR released no training code; smoke recipes stay off."""
    every = {r: load_recipe(r).eval.every for r in ("transpose-r-a4", "transpose-h-a6", "btranspose-c3a1-4h-n6",
                                                    "simplebaseline-r50", "prtr-r50-384x288", "tfpose-r50-e6-256x192",
                                                    "prtr-e2e-r50", "transpose-r-smoke", "prtr-e2e-smoke")}
    assert every == {"transpose-r-a4": 1, "transpose-h-a6": 1, "btranspose-c3a1-4h-n6": 1, "simplebaseline-r50": 1,
                     "prtr-r50-384x288": 1, "tfpose-r50-e6-256x192": 0, "prtr-e2e-r50": 0, "transpose-r-smoke": 0,
                     "prtr-e2e-smoke": 0}


def test_device_auto_and_missing_devices(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from poserepro.engine import build as b
    from poserepro.errors import RecipeError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(b, "_NOTICED", set())
    assert b.resolve_device("auto") == "cpu" and "auto -> cpu" in capsys.readouterr().err
    assert b.resolve_device("auto") == "cpu" and capsys.readouterr().err == ""  # the notice comes once
    with pytest.raises(RecipeError, match="train.device=cuda but this machine has no CUDA device"):
        b.resolve_device("cuda")
    with pytest.raises(RecipeError, match="is not a device; use auto, cpu, cuda or cuda:N"):
        b.resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert b.resolve_device("auto") == "cuda" and b.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(RecipeError, match="has 2 CUDA device"):
        b.resolve_device("cuda:2")
    # paper recipes ask for auto, CI budgets for the CPU
    assert load_recipe("transpose-h-a6").train.device == "auto" and load_recipe("tfpose-smoke").train.device == "cpu"


def test_cli_train_on_a_missing_device_is_one_line(tiny_synth: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from poserepro.cli.main import app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ["train", "transpose-r-smoke", "--run-dir", str(tmp_path / "run")]
    for o in [*tiny_overrides(tiny_synth), "train.device=cuda"]:
        args += ["--set", o]
    r = CliRunner().invoke(app, args)
    assert r.exit_code != 0 and "no CUDA device" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run" / "checkpoint.pth").exists()


def test_resume_after_a_kill_leaves_one_log_line_per_epoch_and_no_temp_files(tiny_synth: Path, tmp_path: Path,
                                                                              one_thread) -> None:
    over = [*tiny_overrides(tiny_synth, epochs=2), "train.max_steps_per_epoch=1"]
    run = tmp_path / "run"
    train(load_recipe("transpose-r-smoke", [*over, "schedule.epochs=1"]), run)
    # what a kill -9 leaves: a temp file of an interrupted save, and a logged epoch without its checkpoint
    (run / ".checkpoint.pth.abc123.tmp").write_bytes(b"partial")
    with (run / "log.jsonl").open("a") as f:
        f.write(json.dumps({"epoch": 1, "loss": 9.9}) + "\n" + '{"epoch": 2, "lo')
    train(load_recipe("transpose-r-smoke", over), run, resume=True)
    assert [r["epoch"] for r in _log(run)] == [0, 1] and _log(run)[1]["loss"] != 9.9
    assert not list(run.glob(".*.tmp"))
