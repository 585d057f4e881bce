"""The command line through Typer's CliRunner: happy paths on tiny data and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poserepro.cli.main import app

from .conftest import tiny_overrides

runner = CliRunner()


def invoke(*args: str):  # noqa: ANN201
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, needle: str) -> None:  # noqa: ANN001
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert needle in result.output, result.output
    err_lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(err_lines) == 1, result.output


def test_list_models_and_recipes() -> None:
    r = invoke("list", "models", "transpose_r_*")
    assert r.exit_code == 0 and "transpose_r_a4" in r.output
    r = invoke("list", "recipes")
    assert r.exit_code == 0 and "transpose-r-a3" in r.output and "72.6" in r.output


def test_bad_input_gives_one_line_errors(tmp_path: Path) -> None:
    assert_one_line_error(invoke("train", "transpose-r-a5"), "did you mean")
    assert_one_line_error(invoke("train", "transpose-r-a4", "--set", "optim.lrr=1"), "unknown recipe key")
    assert_one_line_error(invoke("train", "transpose-r-a4", "--set", "optim.lr"), "section.key=value")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_one_line_error(invoke("eval", "--results", bad, "--ann", bad), "not valid JSON")
    assert_one_line_error(invoke("eval", "--results", tmp_path / "missing.json", "--ann", bad), "")


def test_eval_scores_a_results_file(coco_mini: Path, tmp_path: Path) -> None:
    gt = json.loads((coco_mini / "person_keypoints_mini.json").read_text())
    res = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
           for a in gt["annotations"] if a["num_keypoints"] > 0]
    rf = tmp_path / "res.json"
    rf.write_text(json.dumps(res))
    out = tmp_path / "m.json"
    r = invoke("eval", "--results", rf, "--ann", coco_mini / "person_keypoints_mini.json", "--json", out)
    assert r.exit_code == 0, r.output
    metrics = json.loads(out.read_text())
    assert metrics["AP"] == pytest.approx(1.0) and set(metrics) >= {"AP", "AP50", "AP75", "APM", "APL", "AR"}
    r = invoke("eval", "--results", rf, "--ann", coco_mini / "person_keypoints_mini.json", "--backend",
               "xtcocotools")
    assert r.exit_code == 0 and "1.000" in r.output
    # wrong keypoint count
    bad = [dict(x, keypoints=x["keypoints"][:48]) for x in res]
    rf.write_text(json.dumps(bad))
    assert_one_line_error(invoke("eval", "--results", rf, "--ann", coco_mini / "person_keypoints_mini.json"),
                          "keypoints")


def test_synth_train_resume_eval_end_to_end(tiny_synth: Path, coco_mini: Path, tmp_path: Path) -> None:
    sets = [x for o in tiny_overrides(tiny_synth) for x in ("--set", o)]
    run = tmp_path / "run"
    r = invoke("train", "transpose-r-smoke", *sets, "--run-dir", run)
    assert r.exit_code == 0, r.output
    assert (run / "checkpoint.pth").is_file() and (run / "recipe.yaml").is_file()
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in log] == [0]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["torch"] and meta["recipe"] == "transpose-r-smoke"

    # resume for one more epoch
    sets2 = [x for o in tiny_overrides(tiny_synth, epochs=2) for x in ("--set", o)]
    r = invoke("train", "transpose-r-smoke", *sets2, "--run-dir", run, "--resume")
    assert r.exit_code == 0, r.output
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in log] == [0, 1]

    # evaluate the run on synthetic val (detector boxes, no flip) and write metrics JSON
    mj = tmp_path / "metrics.json"
    r = invoke("eval", run, "--no-flip", "--json", mj)
    assert r.exit_code == 0, r.output
    assert 0.0 <= json.loads(mj.read_text())["AP"] <= 1.0
    rows = (Path(__import__("os").environ["POSEREPRO_RESULTS"]) / "evaluations.csv").read_text()
    assert "transpose-r-smoke" in rows and ",AP," in rows

    # the real-data path: real JPEGs, real detector boxes, real annotations
    r = invoke("eval", run, "--ann", coco_mini / "person_keypoints_mini.json", "--images", coco_mini / "images",
               "--det-file", coco_mini / "person_detections_mini.json", "--json", mj)
    assert r.exit_code == 0, r.output
    assert "118 person crops" in r.output

    # attention dependency areas of one person, as a figure
    png = tmp_path / "dep.png"
    r = invoke("explain", run, "--index", "1", "--out", png, "--threshold", "0.001")
    assert r.exit_code == 0, r.output
    assert png.is_file() and png.stat().st_size > 1000
    assert_one_line_error(invoke("explain", run, "--index", "100000"), "out of range")

    # corrupt checkpoint → one-line error, the checkpoint file is not touched
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert_one_line_error(invoke("eval", run, "--weights", bad), "corrupt")
    # missing images
    assert_one_line_error(invoke("eval", run, "--ann", coco_mini / "person_keypoints_mini.json", "--images",
                                 tmp_path, "--gt-boxes"), "missing")


def test_eval_test_dev_writes_a_submission(tiny_synth: Path, coco_mini: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # no run yet → a clear message
    assert_one_line_error(invoke("eval", "--split", "test-dev"), "no trained run")
    sets = [x for o in tiny_overrides(tiny_synth) for x in ("--set", o)]
    r = invoke("train", "transpose-r-smoke", *sets)
    assert r.exit_code == 0, r.output
    # a COCO-style layout for test-dev built from the real mini fixture (image info only, detector boxes)
    gt = json.loads((coco_mini / "person_keypoints_mini.json").read_text())
    info = tmp_path / "image_info_test-dev2017.json"
    info.write_text(json.dumps({"images": gt["images"], "categories": gt["categories"]}))
    r = invoke("eval", "--split", "test-dev", "--set", f"data.root={tmp_path}", "--set", "data.dataset=coco",
               "--set", f"data.test_info={info}", "--set", f"data.test_images={coco_mini / 'images'}",
               "--det-file", coco_mini / "person_detections_mini.json", "--out-dir", tmp_path / "td")
    assert r.exit_code == 0, r.output
    sub = tmp_path / "td" / "person_keypoints_test-dev2017_transpose_r_smoke_results.json"
    assert sub.is_file() and (tmp_path / "td" / (sub.stem + ".zip")).is_file()
    res = json.loads(sub.read_text())
    assert res and all(len(x["keypoints"]) == 51 and "bbox" not in x for x in res)
    assert "AP" not in r.output.split("submission")[-1] or "no public" in r.output.lower()


def test_data_synth_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        r = invoke("data", "synth", "--out", d, "--images", "4", "--val-images", "2", "--seed", "5",
                   "--workers", "1")
        assert r.exit_code == 0, r.output
    for f in ("annotations/person_keypoints_train.json", "annotations/person_keypoints_val.json",
              "detections/person_detections_val.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert_one_line_error(invoke("data", "synth", "--out", tmp_path / "c", "--persons-per-image", "x"),
                          "persons-per-image")


def test_ablate_runs_a_sweep_and_resumes(tiny_synth: Path) -> None:
    sets = [x for o in tiny_overrides(tiny_synth) for x in ("--set", o)]
    r = invoke("ablate", "pos-embed", "--smoke", *sets)
    assert r.exit_code == 0, r.output
    csv = Path(__import__("os").environ["POSEREPRO_RESULTS"]) / "ablation_pos-embed_smoke.csv"
    rows = csv.read_text().splitlines()
    assert sum(",AP," in x for x in rows) == 3 and all(v in csv.read_text() for v in ("sine", "learnable", "none"))
    assert all(f"[{v}]" in r.output for v in ("sine", "learnable", "none")), r.output  # labels are not markup
    # a second run skips the finished cells; --redo evaluates them again and finds the trained models
    r = invoke("ablate", "pos-embed", "--smoke", *sets)
    assert r.exit_code == 0 and r.output.count("already evaluated") == 3, r.output
    r = invoke("ablate", "pos-embed", "--smoke", "--redo", *sets)
    assert r.exit_code == 0 and r.output.count("trained model found") == 3, r.output
    assert_one_line_error(invoke("ablate", "pos-embd"), "did you mean: pos-embed")
