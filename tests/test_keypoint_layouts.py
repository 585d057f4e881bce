"""Keypoint layouts come from the recipe (``data.keypoints``), not from the joint count: built-in COCO / MPII
layouts against the official orders, custom JSON layouts, and where the layout reaches (crops, models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poserepro.engine import build_model
from poserepro.errors import RecipeError
from poserepro.keypoints import COCO, MPII, load_layout
from poserepro.recipes import load_recipe


def test_builtin_layouts_and_their_upper_bodies() -> None:
    assert load_layout("coco", 17) is COCO and load_layout("MPII", 16) is MPII
    # HRNet's upper_body_ids: COCO 0-10 (nose ... right wrist), MPII 7-15 (thorax ... left wrist)
    assert COCO.upper_body == tuple(range(11)) and MPII.upper_body == (7, 8, 9, 10, 11, 12, 13, 14, 15)
    assert load_recipe("transpose-r-smoke").data.keypoint_spec() is COCO
    assert load_recipe("transpose-r-a4-mpii").data.keypoint_spec() is MPII
    with pytest.raises(RecipeError, match="has 17 joints but data.num_joints is 16"):
        load_layout("coco", 16)
    with pytest.raises(RecipeError, match="unknown layout 'h36m'"):
        load_layout("h36m", 17)


def _layout(tmp_path: Path, **over: object) -> Path:
    data = {"name": "hand5", "keypoints": ["wrist", "l1", "r1", "l2", "r2"], "flip_pairs": [[1, 2], [3, 4]],
            "upper_body": [0, 1, 2], "sigmas": [0.03] * 5, **over}
    p = tmp_path / "hand5.json"
    p.write_text(json.dumps(data))
    return p


def test_custom_layout_from_json(tmp_path: Path) -> None:
    spec = load_layout(str(_layout(tmp_path)), 5)
    assert (spec.name, spec.num_keypoints, spec.flip_pairs, spec.upper_body) == ("hand5", 5, ((1, 2), (3, 4)),
                                                                                 (0, 1, 2))
    assert spec.flip_index() == [0, 2, 1, 4, 3] and spec.sigmas.tolist() == [0.03] * 5
    rec = load_recipe("transpose-r-smoke", [f"data.keypoints={_layout(tmp_path)}", "data.num_joints=5"])
    assert rec.data.keypoint_spec().flip_pairs == ((1, 2), (3, 4))


@pytest.mark.parametrize(("over", "msg"), [
    ({"flip_pairs": [[1, 5]]}, "joint indices below 5"),
    ({"flip_pairs": [[1, 2], [2, 3]]}, "a joint appears in two flip pairs"),
    ({"sigmas": [0.1, 0.1]}, "'sigmas' must be 5 positive numbers"),
    ({"keypoints": []}, "non-empty 'keypoints' list"),
    ({"upper_body": [9]}, "'upper_body' must be a list of joint indices below 5"),
])
def test_bad_custom_layouts_are_one_line_errors(tmp_path: Path, over: dict, msg: str) -> None:
    with pytest.raises(RecipeError, match=msg):
        load_layout(str(_layout(tmp_path, **over)), 5)


def test_missing_or_broken_layout_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="keypoint layout not found"):
        load_layout(str(tmp_path / "nope.json"), 5)
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(RecipeError, match="is not valid JSON"):
        load_layout(str(bad), 5)


def test_layout_reaches_self_flipping_models(tmp_path: Path) -> None:
    """A 17-joint layout whose pairs differ from COCO's: PRTR and TFPose flip with the recipe's pairs."""
    names = [f"j{i}" for i in range(17)]
    path = tmp_path / "odd17.json"
    path.write_text(json.dumps({"name": "odd17", "keypoints": names, "flip_pairs": [[0, 16], [1, 15]]}))
    for recipe in ("prtr-smoke", "tfpose-smoke"):
        assert build_model(load_recipe(recipe)).flip_pairs == COCO.flip_pairs
        assert build_model(load_recipe(recipe, [f"data.keypoints={path}"])).flip_pairs == ((0, 16), (1, 15))


def test_layout_reaches_the_crops(tmp_path: Path, tiny_synth: Path) -> None:
    from poserepro.data.splits import make_dataset, person_records

    from .conftest import tiny_overrides

    names = [f"j{i}" for i in range(17)]
    path = tmp_path / "odd17.json"
    path.write_text(json.dumps({"name": "odd17", "keypoints": names, "flip_pairs": [[0, 16]], "upper_body": [0]}))
    rec = load_recipe("transpose-r-smoke", [*tiny_overrides(tiny_synth), f"data.keypoints={path}"])
    records, _ = person_records(rec, "train")
    ds = make_dataset(rec, records, train=True)
    assert ds.flip_pairs == ((0, 16),) and ds.upper_body_ids == (0,)
