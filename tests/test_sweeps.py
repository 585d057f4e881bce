"""Every paper ablation: its dry run at both scales, its overrides against the model constructors, one cell of
each trained for 1-2 steps on a tiny synthetic set (so an override that no longer matches a model argument fails
here), the resolution study's position-table fitting, and the sweep's outputs (CSV, markdown, PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from poserepro.cli.main import app
from poserepro.engine import build_model
from poserepro.errors import CheckpointError, RecipeError
from poserepro.models.registry import create_model
from poserepro.sweeps import SWEEPS, Sweep, Variant, plan, run_sweep
from poserepro.weights.position import fit_position_tables, source_grid
from poserepro.weights.state import load_model_weights

from .conftest import tiny_overrides

runner = CliRunner()
#: every sweep the issue lists
EXPECTED = {
    "pos-embed", "encoder-layers", "encoder-scaling-h", "resolution", "btranspose-init", "btranspose-heads",
    "btranspose-depth-width", "btranspose-loss", "tfpose-q2q", "tfpose-channels", "tfpose-decoder-layers",
    "tfpose-aux", "prtr-queries", "prtr-inference", "prtr-input-size",
}
#: the cell trained per sweep in CI (default: the last cell that runs at smoke scale); never a DINO cell there:
#: its pretraining takes minutes (tests/test_dino_sweeps.py checks those cells' plan and backbone loading)
CELL_FOR = {"resolution": "learnable-test512x384", "btranspose-init": "c2a1-random",
            "btranspose-heads": "c3a1-8h-random", "btranspose-depth-width": "n4-large"}


def _cell(sweep: Sweep) -> str:
    if sweep.name in CELL_FOR:
        return CELL_FOR[sweep.name]
    return [v.name for v in sweep.variants if not (v.needs or v.smoke_skip)][-1]


def test_every_listed_sweep_exists_with_paper_values() -> None:
    assert EXPECTED <= set(SWEEPS)
    for s in SWEEPS.values():
        assert s.paper_ref and len({v.name for v in s.variants}) == len(s.variants), s.name
        if s.name != "resolution":  # Fig. 8 prints no values
            assert all(v.paper_value is not None for v in s.variants), s.name
    assert "v1 Table 3" in SWEEPS["pos-embed"].paper_ref and "ICCV Table 4" in SWEEPS["pos-embed"].paper_ref
    queries = SWEEPS["prtr-queries"]
    assert "Table 4" in queries.paper_ref and "q17-fixed" in [v.name for v in queries.variants]


@pytest.mark.parametrize("scale", ["--smoke", "--no-smoke"])
def test_every_sweep_dry_run(scale: str) -> None:
    for name in sorted(SWEEPS):
        r = runner.invoke(app, ["ablate", name, scale, "--dry-run"])
        assert r.exit_code == 0, f"{name}: {r.output}"
        for v in SWEEPS[name].variants:
            assert f"[{v.name}]" in r.output, f"{name}: the label [{v.name}] was swallowed: {r.output}"
        assert "poserepro train" in r.output and "poserepro eval" in r.output


def test_cells_sharing_a_model_train_once() -> None:
    cells = plan(SWEEPS["resolution"], True, [])
    assert len({c.train_key for c in cells}) == 4 and len(cells) == 16
    prtr = plan(SWEEPS["prtr-inference"], False, [])
    assert len({c.train_key for c in prtr}) == 1 and len({c.cell_key for c in prtr}) == 8
    # across sweeps too: the resolution study reuses the models of pos-embed
    pos = {c.run_dir for c in plan(SWEEPS["pos-embed"], True, [])}
    assert pos <= {c.run_dir for c in cells}


def test_every_smoke_cell_builds_its_model() -> None:
    for sweep in SWEEPS.values():
        for c in plan(sweep, True, []):
            if c.eval_recipe is not None:
                build_model(c.eval_recipe)


def test_every_paper_cell_builds_its_model_on_the_meta_device() -> None:
    """The paper-scale constructors take every cell's arguments (no weights: shapes only, on the meta device)."""
    built: set[str] = set()
    for sweep in SWEEPS.values():
        for c in plan(sweep, False, []):
            rec = c.eval_recipe
            key = repr((rec.model, rec.data.input_size, rec.data.num_joints)) if rec is not None else ""
            if rec is not None and key not in built:
                with torch.device("meta"):
                    build_model(rec)
                built.add(key)
    assert len(built) >= 20


def test_a_bad_override_is_a_one_line_error_naming_sweep_cell_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = Sweep("tfpose-bad", "test", "tfpose-r18-e6-d6", "tfpose-smoke",
                (Variant("dec-2", ("model.args.num_decoder_layers=2",)),))
    with pytest.raises(RecipeError) as e:
        plan(bad, True, [])
    msg = str(e.value)
    assert "\n" not in msg and "tfpose-bad" in msg and "dec-2" in msg and "num_decoder_layers" in msg
    with pytest.raises(RecipeError, match="num_decoder_layers"):
        plan(bad, False, [])  # paper scale too (the builder forwards **kw to TFPose)
    monkeypatch.setitem(SWEEPS, "tfpose-bad", bad)
    r = runner.invoke(app, ["ablate", "tfpose-bad", "--smoke", "--dry-run"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert [ln for ln in r.output.splitlines() if ln.startswith("error:")] == [r.output.strip().splitlines()[-1]]


def test_paper_scale_without_the_data_says_so_in_one_line(tmp_path: Path) -> None:
    r = runner.invoke(app, ["ablate", "pos-embed", "--cell", "sine", "--set", f"data.root={tmp_path / 'coco'}"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "needs coco" in errors[0] and "--smoke" in errors[0], r.output
    bad = runner.invoke(app, ["ablate", "pos-embed", "--smoke", "--cell", "sin"])
    assert bad.exit_code != 0 and "has no cell 'sin'" in bad.output


@pytest.mark.parametrize("pe", ["sine", "learnable"])
def test_checkpoint_loads_at_another_input_size(tmp_path: Path, pe: str) -> None:
    trained = create_model("transpose_r_smoke", input_size=(96, 128), pos_embed=pe).eval()
    ck = tmp_path / "ck.pth"
    torch.save({"model": trained.state_dict()}, ck)
    x = torch.randn(1, 3, 256, 192)
    for size in ((48, 64), (192, 256)):
        model = create_model("transpose_r_smoke", input_size=size, pos_embed=pe).eval()
        load_model_weights(model, ck)
        if size == (192, 256):  # the same function as the model's own on-the-fly fitting
            with torch.no_grad():
                assert torch.allclose(model(x), trained(x), atol=1e-5)


def test_relative_table_resize_hand_computed() -> None:
    from poserepro.models.backbones.botnet import resize_relative_table

    two = torch.arange(3.0)[:, None]  # N = 2: offsets -1, 0, 1 -> rows 0, 1, 2
    torch.testing.assert_close(resize_relative_table(two, 4)[:, 0], torch.tensor([0, 0, 0.5, 1, 1.5, 2, 2]))
    four = torch.arange(7.0)[:, None] * torch.tensor([[1.0, -1.0]])  # N = 4, d = 2
    torch.testing.assert_close(resize_relative_table(four, 2), four[[1, 3, 5]])
    assert resize_relative_table(four, 4) is four  # the training grid: the identity


@pytest.mark.parametrize("mhsa", ["btranspose", "botnet"])
def test_btranspose_checkpoint_loads_at_another_input_size(tmp_path: Path, mhsa: str) -> None:
    from poserepro.models.backbones.botnet import BTransposeMHSA

    torch.manual_seed(0)
    trained = create_model("btranspose_smoke", input_size=(96, 128), mhsa=mhsa).eval()
    ck = tmp_path / "ck.pth"
    torch.save({"model": trained.state_dict()}, ck)
    same = dict(trained.state_dict())
    ptrs = {k: v.data_ptr() for k, v in same.items()}
    assert fit_position_tables(trained, same) == [] and {k: v.data_ptr() for k, v in same.items()} == ptrs
    for w, h in ((48, 64), (192, 256)):
        model = create_model("btranspose_smoke", input_size=(w, h), mhsa=mhsa).eval()
        load_model_weights(model, ck)
        mods = model.backbone.mhsa_modules()
        assert mods and all(m.grid == (h // 8, w // 8) for m in mods)
        if mhsa == "btranspose":
            assert all(m.pos_w.shape[-1] == w // 8 and m.pos_h.shape[-2] == h // 8 for m in mods)
        else:
            assert all(m.rel_height.shape[0] == 2 * (h // 8) - 1 for m in mods)
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():  # the same rule as the trained model's own on-the-fly fitting
            torch.testing.assert_close(model(x), trained(x), atol=1e-5, rtol=1e-4)
    # the factorised absolute tensors by hand: [0, 1] over 2 cells -> 4 cells, linear, align_corners=False
    mod = BTransposeMHSA(4, (4, 4), heads=1)
    fitted = mod.fit_tables({"pos_w": torch.tensor([0.0, 1.0]).view(1, 1, 1, 1, 2).expand(1, 1, 4, 1, 2),
                             "pos_h": torch.zeros(1, 1, 4, 2, 1)})
    torch.testing.assert_close(fitted["pos_w"][0, 0, 0, 0], torch.tensor([0, 0.25, 0.75, 1]))
    assert fitted["pos_h"].shape == mod.pos_h.shape


def test_mhsa_tensor_of_other_heads_is_a_one_line_error() -> None:
    four = create_model("btranspose_smoke", input_size=(96, 128), mhsa_heads=4)
    two = create_model("btranspose_smoke", input_size=(48, 64), mhsa_heads=2)
    with pytest.raises(CheckpointError, match="cannot fit the MHSA position tensor") as e:
        fit_position_tables(two, dict(four.state_dict()))
    assert "\n" not in str(e.value)


def test_learnable_table_grid_inference() -> None:
    assert source_grid(16 * 12, (32, 24)) == (16, 12)      # same 4:3 crop, other resolution
    assert source_grid(32 * 24, (32, 32)) == (32, 24)      # COCO 256x192 -> MPII 256x256: same height
    assert source_grid(7, (4, 3)) is None
    model = create_model("transpose_r_smoke", input_size=(96, 128), pos_embed="learnable")
    with pytest.raises(CheckpointError, match="cannot resize"):
        fit_position_tables(model, {_pe_key(model): torch.zeros(7, 64)})


def _pe_key(model: torch.nn.Module) -> str:
    from poserepro.models.layers.position import PositionEmbedding2D

    return next(f"{n}.weight" for n, m in model.named_modules() if isinstance(m, PositionEmbedding2D))


@pytest.mark.usefixtures("one_thread")
def test_one_cell_of_every_sweep_trains_and_evaluates(tiny_synth: Path, tmp_path: Path) -> None:
    sets = [*tiny_overrides(tiny_synth), "train.max_steps_per_epoch=2", "eval.batch_size=8"]
    results = Path(os.environ["POSEREPRO_RESULTS"])
    for name in sorted(SWEEPS):
        out = results / f"ablation_{name}_smoke.csv"
        rows = run_sweep(name, smoke=True, extra_overrides=sets, runs_root=tmp_path / "runs", out_csv=out,
                         log=lambda _s: None, only=[_cell(SWEEPS[name])])
        assert any(r["metric"] == "AP" for r in rows), name
        assert out.with_suffix(".md").is_file() and out.with_suffix(".png").stat().st_size > 0, name
    # finished cells are skipped on a re-run; the resolution cell was evaluated at 2x the training size
    lines: list[str] = []
    run_sweep("resolution", smoke=True, extra_overrides=sets, runs_root=tmp_path / "runs",
              out_csv=results / "ablation_resolution_smoke.csv", log=lines.append, only=["learnable-test512x384"])
    assert any("already evaluated" in ln for ln in lines), lines
    assert "256x192" in (results / "ablation_resolution_smoke.csv").read_text()
    # the trained learnable-PE model evaluates and explains at other sizes from the command line too
    cell = next(c for c in plan(SWEEPS["resolution"], True, sets, tmp_path / "runs")
                if c.variant.name == "learnable-test512x384")
    size = ["--set", "data.input_size=[48, 64]", "--set", "data.heatmap_size=[12, 16]"]
    r = runner.invoke(app, ["eval", str(cell.run_dir), *size, "--no-record"])
    assert r.exit_code == 0 and "AP" in r.output, r.output
    r = runner.invoke(app, ["explain", str(cell.run_dir), *size, "--out", str(tmp_path / "dep.png")])
    assert r.exit_code == 0 and (tmp_path / "dep.png").is_file(), r.output
    # and so does a BTranspose one (its backbone MHSA position tensors are fitted to the new grid)
    bt = next(c for c in plan(SWEEPS["btranspose-heads"], True, sets, tmp_path / "runs")
              if c.variant.name == _cell(SWEEPS["btranspose-heads"]))
    r = runner.invoke(app, ["eval", str(bt.run_dir), *size, "--no-record"])
    assert r.exit_code == 0 and "AP" in r.output, r.output
    # the README block: budget, seconds, the sweep's table and its figure
    from poserepro.report import update_readme

    readme = tmp_path / "README.md"
    readme.write_text("<!-- report:ablations -->\n<!-- /report:ablations -->\n")
    update_readme(readme, results)
    text = readme.read_text()
    assert "budget 1 ep x 24 img" in text and "s training" in text and "![ablation_resolution_smoke]" in text
    assert "Produced by `poserepro ablate resolution --smoke" in text


def test_markdown_flags_effects_against_the_papers_direction(tmp_path: Path) -> None:
    from poserepro.results import append_rows
    from poserepro.sweeps.outputs import markdown, write_outputs
    from poserepro.sweeps.runner import ABLATION_COLUMNS

    csv = tmp_path / "ablation_pos-embed_smoke.csv"
    ours = {"none": 0.30, "learnable": 0.35, "sine": 0.25}   # sine below none: against the paper (71.7 > 70.4)
    paper = {"none": 0.704, "learnable": 0.709, "sine": 0.717}
    append_rows(csv, [{"variant": v, "metric": "AP", "value": ap, "paper_value": paper[v], "model": "m",
                       "input_size": "128x96", "boxes": "detected", "flip": True, "budget": "1 ep", "command": "c"}
                      for v, ap in ours.items()], ABLATION_COLUMNS)
    text = markdown(SWEEPS["pos-embed"], csv)
    assert "| learnable |" in text and "agrees (vs none)" in text and "disagrees for sine" in text
    md, png = write_outputs(SWEEPS["pos-embed"], csv)
    assert md.read_text() == text and png.read_bytes()[:4] == b"\x89PNG"
    floor = tmp_path / "ablation_prtr-queries_smoke.csv"  # equal APs (both at the floor): neither agrees nor not
    append_rows(floor, [{"variant": v, "metric": "AP", "value": 0.0, "paper_value": ap, "model": "m",
                         "input_size": "128x96", "boxes": "detected", "flip": True, "budget": "1 ep", "command": "c"}
                        for v, ap in (("q100", 0.677), ("q50", 0.676))], ABLATION_COLUMNS)
    text = markdown(SWEEPS["prtr-queries"], floor)
    assert "ours: no change (vs q100)" in text and "paper: no change in ours for q50." in text
