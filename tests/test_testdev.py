"""COCO test-dev submission: image-info loading, result validation, JSON + zip writing."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import pytest

from poserepro.errors import DataError
from poserepro.evaluation.testdev import SUBMIT_HELP, load_image_info, validate_submission, write_submission


@pytest.fixture()
def image_info(tmp_path: Path) -> Path:
    path = tmp_path / "image_info_test-dev2017.json"
    path.write_text(
        json.dumps(
            {
                "info": {"description": "test"},
                "images": [
                    {"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in (1, 2, 7)
                ],
                "categories": [{"id": 1, "name": "person"}],
            }
        )
    )
    return path


def _result(image_id: int = 1, score: float = 0.9) -> dict[str, Any]:
    return {"image_id": image_id, "category_id": 1, "keypoints": [10.0, 20.0, 0.5] * 17, "score": score}


def test_load_image_info(image_info: Path, tmp_path: Path) -> None:
    assert load_image_info(image_info) == {1, 2, 7}
    with pytest.raises(DataError, match="test-info"):
        load_image_info(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"images": [{"file_name": "x.jpg"}]}))
    with pytest.raises(DataError, match=r"images\[0\] has no integer 'id'"):
        load_image_info(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataError, match="no 'images' list"):
        load_image_info(tmp_path / "list.json")


def test_validate_submission_reports_first_offender_and_count() -> None:
    ids = {1, 2, 7}
    summary = validate_submission([_result(1), _result(2), _result(1)], ids)
    assert summary == {"results": 3, "images_covered": 2, "images_total": 3}
    bad = [_result(1), _result(99), {**_result(2), "keypoints": [0.0] * 50}, _result(7, score=math.nan)]
    with pytest.raises(DataError, match=r"^3 of 4 results are invalid; first: result 1 has image_id 99"):
        validate_submission(bad, ids)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"category_id": 2}, "category_id 2"),
        ({"keypoints": [1.0] * 48}, "48 keypoint values, expected 51"),
        ({"keypoints": [1.0] * 50 + [math.inf]}, "non-finite keypoint"),
        ({"score": None}, "score None"),
        ({"image_id": "1"}, "expected an integer"),
        ({"bbox": [0, 0, 10, 10]}, "'bbox'"),
    ],
)
def test_validate_submission_rules(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        validate_submission([{**_result(), **change}], {1})


def test_write_submission(tmp_path: Path, image_info: Path) -> None:
    ids = load_image_info(image_info)
    results = [{**_result(1), "center": [1, 2]}, _result(7, score=0.25)]
    json_path, zip_path = write_submission(results, tmp_path / "out", "transpose_h_a6", ids)
    assert json_path.name == "person_keypoints_test-dev2017_transpose_h_a6_results.json"
    assert zip_path.name == "person_keypoints_test-dev2017_transpose_h_a6_results.zip"
    written = json.loads(json_path.read_text())
    assert written[1] == _result(7, score=0.25) and "center" not in written[0]  # only the 4 COCO keys
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == [json_path.name]
        assert json.loads(zf.read(json_path.name)) == written
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [json_path.name, zip_path.name]
    with pytest.raises(DataError, match="algorithm name"):
        write_submission(results, tmp_path / "out", "my alg/1", ids)
    with pytest.raises(DataError, match="empty"):
        write_submission([], tmp_path / "out2", "alg", ids)
    assert not (tmp_path / "out2").exists()


def test_submit_help_says_where_and_no_ap() -> None:
    assert "CodaLab" in SUBMIT_HELP and "evaluation server" in SUBMIT_HELP
    assert "no public ground truth" in SUBMIT_HELP and "no AP" in SUBMIT_HELP
