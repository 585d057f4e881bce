"""Recipes: every YAML loads, inheritance, checked overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from poserepro.errors import RecipeError, UnknownNameError
from poserepro.models.registry import list_models
from poserepro.recipes import list_recipes, load_recipe, parse_override


@pytest.mark.parametrize("stem", list_recipes())
def test_every_recipe_loads_and_names_a_registered_model(stem: str) -> None:
    r = load_recipe(stem)
    assert r.name == stem
    assert r.model.name in list_models(), f"{stem} names unknown model {r.model.name}"
    if not stem.endswith("smoke") and stem != "smoke":
        assert r.paper.table_ref, f"paper recipe {stem} must name the table row it reproduces"


def test_base_inheritance_and_paper_values() -> None:
    a3, a4 = load_recipe("transpose-r-a3"), load_recipe("transpose-r-a4")
    assert a4.model.name == "transpose_r_a4" and a4.paper.value == 72.6
    assert a4.data == a3.data and a4.schedule == a3.schedule  # inherited
    assert a4.schedule.name == "cosine" and a4.schedule.epochs == 230 and a4.schedule.min_lr == 1e-5
    assert a4.optim.name == "adam" and a4.optim.lr == 1e-4
    assert a4.data.input_size == (192, 256) and a4.data.heatmap_size == (48, 64)


def test_overrides_are_typed_and_checked() -> None:
    r = load_recipe("transpose-r-a4", ["optim.lr=2e-4", "train.batch_size=7", "eval.flip=false",
                                       "data.input_size=[96, 128]", "model.args.pos_embed=learnable"])
    assert r.optim.lr == pytest.approx(2e-4) and r.train.batch_size == 7 and r.eval.flip is False
    assert r.data.input_size == (96, 128) and r.model.args["pos_embed"] == "learnable"
    with pytest.raises(RecipeError, match="unknown recipe key 'optim.lrr'"):
        load_recipe("transpose-r-a4", ["optim.lrr=1"])
    with pytest.raises(RecipeError, match="must be a number"):
        load_recipe("transpose-r-a4", ["optim.lr=fast"])
    with pytest.raises(RecipeError, match="must be an integer"):
        load_recipe("transpose-r-a4", ["train.batch_size=1.5"])
    with pytest.raises(RecipeError, match="one of"):
        load_recipe("transpose-r-a4", ["schedule.name=linear"])
    with pytest.raises(RecipeError, match="section.key=value"):
        parse_override("optim.lr")
    with pytest.raises(RecipeError, match="2 values"):
        load_recipe("transpose-r-a4", ["data.input_size=[1,2,3]"])


def test_unknown_recipe_suggests_close_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean: .*transpose-r-a4"):
        load_recipe("transpose-r-a5")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(bad))
    loop_a, loop_b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    loop_a.write_text("base: b\n")
    loop_b.write_text("base: a\n")
    with pytest.raises(RecipeError, match="loops"):
        load_recipe(str(loop_a))
