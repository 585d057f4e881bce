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
    ("bench transpose_r_smoke --train --train-repeats 0", "--train-repeats"),
    ("detect prtr-detector-smoke --out {t}/afile/x.json", "is a file"),
    ("detect prtr-detector-smoke --out {t}/adir", "is a folder"),
    ("detect prtr-detector-smoke --split bogus", "unknown split"),
    ("detect prtr-detector-smoke --top-k 0", "--top-k"),
    ("detect prtr-detector-smoke --weights {t}/flipped.pth", "checksum"),
    ("pretrain dino btranspose-smoke-dino --run-dir {t}/afile", "is a file"),
    ("pretrain dino btranspose-smoke-dino --resume --run-dir {t}/adir", "nothing to resume"),
    ("pretrain dino no-such-pretraining", "pretrain list"),
    ("pretrain dino btranspose-smoke-dino --set optim.lr=-1", "optim.lr"),
    ("pretrain dino btranspose-smoke-dino --set bogus.key=1", "bogus"),
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


# --------------------------------------------------------------------------------------------------------------
# infer / export / explain / torch.hub as an adversarial user: {t} the scratch above, {a} the files below,
# {c} the COCO mini fixture (4 val2017 images, GT annotations, detector boxes), {o} the (empty) working folder.

_MODEL = "--model transpose-r-smoke --weights {t}/good.pth"
_INFER = "infer {a}/imgs " + _MODEL
_EXPL = "explain transpose-r-smoke --weights {t}/good.pth --ann {c}/person_keypoints_mini.json --images {c}/images"
_EXPL_TF = ("explain tfpose-smoke --weights {a}/tfpose.pth --ann {c}/person_keypoints_mini.json "
            "--images {c}/images")
_EXPL_PR = "explain prtr-smoke --weights {a}/prtr.pth --ann {c}/person_keypoints_mini.json --images {c}/images"
_EXPORT = "export transpose-r-smoke --weights {t}/good.pth"

#: (command line, text the one line must contain)
ADVERSARIAL_LINES: list[tuple[str, str]] = [
    # infer: which model, which weights
    ("infer {a}/imgs --model no-such-recipe --whole-image", "unknown recipe"),
    ("infer {a}/imgs --model transpose-r-smoke --weights {t}/nope.pth --whole-image", "does not exist"),
    ("infer {a}/imgs --model transpose-r-smoke --weights {t}/adir --whole-image", "is a folder"),
    ("infer {a}/imgs --model transpose-r-smoke --weights ftp://x/y.pth --whole-image", "official:NAME"),
    ("infer {a}/imgs --model transpose-r-smoke --weights {t}/list.json --whole-image", "corrupt"),
    ("infer {a}/imgs --weights official: --whole-image", "no released weights"),
    ("infer {a}/imgs --model transpose-r-smoke --weights {t}/garbage.pth --whole-image", "corrupt"),
    ("infer {a}/imgs --model transpose-r-smoke --weights {t}/flipped.pth --whole-image", "checksum"),
    ("infer {a}/imgs --model transpose-r-smoke --weights {a}/tfpose.pth --whole-image", "does not fit"),
    ("infer {a}/imgs --model {t}/adir --whole-image", "not a run directory"),
    ("infer {a}/imgs --weights official:nope", "no released weights"),
    ("infer {a}/imgs --model transpose-r-smoke --whole-image", "no weights"),
    ("infer " + _MODEL + " --whole-image", "Missing argument"),
    # infer: inputs
    ("infer {a}/empty " + _MODEL + " --whole-image", "folder holds no images"),
    ("infer {a}/onlytxt " + _MODEL + " --whole-image", "folder holds no images"),
    ("infer {a}/nope " + _MODEL + " --whole-image", "no such file"),
    ("infer {a}/garbage.jpg " + _MODEL + " --whole-image", "cannot decode"),
    ("infer {a}/empty.jpg " + _MODEL + " --whole-image", "cannot decode"),
    ("infer {a}/readme.txt " + _MODEL + " --whole-image", "cannot decode"),
    ("infer {a}/trunc.jpg " + _MODEL + " --whole-image", "truncated"),
    ("infer {a}/mixed " + _MODEL + " --whole-image", "truncated"),
    ("infer {a}/notvideo.mp4 " + _MODEL + " --whole-image", "cannot open this video"),
    ("infer {a}/zero.mp4 " + _MODEL + " --whole-image", "cannot open this video"),
    # infer: person boxes
    (_INFER, "needs person boxes"),
    (_INFER + " --whole-image --boxes {c}/person_detections_mini.json", "one person-box source"),
    (_INFER + " --boxes {a}/nope.json", "box file not found"),
    (_INFER + " --boxes {t}/bad.json", "not valid JSON"),
    (_INFER + " --boxes {t}/list.json", "no detections"),
    (_INFER + " --boxes {a}/dict.json", "neither a detection list"),
    (_INFER + " --boxes {a}/boxes_other.json", "other images"),
    (_INFER + " --boxes {a}/boxes_neg.json", "no usable person box"),
    (_INFER + " --boxes {a}/boxes_nonlist.json", "not an object"),
    (_INFER + " --boxes {a}/boxes_str.json", "4 finite numbers"),
    (_INFER + " --boxes {a}/boxes_short.json", "4 finite numbers"),
    (_INFER + " --boxes {a}/boxes_nan.json", "4 finite numbers"),
    (_INFER + " --boxes {a}/boxes_inf.json", "4 finite numbers"),
    (_INFER + " --boxes {a}/boxes_nobbox.json", "lacks key(s) bbox"),
    (_INFER + " --boxes {a}/boxes_noid.json", "lacks key(s) image_id"),
    (_INFER + " --boxes {a}/boxes_score_str.json", "score"),
    (_INFER + " --boxes {a}/boxes_idstr.json", "image_id must be an integer"),
    (_INFER + " --boxes {a}/ann_idstr.json", "integer 'image_id'"),
    (_INFER + " --boxes {a}/ann_noimgid.json", "integer 'image_id'"),
    (_INFER + " --boxes {a}/ann_imgidstr.json", "integer 'id'"),
    (_INFER + " --boxes {a}/ann_bboxstr.json", "4 finite numbers"),
    (_INFER + " --boxes {a}/ann_othernames.json", "other images"),
    ("infer {a}/clip.mp4 " + _MODEL + " --boxes {a}/boxes_frame99.json", "frames of clip.mp4"),
    (_INFER + " --detector no-such-recipe", "unknown recipe"),
    (_INFER + " --detector transpose-r-smoke --detector-weights {t}/good.pth", "not a person detector"),
    (_INFER + " --detector prtr-e2e-smoke --detector-weights {a}/prtr_e2e.pth", "not a person detector"),
    (_INFER + " --detector prtr-e2e-smoke --detector-weights {t}/garbage.pth", "corrupt"),
    (_INFER + " --detector-weights {a}/prtr_e2e.pth", "needs --detector"),
    # infer: options and output folder
    (_INFER + " --whole-image --kpt-thr 2", "--kpt-thr"),
    (_INFER + " --whole-image --kpt-thr -1", "--kpt-thr"),
    ("infer {a}/imgs --model prtr-e2e-smoke --weights {a}/prtr_e2e.pth --kpt-thr 1.5", "--kpt-thr"),
    (_INFER + " --boxes {c}/person_detections_mini.json --box-thr 5", "--box-thr"),
    (_INFER + " --whole-image --det-thr 7", "--det-thr"),
    (_INFER + " --whole-image --out {t}/afile", "is a file"),
    (_INFER + " --whole-image --out {t}/afile/sub", "is a file, not a folder"),
    (_INFER + " --whole-image --out /proc/poserepro-x", "cannot write in /proc"),
    (_INFER + " --whole-image --device banana", "not a device"),
    (_INFER + " --whole-image --set bogus.key=1", "unknown recipe key"),
    (_INFER + " --whole-image --set data.num_joints=16", "num_joints"),
    # export
    (_EXPORT + " --format bogus", "--format"),
    (_EXPORT + " --opset 10 --out {o}/m.onnx", "below 16"),
    (_EXPORT + " --opset 99 --out {o}/m.onnx", "--opset 99"),
    (_EXPORT + " --opset -1 --format torchscript --out {o}/m.pt", "--format onnx"),
    (_EXPORT + " --out {t}/adir", "is a folder"),
    (_EXPORT + " --format torchscript --out {t}/adir", "is a folder"),
    (_EXPORT + " --out {t}/afile/m.onnx", "is a file, not a folder"),
    (_EXPORT + " --out /proc/poserepro-x/m.onnx", "cannot write in /proc"),
    (_EXPORT + " --out {o}/m.txt", "ends in .onnx"),
    (_EXPORT + " --format torchscript --out {o}/m.onnx", "ends in .onnx"),
    (_EXPORT + " --set data.input_size=[0,0]", "input_size"),
    ("export transpose-r-smoke --weights {t}/garbage.pth", "corrupt"),
    ("export transpose-r-smoke --weights {t}/adir", "is a folder"),
    ("export transpose-r-smoke --weights {t}/flipped.pth", "checksum"),
    ("export transpose-r-smoke --weights {a}/tfpose.pth", "does not fit"),
    ("export no-such-recipe --weights {t}/good.pth", "unknown recipe"),
    ("export {t}/adir", "not a run directory"),
    ("export transpose-r-smoke", "no weights"),
    ("export --weights official:nope", "no released weights"),
    # explain: figure and family
    (_EXPL + " --figure bogus", "--figure"),
    (_EXPL + " --figure sampling", "not a TFPose model"),
    (_EXPL + " --figure q2q", "not a TFPose model"),
    (_EXPL + " --figure refinement", "not a two-stage PRTR"),
    (_EXPL + " --figure queries", "not a two-stage PRTR"),
    (_EXPL + " --figure query-locations", "not a two-stage PRTR"),
    (_EXPL_TF + " --figure dependency", "no encoder attention"),
    (_EXPL_TF + " --figure position", "no 2-D position-embedding"),
    (_EXPL_TF + " --figure refinement", "not a two-stage PRTR"),
    (_EXPL_PR + " --figure dependency", "no encoder attention"),
    (_EXPL_PR + " --figure sampling", "not a TFPose model"),
    ("explain prtr-e2e-smoke --weights {a}/prtr_e2e.pth --ann {c}/person_keypoints_mini.json --images {c}/images",
     "no explain figure"),
    ("explain simplebaseline-smoke --weights {a}/simplebaseline.pth --ann {c}/person_keypoints_mini.json "
     "--images {c}/images", "no explain figure"),
    (_EXPL + " --compare tfpose-smoke --compare-weights {a}/tfpose.pth", "no encoder attention"),
    (_EXPL + " --figure position --compare transpose-r-smoke --compare-weights {t}/good.pth", "dependency only"),
    # explain: joints, layers, ranges
    (_EXPL + " --joints 17", "out of range 0..16"),
    (_EXPL + " --joints -1", "unknown joint"),
    (_EXPL + " --joints nose,elbow", "unknown joint 'elbow'"),
    (_EXPL + " --layer 9", "--layer 9 is out of range"),
    (_EXPL + " --layer 0", "--layer 0 is out of range"),
    (_EXPL + " --layer -9", "--layer -9 is out of range"),
    (_EXPL_TF + " --figure sampling --layer 9", "--layer 9"),
    (_EXPL_TF + " --figure q2q --layer 9", "--layer 9"),
    (_EXPL_TF + " --figure sampling --level 9", "--level 9"),
    (_EXPL_TF + " --figure q2q --max-persons 0", "--max-persons"),
    (_EXPL_TF + " --figure q2q --max-persons -2", "--max-persons"),
    (_EXPL_PR + " --figure queries --layer 9", "--layer 9"),
    (_EXPL_PR + " --figure queries --queries 0", "--queries"),
    (_EXPL_PR + " --figure refinement --joints 99", "out of range"),
    (_EXPL + " --index 99", "--index 99"),
    (_EXPL + " --index -1", "--index -1"),
    (_EXPL + " --kind bogus", "--kind"),
    (_EXPL + " --threshold 2", "--threshold"),
    (_EXPL + " --threshold -1", "--threshold"),
    (_EXPL + " --dpi 5", "--dpi"),
    (_EXPL + " --figure position --step 0", "--step"),
    (_EXPL + " --figure position --step -3", "--step"),
    # explain: data and outputs
    (_EXPL + " --out {t}/adir", "is a folder"),
    (_EXPL + " --out {t}/afile/x.png", "is a file, not a folder"),
    (_EXPL + " --out /proc/poserepro-x/x.png", "cannot write in /proc"),
    (_EXPL + " --out {o}/x.txt", ".png"),
    (_EXPL + " --json {t}/adir --out {o}/x.png", "is a folder"),
    (_EXPL + " --json {t}/afile/x.json --out {o}/x.png", "is a file, not a folder"),
    (_EXPL + " --figure position --out {o}/p.png --json {o}/p.png", "the --out figure itself"),
    (_EXPL + " --compare-weights {t}/good.pth", "needs --compare"),
    (_EXPL + " --compare {t}/adir", "not a run directory"),
    (_EXPL + " --compare transpose-r-smoke --compare-weights {t}/garbage.pth", "corrupt"),
    (_EXPL + " --set data.num_joints=16", "num_joints"),
    ("explain transpose-r-smoke --weights {t}/good.pth --images {c}/images", "--images goes with --ann"),
    ("explain transpose-r-smoke --weights {t}/good.pth --split bogus", "unknown split"),
    ("explain transpose-r-smoke --weights {t}/good.pth --ann {c}/person_keypoints_mini.json --images {a}/empty",
     "missing"),
    ("explain transpose-r-smoke --weights {t}/good.pth --ann {a}/ann_othernames.json --images {c}/images",
     "missing"),
    ("explain transpose-r-smoke --weights {t}/good.pth --ann {t}/bad.json --images {c}/images", "not valid JSON"),
    ("explain transpose-r-smoke --weights {t}/good.pth --ann {t}/list.json --images {c}/images", "JSON object"),
    ("explain transpose-r-smoke --weights {t}/good.pth --ann {a}/nope.json --images {c}/images", "not found"),
    ("explain transpose-r-smoke --weights {t}/flipped.pth --ann {c}/person_keypoints_mini.json "
     "--images {c}/images", "checksum"),
]


@pytest.fixture(scope="module")
def adv(coco_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs for infer / explain: the mini images, undecodable / truncated / empty images, non-videos, a real
    6-frame clip, box files broken in every way, and random-init checkpoints of the other families."""
    import json
    import shutil

    import cv2
    import numpy as np
    import torch

    from poserepro.engine.checkpoint import save_checkpoint
    from poserepro.models.registry import create_model

    a = tmp_path_factory.mktemp("adv")
    shutil.copytree(coco_mini / "images", a / "imgs")
    for name in ("empty", "onlytxt", "mixed"):
        (a / name).mkdir()
    (a / "onlytxt" / "a.txt").write_text("x")
    (a / "garbage.jpg").write_text("not an image")
    (a / "empty.jpg").write_bytes(b"")
    (a / "readme.txt").write_text("hello")
    (a / "notvideo.mp4").write_text("not a video")
    (a / "zero.mp4").write_bytes(b"")
    first, second = sorted((a / "imgs").glob("*.jpg"))[:2]
    (a / "trunc.jpg").write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    shutil.copy(first, a / "mixed" / first.name)  # a good image beside a truncated one: the truncation is refused
    (a / "mixed" / second.name).write_bytes(second.read_bytes()[: second.stat().st_size // 2])
    vw = cv2.VideoWriter(str(a / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (64, 48))
    for i in range(6):
        vw.write(np.full((48, 64, 3), 30 * i, np.uint8))
    vw.release()
    det = json.loads((coco_mini / "person_detections_mini.json").read_text())
    d0 = det[0]
    boxes = {
        "other": [dict(d, image_id=d["image_id"] + 10**7) for d in det],
        "neg": [dict(d, bbox=[10, 10, -5, -5]) for d in det],
        "nonlist": [1, 2, 3],
        "str": [dict(d0, bbox=[0, 0, "a", 5])],
        "short": [dict(d0, bbox=[0, 0, 5])],
        "nobbox": [{k: v for k, v in d0.items() if k != "bbox"}],
        "noid": [{k: v for k, v in d0.items() if k != "image_id"}],
        "score_str": [dict(d0, score="high")],
        "idstr": [dict(d0, image_id="abc")],
        "frame99": [dict(d0, image_id=99)],
    }
    for name, content in boxes.items():
        (a / f"boxes_{name}.json").write_text(json.dumps(content))
    for name, bad in (("nan", "NaN, 0, 10, 10"), ("inf", "0, 0, Infinity, 10")):
        (a / f"boxes_{name}.json").write_text(
            f'[{{"image_id": {d0["image_id"]}, "category_id": 1, "bbox": [{bad}], "score": 1}}]')
    (a / "dict.json").write_text('{"a": 1}')
    ann = json.loads((coco_mini / "person_keypoints_mini.json").read_text())

    def variant(name: str, edit) -> None:  # noqa: ANN001
        d = json.loads(json.dumps(ann))
        edit(d)
        (a / f"ann_{name}.json").write_text(json.dumps(d))

    variant("idstr", lambda d: d["annotations"][0].update(image_id="x"))
    variant("noimgid", lambda d: d["annotations"][0].pop("image_id"))
    variant("imgidstr", lambda d: d["images"][0].update(id="notint"))
    variant("bboxstr", lambda d: d["annotations"][0].update(bbox=[0, 0, "w", 5]))
    variant("othernames", lambda d: [im.update(file_name="other_" + im["file_name"]) for im in d["images"]])
    torch.manual_seed(0)
    for short, model in (("tfpose", "tfpose_smoke"), ("prtr", "prtr_smoke"), ("prtr_e2e", "prtr_e2e_smoke"),
                         ("simplebaseline", "simplebaseline_smoke")):
        save_checkpoint(a / f"{short}.pth", {"model": create_model(model).state_dict()})
    return a


def _tree(p: Path) -> dict[str, bytes]:
    return {str(f.relative_to(p)): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("line,needle", ADVERSARIAL_LINES, ids=[c[0][:90] for c in ADVERSARIAL_LINES])
def test_adversarial_infer_export_explain(line: str, needle: str, scratch: Path, adv: Path, coco_mini: Path,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One line that says what to fix, and nothing written: not in the working folder, not in the inputs."""
    monkeypatch.chdir(tmp_path)
    before = _tree(scratch), _tree(adv)
    args = [x.format(t=scratch, a=adv, c=coco_mini, o=tmp_path) for x in line.split()]
    _one_line_error(CliRunner().invoke(app, args), needle)
    assert not any(tmp_path.iterdir()), sorted(tmp_path.rglob("*"))
    assert (_tree(scratch), _tree(adv)) == before


def test_the_same_image_given_twice_is_run_once(scratch: Path, adv: Path, tmp_path: Path) -> None:
    """A folder named twice (or a file and its folder) gives each image's results once, and says so."""
    import json

    out = tmp_path / "o"
    r = CliRunner().invoke(app, ["infer", str(adv / "imgs"), str(adv / "imgs"), str(next((adv / "imgs").iterdir())),
                                 "--model", "transpose-r-smoke", "--weights", str(scratch / "good.pth"),
                                 "--whole-image", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads((out / "keypoints.json").read_text())
    assert sorted(x["image_id"] for x in res) == [785, 40083, 196141, 197388]
    assert "given more than once" in r.output


def _hub_load(name: str, **kwargs):  # noqa: ANN003, ANN202
    import torch

    return torch.hub.load(str(Path(__file__).resolve().parents[1]), name, source="local", **kwargs)


#: (hub entry, its keyword arguments, environment, text of the one-line error)
HUB_CASES = [
    ("transpose_r_smoke", {"pretrained": True}, {}, "no released checkpoint for transpose_r_smoke"),
    ("tfpose_smoke", {"pretrained": True}, {}, "pretrained=True works for transpose_h_a4"),
    ("transpose_r_smoke", {"bogus_kw": 3}, {}, "takes no argument(s) bogus_kw"),
    ("transpose_r_smoke", {"num_joints": 0}, {}, "num_joints must be a whole number >= 1"),
    ("transpose_r_smoke", {"num_joints": "x"}, {}, "num_joints"),
    ("transpose_r_smoke", {"input_size": (0, 0)}, {}, "input_size"),
    ("prtr_smoke", {"num_queries": -1}, {}, "num_queries=-1"),
    ("transpose_r_a3", {"pretrained": True}, {"POSEREPRO_WEIGHTS_MIRROR": "{t}/adir"}, "http(s) URL"),
    ("transpose_r_a3", {"pretrained": True}, {"POSEREPRO_WEIGHTS": "{t}/afile"}, "is a file"),
    ("transpose_r_a3", {"pretrained": True}, {"POSEREPRO_WEIGHTS": "/proc/poserepro-w"}, "cannot write in /proc"),
]


@pytest.mark.parametrize("name,kwargs,env,needle", HUB_CASES, ids=[f"{c[0]}-{c[3][:30]}" for c in HUB_CASES])
def test_hub_entries_refuse_bad_arguments_in_one_line(name: str, kwargs: dict, env: dict, needle: str,  # type: ignore[type-arg]
                                                      scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``torch.hub.load(REPO, ...)`` raises a :class:`PoseReproError` whose one line says what to fix, before
    any download (a mirror that is not http(s), a cache that is a file or unwritable)."""
    from poserepro.errors import PoseReproError

    monkeypatch.delenv("POSEREPRO_WEIGHTS_MIRROR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(t=scratch))
    with pytest.raises(PoseReproError) as e:
        _hub_load(name, **kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert (scratch / "afile").read_text() == "x"


def test_hub_lists_every_model_and_names_an_unknown_entry() -> None:

    import importlib.util

    from poserepro.models.registry import list_models

    spec = importlib.util.spec_from_file_location("hubconf", Path(__file__).resolve().parents[1] / "hubconf.py")
    assert spec is not None and spec.loader is not None
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    # what torch.hub.list(REPO) shows: the module's public callables (hubconf's own imports are private)
    entries = [n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")]
    assert sorted(entries) == sorted(list_models())
    for bad in ("nope", "transpose-r-smoke"):  # torch.hub's own message names the entry it could not find
        with pytest.raises(RuntimeError, match=bad):
            _hub_load(bad)
    assert type(_hub_load("transpose_r_smoke")).__name__ == "TransPose"
