"""`verify_dataset` and the `data verify` CLI on small fake COCO trees and the mpii-mini fixture."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from poserepro.cli.data import app
from poserepro.data import datasets_catalog as catalog
from poserepro.data.download import download_dataset
from poserepro.data.verify import STATUSES, Row, verify_dataset
from poserepro.errors import UnknownNameError
from poserepro.evaluation.mpii import write_gt_valid

MPII_FIXTURE = Path("/work/shared/fixtures/mpii-mini")
N_VAL = 3


def _ann(n: int) -> dict:
    return {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in range(1, n + 1)],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": [0] * 51}],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}],
    }


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture()
def coco_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with fake val2017.zip / annotations_trainval2017.zip; the catalog carries their hashes."""
    archives = {
        "val": _zip({f"val2017/{i:012d}.jpg": bytes([i]) * 100 for i in range(1, N_VAL + 1)}),
        "annotations": _zip(
            {
                "annotations/person_keypoints_val2017.json": json.dumps(_ann(N_VAL)).encode(),
                "annotations/person_keypoints_train2017.json": json.dumps(_ann(0)).encode(),
            }
        ),
    }
    entries = dict(catalog.CATALOG["coco"])
    src = tmp_path / "archives"
    src.mkdir()
    for part, data in archives.items():
        entries[part] = dataclasses.replace(
            entries[part],
            size=len(data),
            md5=hashlib.md5(data).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        (src / entries[part].filename).write_bytes(data)
    monkeypatch.setitem(catalog.CATALOG, "coco", entries)
    monkeypatch.setitem(catalog.COCO_IMAGE_COUNTS, "val2017", N_VAL)
    return src


def _by_part(rows: list[Row]) -> dict[str, Row]:
    return {r.part: r for r in rows}


def _hand_made_tree(root: Path) -> None:
    """val2017 + annotations extracted by hand (no poserepro markers)."""
    (root / "coco" / "val2017").mkdir(parents=True)
    for i in range(1, N_VAL + 1):
        (root / "coco" / "val2017" / f"{i:012d}.jpg").write_bytes(b"x")
    (root / "coco" / "annotations").mkdir()
    (root / "coco" / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(_ann(N_VAL)))
    (root / "coco" / "annotations" / "person_keypoints_train2017.json").write_text(json.dumps(_ann(0)))


def test_verify_hand_made_coco_tree(tmp_path: Path) -> None:
    _hand_made_tree(tmp_path)
    rows = _by_part(verify_dataset("coco", tmp_path, expected_counts={"val2017": N_VAL}))
    assert all(r.status in STATUSES for r in rows.values())
    assert rows["train2017"].status == "missing" and "--parts train" in rows["train2017"].detail
    assert rows["test2017"].status == "missing"
    assert rows["val2017"].status == "unverified" and "3 images" in rows["val2017"].detail
    val_ann = rows["annotations/person_keypoints_val2017.json"]
    assert val_ann.status == "unverified" and "all 3 referenced images present" in val_ann.detail
    assert rows["annotations/image_info_test-dev2017.json"].status == "missing"

    sampled = _by_part(verify_dataset("coco", tmp_path, expected_counts={"val2017": N_VAL}, sample=2))
    assert "2 sampled of 3" in sampled["annotations/person_keypoints_val2017.json"].detail

    # Real counts: 3 images where 5000 are expected.
    real = _by_part(verify_dataset("coco", tmp_path))
    assert real["val2017"].status == "corrupt" and "3 of 5000 images" in real["val2017"].detail


def test_verify_detects_corruption(tmp_path: Path) -> None:
    _hand_made_tree(tmp_path)
    (tmp_path / "coco" / "val2017" / "000000000002.jpg").unlink()
    (tmp_path / "coco" / "annotations" / "person_keypoints_train2017.json").write_text("{not json")
    rows = _by_part(verify_dataset("coco", tmp_path, expected_counts={"val2017": N_VAL}))
    assert rows["val2017"].status == "corrupt" and "2 of 3 images" in rows["val2017"].detail
    val_ann = rows["annotations/person_keypoints_val2017.json"]
    assert val_ann.status == "corrupt" and "000000000002.jpg" in val_ann.detail
    assert rows["annotations/person_keypoints_train2017.json"].status == "corrupt"
    (tmp_path / "coco" / "annotations" / "person_keypoints_train2017.json").write_text(
        json.dumps({"images": []})
    )
    rows = _by_part(verify_dataset("coco", tmp_path, expected_counts={"val2017": N_VAL}))
    assert (
        "lacks images / annotations / categories"
        in rows["annotations/person_keypoints_train2017.json"].detail
    )


def test_verify_after_download_is_ok_and_stale_marker_is_corrupt(tmp_path: Path, coco_archives: Path) -> None:
    root = tmp_path / "data"
    download_dataset("coco", root, ["val", "annotations"], from_dir=coco_archives)
    rows = _by_part(verify_dataset("coco", root))
    assert rows["val2017"].status == "ok" and "sha256 verified" in rows["val2017"].detail
    assert rows["annotations/person_keypoints_val2017.json"].status == "ok"
    marker = root / "coco" / ".poserepro" / "val2017.zip.verified"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "sha256": "0" * 64}))
    assert _by_part(verify_dataset("coco", root))["val2017"].status == "corrupt"


def _mpii_tree(root: Path) -> Path:
    ds = root / "mpii"
    shutil.copytree(MPII_FIXTURE / "images", ds / "images")
    (ds / "annot").mkdir()
    for split in ("train", "valid"):
        shutil.copy(MPII_FIXTURE / "mpii_mini.json", ds / "annot" / f"{split}.json")
    raw = json.loads((MPII_FIXTURE / "mpii_mini.json").read_text())
    joints = np.array([a["joints"] for a in raw], dtype=np.float64)
    vis = np.array([a["joints_vis"] for a in raw])
    head = joints[:, [8, 9], :]
    boxes = np.stack([head.min(axis=1), head.max(axis=1)]).transpose(0, 2, 1)
    write_gt_valid(ds / "annot" / "gt_valid.mat", joints.transpose(1, 2, 0), (vis == 0).T, boxes)
    return ds


def test_verify_mpii_fixture_tree(tmp_path: Path) -> None:
    if not MPII_FIXTURE.is_dir():
        pytest.skip("mpii-mini fixture not available")
    ds = _mpii_tree(tmp_path)
    rows = _by_part(verify_dataset("mpii", tmp_path))
    assert rows["images"].status == "unverified" and "5 images" in rows["images"].detail
    assert rows["annot (official .mat)"].status == "missing"
    assert rows["annot/valid.json"].status == "ok" and "5 persons" in rows["annot/valid.json"].detail
    assert rows["annot/gt_valid.mat"].status == "ok"
    (ds / "images" / "004645041.jpg").unlink()
    raw = json.loads((ds / "annot" / "valid.json").read_text())
    (ds / "annot" / "valid.json").write_text(json.dumps(raw[:4]))
    rows = _by_part(verify_dataset("mpii", tmp_path))
    assert rows["annot/train.json"].status == "corrupt" and "004645041.jpg" in rows["annot/train.json"].detail
    assert (
        rows["annot/gt_valid.mat"].status == "corrupt"
        and "valid.json has 4" in rows["annot/gt_valid.mat"].detail
    )


def test_verify_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean: coco"):
        verify_dataset("cocoo", tmp_path)


def test_cli_verify_table_and_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(catalog.COCO_IMAGE_COUNTS, "val2017", N_VAL)
    monkeypatch.setenv("COLUMNS", "200")  # rich sizes its table from COLUMNS when not on a terminal
    _hand_made_tree(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["verify", "coco", "--root", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("val2017", "unverified", "missing", "person_keypoints_val2017.json"):
        assert text in result.output
    (tmp_path / "coco" / "val2017" / "000000000001.jpg").unlink()
    result = runner.invoke(app, ["verify", "coco", "--root", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 1 and "corrupt" in result.output
