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


@pytest.mark.parametrize("override", RANGE)
def test_bad_recipe_values_in_eval(override: str, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["eval", "transpose-r-smoke", "--set", override, "--weights", str(tmp_path / "w")])
    _one_line_error(r)


#: (command line with ``{t}`` for a scratch folder, text the one line must contain)
COMMAND_LINES: list[tuple[str, str]] = [
    ("train no-such-recipe", "unknown"),
    ("train transpose-r-smok", "transpose-r-smoke"),
    ("train {t}/afile", ""),
    ("train {t}/nope.yaml", "does not exist"),
    ("train {t}/bad.yaml", ""),
    ("train {t}/list.yaml", ""),
    ("train {t}/child_unknown.yaml", "unknown recipe"),
    ("train {t}/loop_a.yaml", "loops"),
    ("train transpose-r-smoke --resume --run-dir {t}/adir", ""),
    ("train transpose-r-smoke --run-dir {t}/afile", ""),
    ("train transpose-r-smoke --init bogus:thing --run-dir {t}/r1", ""),
    ("train transpose-r-smoke --init {t}/garbage.pth --run-dir {t}/r2", "corrupt"),
    ("train transpose-r-smoke --init {t}/flipped.pth --run-dir {t}/r3", "checksum"),
    ("eval transpose-r-smoke --split bogus", "unknown split"),
    ("eval transpose-r-smoke --weights {t}/nope.pth", "does not exist"),
    ("eval transpose-r-smoke --weights {t}/garbage.pth", "corrupt"),
    ("eval transpose-r-smoke --weights {t}/adir", ""),
    ("eval transpose-r-smoke --weights {t}/flipped.pth", "checksum"),
    ("eval transpose-r-smoke --weights {t}/list.json", ""),
    ("eval {t}/adir", "not a run directory"),
    ("eval --results {t}/bad.json --ann {t}/bad.json", "not valid JSON"),
    ("eval --results {t}/nope.json --ann {t}/bad.json", ""),
    ("eval --results {t}/list.json", "--ann"),
    ("eval --results {t}/list.json --ann {t}/list.json", ""),
    ("convert {t}/nope.pth --model transpose_r_a3", ""),
    ("convert {t}/garbage.pth --model transpose_r_a3", "corrupt"),
    ("convert {t}/flipped.pth --model transpose_r_smoke", "checksum"),
    ("convert {t}/garbage.pth --from-code detr", "--from-code"),
    ("convert", "give a checkpoint"),
    ("convert official:nope", "no released weights"),
    ("report nosuchsection", "unknown report section"),
    ("report curves", "at least one run"),
    ("report curves {t}/adir", "has no log.jsonl"),
    ("report curves {t}/adir --out {t}/x.txt", ""),
    ("report models {t}/adir", "curves"),
    ("data download coco --parts vall --root {t}/d", "unknown part"),
    ("data verify coco --root {t}/empty", "nothing of coco"),
    ("data verify nosuchdataset --root {t}/empty", ""),
    ("weights fetch no-such-file", ""),
    ("ablate no-such-sweep", ""),
    ("ablate pos-embed --smoke --cell nosuchcell --dry-run", "nosuchcell"),
    ("ablate pos-embed --smoke --set bogus.key=1 --dry-run", "bogus"),
    ("explain no-such-recipe", ""),
    ("bench transpose_r_smoke --input 0x0", "--input"),
    ("bench transpose_r_smoke --input 16x16", "--input"),
    ("bench transpose_r_smoke --input 12", "HxW"),
    ("bench transpose_r_smoke --batch -3", "--batch"),
    ("bench transpose_r_smoke --batch 0", "--batch"),
    ("bench transpose_r_smoke --throughput-batch 0", "--batch"),
    ("bench transpose_r_smoke --repeats 0", "--repeats"),
    ("bench transpose_r_smoke --warmup -1", "--warmup"),
    ("bench transpose_r_smoke --threads 0", "--threads"),
    ("bench transpose_r_smoke --device banana", "--device"),
    ("bench transpose_r_smoke --device cuda", "no CUDA"),
    ("bench no_such_model", "unknown"),
    ("list nothing", "--help"),
    ("bench transpose_r_smoke --skip-fps --skip-flops --out {t}/adir", "is a folder"),
    ("bench transpose_r_smoke --skip-fps --skip-flops --out {t}/afile/x.csv", "is a file"),
    ("bench transpose_r_smoke --skip-fps --skip-flops --out /proc/poserepro-x/b.csv", "/proc/poserepro-x"),
    ("eval transpose-r-smoke --weights {t}/good.pth --out-dir {t}/afile", "is a file"),
    ("eval transpose-r-smoke --weights {t}/good.pth --json {t}/adir", "is a folder"),
    ("eval --results {t}/list.json --ann {t}/list.json --json {t}/afile/m.json", "is a file"),
    ("train transpose-r-smoke --run-dir /proc/poserepro-x/run", "/proc/poserepro-x"),
    ("train transpose-r-smoke --run-dir {t}/afile/run", "is a file"),
    ("report curves {t}/adir --out {t}/adir", ""),
    ("train --bogus-option", "No such option"),
    ("train", "Missing argument"),
    ("bench --batch x", "--batch"),
    ("data download nosuchdataset --root {t}/d", "--help"),
    ("data verify", "Missing argument"),
    ("weights fetch", "Missing argument"),
    ("eval transpose-r-smoke --flip --no-flip --bogus", "No such option"),
    ("nosuchcommand", "No such command"),
    ("train {t}/recipe_with_underscores.yaml --set schedule.epochs=-1 --run-dir {t}/r4", "epochs"),
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bad files of every kind, made once: a folder, a text file, garbage bytes, broken / foreign JSON and YAML,
    recipes whose ``base:`` is unknown or loops, and a real checkpoint with 256 bytes flipped in a weight."""
    import torch

    from poserepro.engine.checkpoint import save_checkpoint
    from poserepro.models.registry import create_model

    tmp = tmp_path_factory.mktemp("bad")
    (tmp / "adir").mkdir()
    (tmp / "afile").write_text("x")
    (tmp / "garbage.pth").write_bytes(b"\x00not a checkpoint" * 10)
    (tmp / "bad.json").write_text("{oops")
    (tmp / "list.json").write_text("[]")
    (tmp / "bad.yaml").write_text("model: [unclosed\n")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    (tmp / "child_unknown.yaml").write_text("base: no-such-base\n")
    (tmp / "loop_a.yaml").write_text("base: loop_b\n")
    (tmp / "loop_b.yaml").write_text("base: loop_a\n")
    (tmp / "my_base_recipe.yaml").write_text("base: transpose-r-smoke\n")
    (tmp / "recipe_with_underscores.yaml").write_text("base: my_base_recipe\n")  # resolves; the range check fails
    torch.manual_seed(0)
    save_checkpoint(tmp / "good.pth", {"model": create_model("transpose_r_smoke").state_dict()})
    flip_tensor_bytes(tmp / "good.pth", tmp / "flipped.pth")
    return tmp


def flip_tensor_bytes(src: Path, dst: Path, n: int = 256) -> None:
    """Copy ``src`` with ``n`` bytes inverted in the middle of its largest tensor's storage (the zip container
    keeps its CRCs, which ``torch.load`` does not check: only the tensor checksum can notice)."""
    import zipfile

    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    h = info.header_offset
    name_len, extra_len = int.from_bytes(data[h + 26:h + 28], "little"), int.from_bytes(data[h + 28:h + 30], "little")
    start = h + 30 + name_len + extra_len + info.file_size // 2
    data[start:start + n] = bytes(b ^ 0xFF for b in data[start:start + n])
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("line,needle", COMMAND_LINES, ids=[c[0][:60] for c in COMMAND_LINES])
def test_bad_command_lines(line: str, needle: str, scratch: Path, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, [a.format(t=scratch) for a in line.split()])
    _one_line_error(r, *([needle] if needle else []))


def test_an_intact_checkpoint_loads_and_the_flipped_copy_differs_only_in_tensor_bytes(scratch: Path) -> None:
    """The bit-flip case refuses for the right reason: same zip container, same keys, altered weights."""
    import zipfile

    from poserepro.io import CHECKSUM_KEY, load_torch, tensors_sha256

    good = load_torch(scratch / "good.pth")
    assert CHECKSUM_KEY not in good and "model" in good  # verified and stripped
    with zipfile.ZipFile(scratch / "flipped.pth") as a, zipfile.ZipFile(scratch / "good.pth") as b:
        assert a.namelist() == b.namelist()
    import torch

    raw = torch.load(scratch / "flipped.pth", weights_only=True)
    assert tensors_sha256(raw) != raw[CHECKSUM_KEY]


def test_output_paths_that_cannot_be_written(tmp_path: Path, coco_mini: Path) -> None:
    (tmp_path / "adir").mkdir()
    res = next(coco_mini.rglob("*.json"))
    for target in (str(tmp_path / "adir"), "/proc/poserepro-cannot-write/x.json"):
        r = CliRunner().invoke(app, ["eval", "--results", str(res), "--ann", str(res), "--json", target])
        assert r.exit_code != 0 and "Traceback" not in r.output, r.output


def _drop(d: dict, path: str) -> None:  # type: ignore[type-arg]
    *head, last = path.split(".")
    for k in head:
        d = d[int(k)] if isinstance(d, list) else d[k]
    del d[last]


#: (name, edit of the real COCO mini annotation file, text the one line must contain)
BROKEN_ANNOTATIONS = [
    ("annotation without bbox", lambda d: _drop(d, "annotations.0.bbox"), "lacks bbox"),
    ("image without width", lambda d: _drop(d, "images.0.width"), "lacks width"),
    ("images is a string", lambda d: d.update(images="oops"), "'images' list"),
    ("keypoint is a string", lambda d: d["annotations"][0]["keypoints"].__setitem__(0, "x"), "keypoints"),
    ("annotations is null", lambda d: d.update(annotations=None), "'annotations' list"),
    ("bbox with a string", lambda d: d["annotations"][0].update(bbox=[0, 0, 5, "a"]), "bbox"),
    ("keypoints not triples", lambda d: d["annotations"][0]["keypoints"].pop(), "triples"),
    ("image height zero", lambda d: d["images"][0].update(height=0), "width/height"),
    ("annotation is a list", lambda d: d["annotations"].__setitem__(0, [1, 2]), "not an object"),
    ("top level is a list", None, "JSON object"),
]


@pytest.mark.parametrize("path", ["model", "results"])
@pytest.mark.parametrize("name,edit,needle", BROKEN_ANNOTATIONS, ids=[b[0] for b in BROKEN_ANNOTATIONS])
def test_broken_annotation_files(name: str, edit, needle: str, path: str, coco_mini: Path,  # type: ignore[no-untyped-def]
                                 scratch: Path, tmp_path: Path) -> None:
    """The same structural defects give the same one line whether a model is evaluated on the file or an
    existing results file is scored against it."""
    import json

    data = json.loads((coco_mini / "person_keypoints_mini.json").read_text())
    if edit is None:
        data = [data]
    else:
        edit(data)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    if path == "model":
        args = ["eval", "transpose-r-smoke", "--weights", str(scratch / "good.pth"), "--ann", str(ann),
                "--images", str(coco_mini / "images"), "--gt-boxes", "--no-record", "--out-dir", str(tmp_path / "o")]
    else:
        args = ["eval", "--results", str(ann), "--ann", str(ann)]
    _one_line_error(CliRunner().invoke(app, args), needle)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*.json"))


def test_a_truncated_jpeg_is_refused(coco_mini: Path, scratch: Path, tmp_path: Path) -> None:
    import shutil

    images = tmp_path / "images"
    shutil.copytree(coco_mini / "images", images)
    victim = sorted(images.glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    r = CliRunner().invoke(app, ["eval", "transpose-r-smoke", "--weights", str(scratch / "good.pth"), "--ann",
                                 str(coco_mini / "person_keypoints_mini.json"), "--images", str(images),
                                 "--gt-boxes", "--no-record", "--out-dir", str(tmp_path / "o")])
    _one_line_error(r, "truncated", victim.name)


@pytest.mark.parametrize("where", ["a file", "under a file", "unwritable"])
def test_results_dir_that_cannot_be_written(where: str, coco_mini: Path, scratch: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``POSEREPRO_RESULTS`` pointing at a file, below a file, or into /proc: one line, nothing else written."""
    target = {"a file": scratch / "afile", "under a file": scratch / "afile" / "results",
              "unwritable": Path("/proc/poserepro-cannot-write")}[where]
    monkeypatch.setenv("POSEREPRO_RESULTS", str(target))
    r = CliRunner().invoke(app, ["eval", "transpose-r-smoke", "--weights", str(scratch / "good.pth"), "--ann",
                                 str(coco_mini / "person_keypoints_mini.json"), "--images",
                                 str(coco_mini / "images"), "--gt-boxes", "--out-dir", str(tmp_path / "o")])
    _one_line_error(r, "cannot use")
    assert (scratch / "afile").read_text() == "x"
