"""An adversarial battery: bad input on every command gives a non-zero exit, one line that says what to fix,
no traceback (without ``--debug``), and nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from poserepro.cli.main import app

RANGE = [
    "train.batch_size=0", "train.batch_size=-4", "optim.lr=-1", "optim.lr=0", "data.workers=-1",
    "data.input_size=[0,0]", "data.input_size=[4,4]", "data.input_size=[192]", "train.device=banana",
    "train.device=cuda:x", "schedule.epochs=0", "schedule.epochs=-1", "eval.every=-1", "data.flip_prob=2",
    "data.sigma=0", "eval.batch_size=0", "data.num_joints=0", "train.threads=0", "optim.weight_decay=-1",
    "train.max_steps_per_epoch=0", "data.heatmap_size=[0,1]", "data.rot_prob=-0.1", "data.half_body_prob=1.5",
    "schedule.min_lr=-1", "schedule.warmup_epochs=-2", "data.synth_images=0", "optim.clip_grad_norm=-1",
]
TYPES = [
    "train.batch_size=abc", "optim.lr=fast", "train.bogus=1", "bogus.key=1", "optim.name=lion", "data.affine=other",
    "schedule.name=linear", "train.amp=fp8", "data.dataset=imagenet", "train.batch_size", "=3", "train..x=1",
    "model.args=notadict", "data.keypoints=nope", "data.keypoints=missing.json", "eval.decode=mean",
]


def _one_line_error(result, *needles: str) -> None:  # noqa: ANN001
    out = result.output
    assert result.exit_code not in (0, None), out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    for n in needles:
        assert n in out, (n, out)


@pytest.mark.parametrize("override", RANGE + TYPES)
def test_bad_recipe_values_are_one_line_and_write_nothing(override: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the smoke recipe's data root is relative: nothing may be generated there
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "transpose-r-smoke", "--run-dir", str(run), "--set", override])
    _one_line_error(r)
    assert not run.exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("override", RANGE[:12])
def test_bad_recipe_values_in_eval(override: str, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["eval", "transpose-r-smoke", "--set", override, "--weights", str(tmp_path / "w")])
    _one_line_error(r)


def _cases(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "adir").mkdir(exist_ok=True)
    (tmp / "afile").write_text("x")
    (tmp / "garbage.pth").write_bytes(b"\x00not a checkpoint" * 10)
    (tmp / "bad.json").write_text("{oops")
    (tmp / "list.json").write_text("[]")
    return [
        (["train", "no-such-recipe"], "unknown"),
        (["train", "transpose-r-smok"], "transpose-r-smoke"),
        (["train", str(tmp / "afile")], ""),
        (["train", "transpose-r-smoke", "--resume", "--run-dir", str(tmp / "adir")], ""),
        (["eval", "transpose-r-smoke", "--split", "bogus"], "unknown split"),
        (["eval", "transpose-r-smoke", "--weights", str(tmp / "nope.pth")], "does not exist"),
        (["eval", "transpose-r-smoke", "--weights", str(tmp / "garbage.pth")], "corrupt"),
        (["eval", "transpose-r-smoke", "--weights", str(tmp / "adir")], ""),
        (["eval", "--results", str(tmp / "bad.json"), "--ann", str(tmp / "bad.json")], "not valid JSON"),
        (["eval", "--results", str(tmp / "nope.json"), "--ann", str(tmp / "bad.json")], ""),
        (["eval", "--results", str(tmp / "list.json")], "--ann"),
        (["convert", str(tmp / "nope.pth"), "--model", "transpose_r_a3"], ""),
        (["convert", str(tmp / "garbage.pth"), "--model", "transpose_r_a3"], "corrupt"),
        (["convert", str(tmp / "garbage.pth"), "--from-code", "detr"], "--from-code"),
        (["convert"], "give a checkpoint"),
        (["convert", "official:nope"], "no released weights"),
        (["report", "nosuchsection"], "unknown report section"),
        (["report", "curves"], "at least one run"),
        (["report", "curves", str(tmp / "adir")], "has no log.jsonl"),
        (["report", "curves", str(tmp / "adir"), "--out", str(tmp / "x.txt")], ""),
        (["report", "models", str(tmp / "adir")], "curves"),
        (["data", "download", "coco", "--parts", "vall", "--root", str(tmp / "d")], "unknown part"),
        (["data", "verify", "coco", "--root", str(tmp / "empty")], "nothing of coco"),
        (["weights", "fetch", "no-such-file"], ""),
        (["ablate", "no-such-sweep"], ""),
        (["explain", "no-such-recipe"], ""),
    ]


def test_bad_command_lines(tmp_path: Path) -> None:
    for args, needle in _cases(tmp_path):
        r = CliRunner().invoke(app, args)
        try:
            _one_line_error(r, *([needle] if needle else []))
        except AssertionError as err:
            raise AssertionError(f"{args}: {err}") from None


def test_output_paths_that_cannot_be_written(tmp_path: Path, coco_mini: Path) -> None:
    (tmp_path / "adir").mkdir()
    res = next(coco_mini.rglob("*.json"))
    for target in (str(tmp_path / "adir"), "/proc/poserepro-cannot-write/x.json"):
        r = CliRunner().invoke(app, ["eval", "--results", str(res), "--ann", str(res), "--json", target])
        assert r.exit_code != 0 and "Traceback" not in r.output, r.output
