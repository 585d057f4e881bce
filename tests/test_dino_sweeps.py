"""The DINO cells of BTranspose Tables 3 and 4 (sweeps ``btranspose-heads`` and ``btranspose-depth-width``): one
pretraining per distinct backbone, run before the fine-tune it feeds, and a teacher backbone that fills the cell's
pose model (every backbone tensor loaded, none fresh)."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from poserepro.cli.main import app
from poserepro.engine import build_model
from poserepro.pretrain.multicrop import pose_backbone
from poserepro.pretrain.recipe import load_pretrain_recipe
from poserepro.pretrain.train import backbone_state, build_student
from poserepro.sweeps import SWEEPS, plan
from poserepro.weights.init import init_model
from poserepro.weights.keymaps import backbone_module

DINO_CELLS = {"btranspose-heads": ("c3a1-4h-dino", "c3a1-8h-dino"),
              "btranspose-depth-width": ("n4-base-dino", "n6-base-dino", "n4-large-dino")}


def _cells(name: str, smoke: bool, root: Path) -> dict:
    return {c.variant.name: c for c in plan(SWEEPS[name], smoke, [], root)}


def test_dino_cells_pretrain_once_per_backbone(tmp_path: Path) -> None:
    for smoke in (True, False):
        heads = _cells("btranspose-heads", smoke, tmp_path)
        dw = _cells("btranspose-depth-width", smoke, tmp_path)
        init = _cells("btranspose-init", smoke, tmp_path)
        for name, cells in (("btranspose-heads", heads), ("btranspose-depth-width", dw)):
            for n, c in cells.items():
                assert c.skip is None, (name, n, c.skip)
                if n in DINO_CELLS[name]:
                    assert c.variant.series == "DINO" and c.pretrain is not None
                    assert c.train_recipe.model.init == f"dino:{c.pretrain[2] / 'teacher_backbone.pth'}"
                else:  # the random-init cells
                    assert c.pretrain is None and c.train_recipe.model.init is None, (name, n)
        # 4 and 8 heads: two backbones (the MHSA blocks are in it), two pretrainings
        four, eight = heads["c3a1-4h-dino"].pretrain, heads["c3a1-8h-dino"].pretrain
        assert four[2] != eight[2]
        # N4 and N6 differ in the encoder only: one pretraining; Large has other widths: its own
        n4, n6, large = (dw[f"{n}-dino"].pretrain for n in ("n4-base", "n6-base", "n4-large"))
        assert n4 == n6 and large[2] != n4[2]
        assert n4 == init["c3a1-dino"].pretrain       # the same backbone as Table 2's C3A1(4)-Dino: shared too
        if smoke:
            assert {p[0] for p in (four, eight, n4, large)} == {"btranspose-smoke-dino"}
            assert (four[1], eight[1]) == (("model.args.mhsa_heads=4",), ("model.args.mhsa_heads=8",))
            assert n4[1] == () and large[1] == ("model.args.widths=[16, 32, 64, 64]",)
            assert dw["n6-base-dino"].train_recipe.model.args["num_layers"] == 3
        else:
            assert (four[0], eight[0], n4[0], large[0]) == (
                "btranspose-c3a1-4h-dino", "btranspose-c3a1-8h-dino", "btranspose-c3a1-4h-dino",
                "btranspose-c3a1-4h-large-dino")
            assert [dw[f"{n}-dino"].train_recipe.model.name for n in ("n4-base", "n6-base", "n4-large")] == [
                "btranspose_c3a1_4h", "btranspose_c3a1_4h_n6", "btranspose_c3a1_4h_large"]
            assert heads["c3a1-8h-dino"].train_recipe.model.name == "btranspose_c3a1_8h"
        # the paper's values: Table 3 DINO 76.4 / 76.0, Table 4 (all DINO) 76.4 / 76.3 / 76.7
        assert [heads[n].variant.paper_value for n in DINO_CELLS["btranspose-heads"]] == [76.4, 76.0]
        assert [dw[n].variant.paper_value for n in DINO_CELLS["btranspose-depth-width"]] == [76.4, 76.3, 76.7]


def test_dry_run_prints_each_pretraining_before_its_training() -> None:
    for name, dino in DINO_CELLS.items():
        r = CliRunner().invoke(app, ["ablate", name, "--smoke", "--dry-run"], env={"COLUMNS": "400"})
        assert r.exit_code == 0, r.output
        blocks: dict[str, list[str]] = {}
        for line in r.output.splitlines():
            if line.startswith("["):
                blocks[line[1:line.index("]")]] = []
            elif blocks:
                blocks[list(blocks)[-1]].append(line.strip())
        assert "skipped:" not in r.output and f"{len(blocks)} cells, {len(blocks)} trainings, 0 skipped" in r.output
        for cell, lines in blocks.items():
            train = next(i for i, ln in enumerate(lines) if ln.startswith("poserepro train"))
            pre = [i for i, ln in enumerate(lines) if ln.startswith(("poserepro pretrain dino", "(shares the pretr"))]
            if cell in dino:
                assert len(pre) == 1 and pre[0] < train and "--set model.init=dino:" in lines[train], (cell, lines)
            else:
                assert pre == [] and "model.init" not in lines[train], (cell, lines)
        if name == "btranspose-depth-width":  # N6 reuses N4's pretraining: said, not run twice
            assert blocks["n4-base-dino"][0].startswith("poserepro pretrain dino btranspose-smoke-dino --run-dir")
            assert blocks["n6-base-dino"][0].startswith("(shares the pretraining")
            assert r.output.count("poserepro pretrain dino") == 2


def test_each_smoke_dino_cell_loads_its_teacher_backbone_whole(tmp_path: Path) -> None:
    """The teacher backbone a cell's pretraining leaves fills that cell's pose model: every backbone tensor loaded,
    with the pretraining's values (N6's 3-layer model takes the 2-layer pretraining's backbone)."""
    for name, dino in DINO_CELLS.items():
        cells = _cells(name, True, tmp_path)
        for n in dino:
            c = cells[n]
            stem, over, _ = c.pretrain
            student = build_student(load_pretrain_recipe(stem, list(over)))
            file = tmp_path / f"{name}-{n}.pth"
            torch.save({"teacher": backbone_state(student)}, file)
            model = build_model(c.train_recipe)
            line = init_model(model, f"dino:{file}")
            total = sum(1 for k in backbone_module(model).state_dict() if not k.endswith("num_batches_tracked"))
            assert line.startswith(f"loaded {total} / {total} backbone tensors"), (n, line)
            for k, v in student.backbone.state_dict().items():
                assert torch.equal(backbone_module(model).state_dict()[k], v), (n, k)


def test_each_paper_dino_cell_pretrains_its_own_backbone_shapes() -> None:
    """At paper scale (shapes only, meta device): the pretraining recipe's backbone at its global crop size has the
    keys and shapes of the cell's pose-model backbone."""
    for name, dino in DINO_CELLS.items():
        cells = plan(SWEEPS[name], False, [])
        for c in (c for c in cells if c.variant.name in dino):
            stem, over, _ = c.pretrain
            pre = load_pretrain_recipe(stem, list(over))
            with torch.device("meta"):
                bb = pose_backbone(pre.model.name, pre.model.args, tuple(pre.data.global_size))
                pose = backbone_module(build_model(c.train_recipe))
            shapes = {k: tuple(v.shape) for k, v in bb.state_dict().items()}
            assert shapes == {k: tuple(v.shape) for k, v in pose.state_dict().items()}, c.variant.name
