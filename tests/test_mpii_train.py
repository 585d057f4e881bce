"""MPII end to end on the real mpii-mini fixture: HRNet-style JSON → records → 1-epoch training → PCKh, and the
COCO → MPII transfer (new 16-joint final layer, everything else loaded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from poserepro.data.splits import person_records, split_files
from poserepro.engine import build_model, evaluate, train
from poserepro.engine.checkpoint import save_checkpoint
from poserepro.engine.schedules import build_optimizer
from poserepro.errors import CheckpointError, DataError
from poserepro.evaluation.mpii import pckh_metrics, write_gt_valid
from poserepro.models.registry import create_model
from poserepro.recipes import load_recipe
from poserepro.weights.state import load_for_transfer

from .conftest import MPII_MINI

NECK, HEAD_TOP = 8, 9
PARTS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def mpii_root(tmp_path: Path) -> Path:
    """The fixture in the HRNet layout: ``images/``, ``annot/{train,valid}.json`` and ``annot/gt_valid.mat``."""
    if not MPII_MINI.is_dir():
        pytest.skip(f"fixture {MPII_MINI} not available")
    root = tmp_path / "mpii"
    shutil.copytree(MPII_MINI / "images", root / "images")
    (root / "annot").mkdir()
    for name in ("train.json", "valid.json"):
        shutil.copy(MPII_MINI / "mpii_mini.json", root / "annot" / name)
    raw = json.loads((root / "annot" / "valid.json").read_text())
    joints = np.array([a["joints"] for a in raw], dtype=np.float64)          # (N, 16, 2), 1-based
    vis = np.array([a["joints_vis"] for a in raw], dtype=np.float64)
    head = joints[:, [NECK, HEAD_TOP], :]
    boxes = np.stack([head.min(axis=1), head.max(axis=1)], axis=0).transpose(0, 2, 1)   # (2, 2, N)
    write_gt_valid(root / "annot" / "gt_valid.mat", joints.transpose(1, 2, 0), (vis == 0).astype(int).T, boxes)
    return root


def _recipe(root: Path, stem: str = "transpose-r-a4-mpii", extra: list[str] | None = None):  # noqa: ANN202
    return load_recipe(stem, [
        "model.name=transpose_r_smoke", "model.args={dropout: 0.0}", "model.init=null", f"data.root={root}",
        "data.input_size=[64, 64]", "data.heatmap_size=[16, 16]", "data.sigma=1.5", "data.workers=0",
        "train.batch_size=4", "train.device=cpu", "schedule.epochs=1", "eval.batch_size=8", "eval.blur_kernel=3",
        *(extra or []),
    ])


def test_mpii_records_follow_hrnet(mpii_root: Path) -> None:
    rec = _recipe(mpii_root)
    recs, files = person_records(rec, "val")
    assert files.gt_file == mpii_root / "annot" / "gt_valid.mat"
    raw = json.loads((mpii_root / "annot" / "valid.json").read_text())
    assert len(recs) == len(raw) == 5
    r, a = recs[0], raw[0]
    s = a["scale"]
    np.testing.assert_allclose(r.center, [a["center"][0] - 1, a["center"][1] + 15 * s - 1], rtol=1e-6)
    np.testing.assert_allclose(r.scale, [1.25 * s, 1.25 * s], rtol=1e-6)
    assert r.joints.shape == (16, 3)
    np.testing.assert_allclose(r.joints[:, :2], np.array(a["joints"]) - 1, rtol=1e-6)
    assert [x.image_id for x in recs] == list(range(5))
    assert split_files(rec.data, "train").ann_file == mpii_root / "annot" / "train.json"
    # the GT joints themselves score 100 %
    gt = np.stack([x.joints[:, :2] for x in recs])
    m = pckh_metrics(gt, [x.image_id for x in recs], files.gt_file)
    assert m["PCKh@0.5/Mean"] == pytest.approx(1.0) and m["PCKh@0.1/Mean"] == pytest.approx(1.0)
    with pytest.raises(DataError, match="no detector boxes"):
        person_records(rec, "val", det_file="dets.json")


def test_mpii_train_one_epoch_then_pckh(mpii_root: Path, tmp_path: Path) -> None:
    rec = _recipe(mpii_root)
    res = train(rec, tmp_path / "run")
    assert np.isfinite(res.last_loss)
    model = build_model(rec)
    state = torch.load(res.checkpoint, weights_only=True)["model"]
    model.load_state_dict(state)
    assert model.head.final_layer.out_channels == 16
    out = evaluate(model, rec, tmp_path / "eval", split="val")
    keys = {f"PCKh@{t}/{p}" for t in ("0.5", "0.1") for p in PARTS}
    assert set(out.metrics) == keys
    assert all(0.0 <= v <= 1.0 for v in out.metrics.values() if not np.isnan(v))
    assert out.results_file.suffix == ".mat" and out.results_file.is_file() and out.num_crops == 5
    # a subset of valid.json is scored against the matching ground-truth persons
    sub = evaluate(model, _recipe(mpii_root, extra=["data.max_val_samples=3"]), tmp_path / "eval3", flip=False)
    assert sub.num_crops == 3 and set(sub.metrics) == keys


def _coco_checkpoint(path: Path, input_size: tuple[int, int] = (48, 64), pos_embed: str = "sine") -> dict:
    torch.manual_seed(1)
    coco = create_model("transpose_r_smoke", num_joints=17, input_size=input_size, dropout=0.0, pos_embed=pos_embed)
    save_checkpoint(path, {"model": coco.state_dict(), "epoch": 229})
    return coco.state_dict()


def test_transfer_loads_all_but_the_final_layer(tmp_path: Path) -> None:
    coco = _coco_checkpoint(tmp_path / "coco.pth")
    torch.manual_seed(2)
    mpii = create_model("transpose_r_smoke", num_joints=16, input_size=(64, 64), dropout=0.0)
    before = {k: v.clone() for k, v in mpii.state_dict().items()}
    info = load_for_transfer(mpii, tmp_path / "coco.pth")
    after = mpii.state_dict()
    assert info["reinitialised"] == ["head.final_layer.weight", "head.final_layer.bias"]
    assert info["position_tables_adapted"] == ["pos_embed.weight"]   # 256x192-style grid → square grid
    for k, v in after.items():
        if k.startswith("head.final_layer"):
            assert v.shape[0] == 16
            assert not torch.equal(v, before[k])                       # fresh init, not the old random one
            bound = 1 / np.sqrt(after["head.final_layer.weight"][0].numel())
            assert v.abs().max() <= bound + 1e-6                       # PyTorch's uniform default init
        elif k == "pos_embed.weight":
            assert torch.equal(v, before[k])                           # sine table of this grid
        else:
            assert torch.equal(v, coco[k]), k
    # a learnable position table is resized; a checkpoint of another architecture is refused
    _coco_checkpoint(tmp_path / "coco_learn.pth", pos_embed="learnable")
    learn = create_model("transpose_r_smoke", num_joints=16, input_size=(64, 64), pos_embed="learnable")
    assert load_for_transfer(learn, tmp_path / "coco_learn.pth")["position_tables_adapted"] == ["pos_embed.weight"]
    other = create_model("transpose_r_smoke", num_joints=16, input_size=(64, 64), d_model=32)
    with pytest.raises(CheckpointError, match="cannot be transferred"):
        load_for_transfer(other, tmp_path / "coco.pth")


def test_transfer_recipe_trains_with_a_10x_lr_for_the_new_layer(mpii_root: Path, tmp_path: Path) -> None:
    coco = _coco_checkpoint(tmp_path / "coco.pth")
    rec = _recipe(mpii_root, "transpose-r-a4-mpii-transfer", [f"model.weights=transfer:{tmp_path / 'coco.pth'}"])
    assert rec.optim.lr == 1e-5 and rec.optim.lr_mult == {"head.final_layer": 10.0}
    assert rec.schedule.epochs == 1 and load_recipe("transpose-h-a6-mpii-transfer").schedule.epochs == 100
    model = build_model(rec)
    opt = build_optimizer(model, rec.optim)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lr_of[id(model.head.final_layer.weight)] == pytest.approx(1e-4)
    assert lr_of[id(model.reduce.weight)] == pytest.approx(1e-5)
    res = train(rec, tmp_path / "run")
    assert np.isfinite(res.last_loss)
    state = torch.load(res.checkpoint, weights_only=True)["model"]
    assert state["head.final_layer.weight"].shape[0] == 16
    # one Adam epoch at lr 1e-5 keeps the transferred weights close to the COCO ones
    assert (state["reduce.weight"] - coco["reduce.weight"]).abs().max() < 1e-3


@pytest.mark.parametrize("stem", ["prtr-r101-mpii-384x384", "prtr-r152-mpii-384x384", "prtr-hrnet-w32-mpii-384x384"])
def test_prtr_table3_recipes_train_and_score_pckh(mpii_root: Path, tmp_path: Path, stem: str) -> None:
    """PRTR's MPII recipes (Table 3) run through the MPII path: 16 joints, MPII flip pairs, PCKh (a smoke-size
    PRTR in place of the paper's backbone)."""
    rec = _recipe(mpii_root, stem, ["model.name=prtr_smoke", "model.args={num_queries: 20}", "eval.every=0"])
    assert rec.data.num_joints == 16 and rec.paper.metric == "PCKh@0.5/Mean"
    assert load_recipe(stem).data.input_size == (384, 384) and load_recipe(stem).paper.value in (87.9, 88.2, 89.5)
    res = train(rec, tmp_path / "run")
    model = build_model(rec)
    model.load_state_dict(torch.load(res.checkpoint, map_location="cpu", weights_only=True)["model"])
    assert model.flip_pairs == ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
    ev = evaluate(model, rec, tmp_path / "ev", split="val")
    assert 0.0 <= ev.metrics["PCKh@0.5/Mean"] <= 1.0 and ev.results_file.suffix == ".mat"
