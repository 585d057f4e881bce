"""Starting points (``model.init`` / ``--init``): the catalogue, the grammar, downloads and part loads.

Fake files are built from the official state-dict manifests (names, shapes and dtypes of the released files,
random values), saved with ``torch.save`` and served by a ThreadingHTTPServer on 127.0.0.1 that stands in for the
official hosts through ``$POSEREPRO_WEIGHTS_MIRROR`` (same paths). The catalogue's sha256 prefixes are replaced by
the fake files' own, as the download tests replace the dataset checksums; one test shows the real prefix refusing
a fake file.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from poserepro.cli.main import app
from poserepro.engine.build import build_model
from poserepro.engine.loop import load_initial_weights
from poserepro.errors import CheckpointError, DownloadError
from poserepro.models.registry import create_model
from poserepro.recipes import list_recipes, load_recipe
from poserepro.weights import catalogue as cat
from poserepro.weights.init import catalogue_rows, init_model, resolve_init, used_by
from poserepro.weights.keymaps import HRNET_S_LAYERS

from .conftest import FIXTURES, serve_directory, tiny_overrides

MANIFESTS = FIXTURES / "official-state-dict-keys"
pytestmark = pytest.mark.skipif(not MANIFESTS.is_dir(), reason="official key manifests not available")

#: catalogue name → manifest stem (the released file it stands for).
FAKES = {
    "resnet18": "resnet18-5c106cde", "resnet50": "resnet50-19c8e357", "resnet101": "resnet101-5d3b4d8f",
    "resnet152": "resnet152-b121ed2d",
    "hrnet_w32": "hrnetv2_w32_imagenet_pretrained", "hrnet_w48": "hrnetv2_w48_imagenet_pretrained",
    "detr_r50": "detr-r50-e632da11", "detr_r101": "detr-r101-2c7b67e5",
    "tp_r_256x192_enc4_d256_h1024_mh8": "tp_r_256x192_enc4_d256_h1024_mh8",
}

#: Expected loaded tensors (BatchNorm step counters not counted) by model, from the manifests README: ResNet-S is
#: ResNet-50's stem + layer1 + layer2; TransPose-H takes the classifier's 930 conv1..stage3 keys less 155 counters.
EXPECTED = {
    "transpose_r": ("resnet50", 120), "transpose_h_s": ("hrnet_w32", 775), "transpose_h": ("hrnet_w48", 775),
    "simplebaseline_r50": ("resnet50", 265), "tfpose_r18": ("resnet18", 100), "tfpose_r50": ("resnet50", 265),
    "prtr_r50": ("resnet50", 265), "prtr_r101": ("resnet101", 520), "prtr_hrnet_w32": ("hrnet_w32", 1629),
    "prtr_r152": ("resnet152", 775), "prtr_e2e_hrnet_w48": ("hrnet_w48", 1525),
    "prtr_e2e_r50": ("detr_r50", 458), "prtr_e2e_r101": ("detr_r101", 713),
    "prtr_detector_r50": ("detr_r50", 458), "prtr_detector_r101": ("detr_r101", 713),
}


_POOL = 1 << 22  # random values are cut at random offsets from one pool (drawing 300 M numbers takes seconds)


def _fake_state(stem: str, pool: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The manifest's keys, shapes and dtypes with random values; under ``file_entry`` where the file has one."""
    spec = json.loads((MANIFESTS / f"{stem}.keys.json").read_text())
    dtypes = spec.get("dtypes", {"*.num_batches_tracked": "int64", "*": "float32"})
    state = {}
    for key, shape in spec["keys"].items():
        dtype = getattr(torch, next(d for pat, d in dtypes.items() if fnmatch.fnmatch(key, pat)))
        n = int(torch.Size(shape).numel())
        if dtype == torch.int64:
            state[key] = torch.zeros(shape, dtype=dtype)
        elif n > _POOL // 2:
            state[key] = torch.rand(shape, generator=gen)
        else:
            start = int(torch.randint(0, _POOL - n + 1, (1,), generator=gen))
            state[key] = pool[start:start + n].reshape(shape).clone()
    return {spec["file_entry"]: state} if "file_entry" in spec else state


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fake file, saved once under the official file names."""
    folder = tmp_path_factory.mktemp("fakes")
    gen = torch.Generator().manual_seed(0)
    pool = torch.rand(_POOL, generator=gen)
    out = {}
    for name, stem in FAKES.items():
        path = folder / cat.CATALOGUE[name].filename
        torch.save(_fake_state(stem, pool, gen), path)
        out[name] = path
    return out


@pytest.fixture()
def no_random_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build models without drawing their random initial values (they are overwritten or never looked at): the
    paper models are large enough for that to be most of their build time."""
    for fn in ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "trunc_normal_"):
        monkeypatch.setattr(torch.nn.init, fn, lambda tensor, *a, **k: tensor)


@pytest.fixture(scope="module")
def host(fakes: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local stand-in for the official hosts: ``/<official path>`` → the fake file; yields (URL, its root)."""
    root = tmp_path_factory.mktemp("host")
    for name, path in fakes.items():
        url = cat.CATALOGUE[name].url
        if url:
            dest = root / re.sub(r"^https?://[^/]+/", "", url)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(path)
    with serve_directory(root) as url:
        yield url, root


@pytest.fixture(scope="module")
def prefixes(fakes: dict[str, Path]) -> dict[str, str]:
    return {name: _sha(path)[:8] for name, path in fakes.items()}


@pytest.fixture()
def served(host: tuple[str, Path], fakes: dict[str, Path], prefixes: dict[str, str], tmp_path_factory,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    """Mirror + cache set up; catalogue prefixes = the fakes'; HRNet files (no URL) placed in the cache by hand."""
    cache = tmp_path_factory.getbasetemp() / "weights-cache"
    cache.mkdir(exist_ok=True)
    monkeypatch.setenv("POSEREPRO_WEIGHTS", str(cache))
    monkeypatch.setenv(cat.MIRROR_ENV, host[0])
    for name, prefix in prefixes.items():
        entry = cat.CATALOGUE[name]
        if entry.sha256_prefix:
            monkeypatch.setitem(cat.CATALOGUE, name, dataclasses.replace(entry, sha256_prefix=prefix))
    for name in ("hrnet_w32", "hrnet_w48"):
        if not (cache / fakes[name].name).exists():
            (cache / fakes[name].name).symlink_to(fakes[name])
    return cache


def _paper_recipes() -> list[str]:
    return [r for r in list_recipes() if r != "smoke" and not r.endswith("-smoke")]


def _expected(model_name: str) -> tuple[str, int]:
    key = max((k for k in EXPECTED if model_name.startswith(k)), key=len)
    return EXPECTED[key]


# ------------------------------------------------------------------------------------------------ catalogue
def test_catalogue_lists_every_file_with_published_facts_only() -> None:
    names = set(cat.CATALOGUE)
    assert {"resnet18", "resnet50", "resnet101", "resnet152", "hrnet_w32", "hrnet_w48", "detr_r50",
            "detr_r101"} <= names
    from poserepro.weights.official import OFFICIAL_WEIGHTS

    assert set(OFFICIAL_WEIGHTS) <= names and all(cat.CATALOGUE[n].kind == "official" for n in OFFICIAL_WEIGHTS)
    r50, w32, detr = cat.CATALOGUE["resnet50"], cat.CATALOGUE["hrnet_w32"], cat.CATALOGUE["detr_r101"]
    assert r50.url == "https://download.pytorch.org/models/resnet50-19c8e357.pth" and r50.sha256_prefix == "19c8e357"
    assert detr.url == "https://dl.fbaipublicfiles.com/detr/detr-r101-2c7b67e5.pth" and detr.sha256_prefix == "2c7b67e5"
    assert w32.url is None and "HRNet-Image-Classification" in w32.where and w32.sha256_prefix is None
    assert all(e.size is None for e in cat.CATALOGUE.values())  # no publisher states a size
    assert r50.url_for("http://mirror:8/x") == "http://mirror:8/x/models/resnet50-19c8e357.pth"


def test_used_by_is_computed_from_the_recipes(no_random_init: None) -> None:
    users = used_by()
    assert "transpose-r-a4" in users["resnet50"] and "simplebaseline-r50" in users["resnet50"]
    assert "tfpose-r18-e6-d6" in users["resnet18"] and "prtr-r101-384x288" in users["resnet101"]
    assert "transpose-h-s" in users["hrnet_w32"] and "prtr-hrnet-w32-384x288" in users["hrnet_w32"]
    assert "transpose-h-a6" in users["hrnet_w48"]
    assert users["detr_r50"] == ("prtr-detector-r50", "prtr-e2e-r50")
    assert users["detr_r101"] == ("prtr-detector-r101", "prtr-e2e-r101")
    assert not any(r.endswith("smoke") for rs in users.values() for r in rs)
    assert {r["name"]: r["used_by"] for r in catalogue_rows()}["resnet152"] == "prtr-r152-mpii-384x384"


def test_cli_weights_list() -> None:
    result = CliRunner().invoke(app, ["weights", "list"])
    assert result.exit_code == 0, result.output
    for name in ("resnet50", "resnet152", "hrnet_w48", "detr_r101", "imagenet", "official", "19c8e357"):
        assert name in result.output


# -------------------------------------------------------------------------------------------------- grammar
def test_grammar() -> None:
    tp = create_model("transpose_r_a4")
    assert resolve_init("imagenet", tp).entry.name == "resnet50"
    assert resolve_init("imagenet:resnet101").entry.name == "resnet101"
    assert resolve_init("imagenet:/x/w.pth").path == "/x/w.pth"
    assert resolve_init("detr:r101").entry.name == "detr_r101" and resolve_init("detr:R50").entry.name == "detr_r50"
    assert resolve_init("official:transpose_r_a4").entry.name == "tp_r_256x192_enc4_d256_h1024_mh8"
    assert resolve_init("dino:/x/b.pth").scheme == "dino" and resolve_init("transfer:/c.pth").scheme == "transfer"
    assert resolve_init("runs/x/checkpoint.pth").scheme == "file"
    with pytest.raises(CheckpointError, match="not an ImageNet"):
        resolve_init("imagenet:detr_r50")
    with pytest.raises(CheckpointError, match="detr:r50"):
        resolve_init("detr:")
    with pytest.raises(CheckpointError, match="scratch"):
        resolve_init("imagenet", create_model("transpose_r_smoke"))
    with pytest.raises(CheckpointError, match="BoTNet"):
        resolve_init("imagenet", create_model("btranspose_c3a1_4h"))


# ------------------------------------------------------------------------------------- every paper recipe
def test_every_paper_recipe_names_its_starting_point() -> None:
    inits = {r: load_recipe(r).model.init for r in _paper_recipes()}
    assert inits["transpose-r-a4"] == inits["simplebaseline-r50"] == inits["tfpose-r18-e6-d6"] == "imagenet"
    assert inits["prtr-e2e-r50"] == "detr:r50" and inits["prtr-e2e-r101"] == "detr:r101"
    assert inits["btranspose-c3a1-4h"] is None and inits["transpose-r-a3star"] is None
    assert all(load_recipe(r).model.init is None for r in list_recipes() if r.endswith("smoke"))


def test_every_paper_recipe_init_downloads_verifies_and_loads(
    served: Path, fakes: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_random_init: None,
) -> None:
    """Each (model, joints, starting point) of the paper recipes once: recipes that differ only in head or schedule
    settings load the same backbone / detector tensors (``used_by`` resolves every recipe on its own)."""
    monkeypatch.chdir(tmp_path)  # transfer:weights/... recipes read a COCO checkpoint relative to the run
    done: dict[tuple, str] = {}
    checked = 0
    for stem in _paper_recipes():
        rec = load_recipe(stem)
        spec = rec.model.weights or rec.model.init
        if spec is None:
            continue
        key = (rec.model.name, rec.data.num_joints, spec)
        if key in done:
            continue
        model = build_model(rec)
        if spec.startswith("transfer:"):
            path = Path(spec.removeprefix("transfer:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            coco = create_model(rec.model.name, **rec.model.args, input_size=tuple(rec.data.input_size))
            state = {k: torch.rand_like(v) if v.is_floating_point() else v for k, v in coco.state_dict().items()}
            torch.save({"model": state}, path)  # (values drawn here: the model was built without an init)
            line = load_initial_weights(model, spec)
            assert torch.equal(model.state_dict()["reduce.weight"], state["reduce.weight"]), stem
            done[key] = line
            continue
        if spec.startswith("dino:"):  # the -Dino rows: a teacher backbone that `poserepro pretrain dino` writes
            path = Path(spec.removeprefix("dino:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            bb = {f"backbone.{k}": torch.rand_like(v) if v.is_floating_point() else v
                  for k, v in model.backbone.state_dict().items()}
            torch.save({"teacher": bb}, path)
            line = load_initial_weights(model, spec)
            assert line.startswith("loaded ") and "backbone tensors" in line and "(dino)" in line, (stem, line)
            assert torch.equal(model.state_dict()["backbone.conv1.weight"], bb["backbone.conv1.weight"]), stem
            done[key] = line
            continue
        line = load_initial_weights(model, spec)
        name, count = _expected(rec.model.name)
        assert line.startswith(f"loaded {count} / {count} "), (stem, line)
        assert f"from {name} (" in line, (stem, line)
        checked += _check_values(rec.model.name, model, line, fakes)
        done[key] = line
    assert len(done) >= 20 and checked == 3
    assert all((served / cat.CATALOGUE[n].filename).is_file() for n in ("resnet18", "resnet50", "detr_r101"))


def _check_values(model_name: str, model: torch.nn.Module, line: str, fakes: dict[str, Path]) -> bool:
    """Spot checks that tensors land where the key maps say (for three models; False for the others)."""
    own = model.state_dict()
    if model_name == "transpose_h_s":
        src = torch.load(fakes["hrnet_w32"], weights_only=True)
        assert torch.equal(own["backbone.stage3.3.fuse_layers.0.1.0.weight"], src["stage3.3.fuse_layers.0.1.0.weight"])
        assert {k.split(".")[1] for k in own if k.startswith("backbone.")} == set(HRNET_S_LAYERS)
    elif model_name == "prtr_r50":
        r50 = torch.load(fakes["resnet50"], weights_only=True)
        assert torch.equal(own["backbone.body.layer4.2.bn3.running_var"], r50["layer4.2.bn3.running_var"])
    elif model_name == "prtr_e2e_r50":
        detr = torch.load(fakes["detr_r50"], weights_only=True)["model"]
        assert torch.equal(own["class_embed.weight"], detr["class_embed.weight"][[1, 91]])
        assert torch.equal(own["backbone.layer3.5.conv2.weight"], detr["backbone.0.body.layer3.5.conv2.weight"])
        key = "transformer.decoder.layers.5.linear2.bias"
        assert torch.equal(own[key], detr[key])
        assert "person + no-object" in line and "kpt_transformer" in line
    else:
        return False
    return True


def test_official_and_dino(served: Path, tmp_path: Path) -> None:
    model = create_model("transpose_r_a4")
    assert "official" in init_model(model, "official:transpose_r_a4")
    bt = create_model("btranspose_c3a1_4h")
    teacher = {f"backbone.{k}": v + 1 for k, v in bt.backbone.state_dict().items()}
    teacher["head.last_layer.weight"] = torch.zeros(3)  # the DINO head: not part of the backbone
    torch.save({"teacher": teacher}, tmp_path / "dino.pth")
    fresh = create_model("btranspose_c3a1_4h")
    line = init_model(fresh, f"dino:{tmp_path / 'dino.pth'}")
    n = sum(1 for k in bt.backbone.state_dict() if not k.endswith("num_batches_tracked"))
    assert line.startswith(f"loaded {n} / {n} backbone tensors") and "1 file tensors unused" in line
    assert torch.equal(fresh.backbone.conv1.weight, teacher["backbone.conv1.weight"])
    torch.save({k.removeprefix("backbone."): v for k, v in teacher.items() if k.startswith("backbone.")},
               tmp_path / "plain.pth")
    assert init_model(create_model("btranspose_c3a1_4h"), f"dino:{tmp_path / 'plain.pth'}").startswith("loaded")


# ----------------------------------------------------------------------------------------------- refusals
def test_wrong_file_is_refused_in_one_line(served: Path, fakes: dict[str, Path]) -> None:
    model = create_model("simplebaseline_r50")
    with pytest.raises(CheckpointError) as err:
        init_model(model, f"imagenet:{fakes['resnet18']}")
    msg = str(err.value)
    assert "\n" not in msg and "does not fit" in msg and "wrong file" in msg
    with pytest.raises(CheckpointError, match="person DETR"):
        init_model(create_model("prtr_r50"), "detr:r50")


def test_published_prefix_refuses_another_file(host: tuple[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cat.MIRROR_ENV, host[0])
    with pytest.raises(DownloadError) as err:  # the real catalogue prefix 19c8e357 vs our fake file
        cat.fetch_entry(cat.CATALOGUE["resnet50"], cache_dir=tmp_path)
    assert "19c8e357" in str(err.value) and "\n" not in str(err.value)
    assert (tmp_path / "resnet50-19c8e357.pth.corrupt").is_file()


def test_hrnet_without_file_says_where_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSEREPRO_WEIGHTS", str(tmp_path))
    with pytest.raises(CheckpointError, match="HRNet-Image-Classification") as err:
        init_model(create_model("transpose_h_s"), "imagenet")
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def test_cli_train_refuses_init_and_weights_together() -> None:
    result = CliRunner().invoke(app, ["train", "transpose-r-smoke", "--init", "imagenet", "--weights", "x.pth"])
    assert result.exit_code != 0 and "not both" in result.output


def test_cli_train_init_records_the_report(tiny_synth: Path, tmp_path: Path) -> None:
    """``train --init dino:PATH`` goes through the loop: the report lands in meta.json."""
    smoke = create_model("transpose_r_smoke")
    torch.save({f"backbone.{k}": v for k, v in smoke.backbone.state_dict().items()}, tmp_path / "bb.pth")
    sets = [x for o in tiny_overrides(tiny_synth) for x in ("--set", o)]
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "transpose-r-smoke", *sets, "--run-dir", str(run),
                                      "--init", f"dino:{tmp_path / 'bb.pth'}"])
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "meta.json").read_text())
    assert meta["init"].startswith("loaded ") and "backbone tensors" in meta["init"] and "(dino)" in meta["init"]
    assert "init: loaded" in result.output
