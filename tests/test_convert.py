"""Official checkpoint conversion: every official key maps onto our modules with the same shape, strict loading,
and the converted model reproduces a reference forward written here from the official layer semantics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import typer
from torch import nn
from typer.testing import CliRunner

from poserepro import create_model
from poserepro.cli.convert import convert as convert_cmd
from poserepro.errors import CheckpointError, UnknownNameError
from poserepro.weights.official import (
    OFFICIAL_WEIGHTS,
    convert_state_dict,
    load_official,
    load_official_into,
    looks_official,
    official_name,
)

LAYOUTS_STRIDE = {"tp_r_256x192_enc3_d256_h1024_mh8": 8, "tp_h_32_256x192_enc4_d64_h128_mh1": 4}
KEYS_DIR = Path("/work/shared/fixtures/official-state-dict-keys")
LAYOUTS = {
    "tp_r_256x192_enc3_d256_h1024_mh8": "transpose_r_a3",
    "tp_r_256x192_enc4_d256_h1024_mh8": "transpose_r_a4",
    "tp_h_32_256x192_enc4_d64_h128_mh1": "transpose_h_s",
    "tp_h_48_256x192_enc4_d96_h192_mh1": "transpose_h_a4",
    "tp_h_48_256x192_enc6_d96_h192_mh1": "transpose_h_a6",
}


def _keys(layout: str) -> dict[str, list[int]]:
    path = KEYS_DIR / f"{layout}.keys.json"
    if not path.is_file():
        pytest.skip(f"fixture {path} not available")
    return json.loads(path.read_text())["keys"]


def random_official(keys: dict[str, list[int]], seed: int = 0, dtype: torch.dtype = torch.float32) -> dict:
    """Random tensors with the official names/shapes, scaled so that activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(0)
            continue
        if k.endswith("running_var") or (k.endswith(".weight") and len(shape) == 1):
            t = 0.5 + torch.rand(shape, generator=g, dtype=dtype)
        elif len(shape) == 1:
            t = 0.1 * torch.randn(shape, generator=g, dtype=dtype)
        elif len(shape) == 4 and "deconv" in k:  # ConvTranspose2d (in, out, k, k)
            t = torch.randn(shape, generator=g, dtype=dtype) * (2.0 / (shape[0] * 4)) ** 0.5
        elif len(shape) == 4:
            t = torch.randn(shape, generator=g, dtype=dtype) * (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
        elif len(shape) == 2:
            t = torch.randn(shape, generator=g, dtype=dtype) * shape[1] ** -0.5
        else:  # position embedding
            t = torch.randn(shape, generator=g, dtype=dtype)
        out[k] = t
    return out


# ------------------------------------------------------------------------- reference forward (official layout)
def _conv(sd: dict, x: torch.Tensor, p: str, stride: int = 1) -> torch.Tensor:
    w = sd[p + ".weight"]
    return F.conv2d(x, w, sd.get(p + ".bias"), stride, w.shape[-1] // 2)


def _bn(sd: dict, x: torch.Tensor, p: str) -> torch.Tensor:
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                        False, 0.0, 1e-5)


def _bottleneck(sd: dict, x: torch.Tensor, p: str, stride: int) -> torch.Tensor:
    out = F.relu(_bn(sd, _conv(sd, x, p + ".conv1"), p + ".bn1"))
    out = F.relu(_bn(sd, _conv(sd, out, p + ".conv2", stride), p + ".bn2"))
    out = _bn(sd, _conv(sd, out, p + ".conv3"), p + ".bn3")
    if p + ".downsample.0.weight" in sd:
        x = _bn(sd, _conv(sd, x, p + ".downsample.0", stride), p + ".downsample.1")
    return F.relu(out + x)


def _layer(sd: dict, x: torch.Tensor, name: str, stride: int) -> torch.Tensor:
    n = len({k.split(".")[1] for k in sd if k.startswith(name + ".")})
    for i in range(n):
        x = _bottleneck(sd, x, f"{name}.{i}", stride if i == 0 else 1)
    return x


def _basic(sd: dict, x: torch.Tensor, p: str) -> torch.Tensor:
    out = F.relu(_bn(sd, _conv(sd, x, p + ".conv1"), p + ".bn1"))
    return F.relu(_bn(sd, _conv(sd, out, p + ".conv2"), p + ".bn2") + x)


def _hr_module(sd: dict, xs: list[torch.Tensor], p: str) -> list[torch.Tensor]:
    xs = list(xs)
    for b in range(len(xs)):
        for k in range(4):
            xs[b] = _basic(sd, xs[b], f"{p}.branches.{b}.{k}")
    outs = sorted({int(m.group(1)) for k in sd if (m := re.match(re.escape(p) + r"\.fuse_layers\.(\d+)\.", k))})
    fused = []
    for i in outs:
        y = None
        for j in range(len(xs)):
            q = f"{p}.fuse_layers.{i}.{j}"
            if j == i:
                z = xs[j]
            elif j > i:  # 1×1 conv + BN + nn.Upsample(scale_factor=2^(j-i), nearest)
                z = F.interpolate(_bn(sd, _conv(sd, xs[j], q + ".0"), q + ".1"), scale_factor=2 ** (j - i),
                                  mode="nearest")
            else:
                z = xs[j]
                for k in range(i - j):
                    z = _bn(sd, _conv(sd, z, f"{q}.{k}.0", 2), f"{q}.{k}.1")
                    if k < i - j - 1:
                        z = F.relu(z)
            y = z if y is None else y + z
        fused.append(F.relu(y))
    return fused


def sine_pe(h: int, w: int, d: int, dtype: torch.dtype) -> torch.Tensor:
    """TransPose's 2-D sine table (FACTS §5.1): cumsum of ones / last value × 2π, T 10000, sin/cos interleaved,
    y features first; ``(h·w, 1, d)``."""
    ones = torch.ones(h, w, dtype=torch.float64)
    y = ones.cumsum(0) / (h + 1e-6) * 2 * torch.pi
    x = ones.cumsum(1) / (w + 1e-6) * 2 * torch.pi
    npf = d // 2
    dim_t = 10000 ** (2 * (torch.arange(npf, dtype=torch.float64) // 2) / npf)
    feats = []
    for v in (y, x):
        p = v[..., None] / dim_t
        feats.append(torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=3).flatten(2))
    return torch.cat(feats, dim=2).reshape(h * w, 1, d).to(dtype)


def _official_encoder(sd: dict, x: torch.Tensor, heads: int) -> torch.Tensor:
    """DETR/TransPose post-norm encoder on sequence-first tokens, PE added to q and k in every layer.

    The stored ``pos_embedding`` is used at its own grid; at another grid the sine table is regenerated."""
    b, d, h, w = x.shape
    src = x.flatten(2).permute(2, 0, 1)  # (L, B, d)
    pos = sd["pos_embedding"] if sd["pos_embedding"].shape[0] == h * w else sine_pe(h, w, d, x.dtype)
    n = len({k.split(".")[2] for k in sd if k.startswith("global_encoder.layers.")})
    for i in range(n):
        p = f"global_encoder.layers.{i}."
        mha = nn.MultiheadAttention(d, heads, dropout=0.1).to(x.dtype).eval()
        pa = p + "self_attn."
        mha.load_state_dict({k[len(pa):]: v for k, v in sd.items() if k.startswith(pa)})
        q = k = src + pos
        src2 = mha(q, k, value=src)[0]
        src = F.layer_norm(src + src2, (d,), sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        src2 = F.linear(F.relu(F.linear(src, sd[p + "linear1.weight"], sd[p + "linear1.bias"])),
                        sd[p + "linear2.weight"], sd[p + "linear2.bias"])
        src = F.layer_norm(src + src2, (d,), sd[p + "norm2.weight"], sd[p + "norm2.bias"])
    return src.permute(1, 2, 0).reshape(b, d, h, w)


def reference_transpose_r(sd: dict, x: torch.Tensor, heads: int = 8) -> torch.Tensor:
    x = F.max_pool2d(F.relu(_bn(sd, _conv(sd, x, "conv1", 2), "bn1")), 3, 2, 1)
    x = _layer(sd, _layer(sd, x, "layer1", 1), "layer2", 2)
    x = _official_encoder(sd, _conv(sd, x, "reduce"), heads)
    x = F.conv_transpose2d(x, sd["deconv_layers.0.weight"], None, stride=2, padding=1)
    x = F.relu(_bn(sd, x, "deconv_layers.1"))
    return _conv(sd, x, "final_layer")


def reference_transpose_h(sd: dict, x: torch.Tensor, heads: int = 1) -> torch.Tensor:
    x = F.relu(_bn(sd, _conv(sd, x, "conv1", 2), "bn1"))
    x = F.relu(_bn(sd, _conv(sd, x, "conv2", 2), "bn2"))
    x = _layer(sd, x, "layer1", 1)
    xs = [F.relu(_bn(sd, _conv(sd, x, "transition1.0.0"), "transition1.0.1")),
          F.relu(_bn(sd, _conv(sd, x, "transition1.1.0.0", 2), "transition1.1.0.1"))]
    xs = _hr_module(sd, xs, "stage2.0")
    xs = xs + [F.relu(_bn(sd, _conv(sd, xs[-1], "transition2.2.0.0", 2), "transition2.2.0.1"))]
    for m in range(4):
        xs = _hr_module(sd, xs, f"stage3.{m}")
    x = _official_encoder(sd, _conv(sd, xs[0], "reduce"), heads)
    return _conv(sd, x, "final_layer")


# ------------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_official_key_maps_with_its_shape(layout: str) -> None:
    keys = _keys(layout)
    official = {("module." + k if i % 2 else k): torch.zeros(s) for i, (k, s) in enumerate(keys.items())}
    model = create_model(LAYOUTS[layout])
    ours = convert_state_dict(official, LAYOUTS[layout], model)  # raises unless exact
    assert looks_official(official) and not looks_official(ours)
    own = model.state_dict()
    assert set(ours) == set(own) and len(ours) == len(keys)
    assert all(ours[k].shape == own[k].shape for k in own)
    model.load_state_dict(ours, strict=True)


@pytest.mark.parametrize("layout,reference,heads,size", [
    ("tp_r_256x192_enc3_d256_h1024_mh8", reference_transpose_r, 8, (256, 192)),  # the stored (random) PE
    ("tp_h_32_256x192_enc4_d64_h128_mh1", reference_transpose_h, 1, (128, 96)),  # sine regenerated at 32×24
])
def test_converted_forward_equals_official_reference(layout: str, reference, heads: int, size) -> None:
    sd = random_official(_keys(layout), seed=1, dtype=torch.float64)
    if size != (256, 192):  # the released checkpoints store the sine table of the training grid
        grid = (256 // LAYOUTS_STRIDE[layout], 192 // LAYOUTS_STRIDE[layout])
        sd["pos_embedding"] = sine_pe(*grid, sd["pos_embedding"].shape[-1], torch.float64)
    model = create_model(LAYOUTS[layout]).double().eval()
    model.load_state_dict(convert_state_dict(sd, LAYOUTS[layout], model), strict=True)
    x = torch.randn(1, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(x)
        ref = reference(sd, x, heads)
    assert ours.shape == ref.shape == (1, 17, size[0] // 4, size[1] // 4)
    assert (ours - ref).abs().max().item() < 1e-5 * max(1.0, ref.abs().max().item())


def _official_btranspose_keys(widths, blocks, mhsa_groups, heads=4, layers=4) -> dict[str, list[int]]:
    """Key names/shapes of the released BTranspose model, written from its module tree (model_alpha = backbone +
    reduce + encoder + PE; deconv_layers / final_layer at the top)."""
    keys: dict[str, list[int]] = {}

    def bn(p: str, c: int) -> None:
        keys.update({f"{p}.weight": [c], f"{p}.bias": [c], f"{p}.running_mean": [c], f"{p}.running_var": [c],
                     f"{p}.num_batches_tracked": []})

    keys["model_alpha.conv1.weight"] = [64, 3, 7, 7]
    bn("model_alpha.bn1", 64)
    inp, grid = 64, (64, 48)
    for g, (w, n) in enumerate(zip(widths, blocks), start=1):
        for i in range(n):
            stride = 2 if (g == 2 and i == 0) else 1
            p = f"model_alpha.layer{g}.{i}"
            keys[f"{p}.conv1.weight"] = [w, inp, 1, 1]
            bn(f"{p}.bn1", w)
            if g in mhsa_groups:
                for qkv in ("query", "key", "value"):
                    keys[f"{p}.conv2.0.{qkv}.weight"] = [w, w, 1, 1]
                    keys[f"{p}.conv2.0.{qkv}.bias"] = [w]
                keys[f"{p}.conv2.0.rel_h"] = [1, heads, w // heads, 1, grid[1]]
                keys[f"{p}.conv2.0.rel_w"] = [1, heads, w // heads, grid[0], 1]
            else:
                keys[f"{p}.conv2.weight"] = [w, w, 3, 3]
            bn(f"{p}.bn2", w)
            keys[f"{p}.conv3.weight"] = [4 * w, w, 1, 1]
            bn(f"{p}.bn3", 4 * w)
            if stride != 1 or inp != 4 * w:
                keys[f"{p}.shortcut.0.weight"] = [4 * w, inp, 1, 1]
                keys[f"{p}.shortcut.0.bias"] = [4 * w]
                bn(f"{p}.shortcut.1", 4 * w)
            if stride == 2:
                grid = (grid[0] // 2, grid[1] // 2)
            inp = 4 * w
    keys["model_alpha.reduce.weight"] = [256, inp, 1, 1]
    keys["model_alpha.pos_embedding"] = [768, 1, 256]
    for n in range(layers):
        p = f"model_alpha.global_encoder.layers.{n}"
        keys.update({f"{p}.self_attn.in_proj_weight": [768, 256], f"{p}.self_attn.in_proj_bias": [768],
                     f"{p}.self_attn.out_proj.weight": [256, 256], f"{p}.self_attn.out_proj.bias": [256],
                     f"{p}.linear1.weight": [1024, 256], f"{p}.linear1.bias": [1024],
                     f"{p}.linear2.weight": [256, 1024], f"{p}.linear2.bias": [256],
                     f"{p}.norm1.weight": [256], f"{p}.norm1.bias": [256],
                     f"{p}.norm2.weight": [256], f"{p}.norm2.bias": [256]})
    keys["deconv_layers.0.weight"] = [256, 256, 4, 4]
    bn("deconv_layers.1", 256)
    keys["final_layer.weight"] = [17, 256, 1, 1]
    keys["final_layer.bias"] = [17]
    return keys


@pytest.mark.parametrize("name,layout", [
    ("btranspose_c2a2_4h", ((64, 96, 128, 256), (3, 4, 6, 3), (3, 4), 4)),
    ("btranspose_c3a1_8h", ((64, 96, 128, 256), (3, 4, 6, 3), (4,), 8)),
])
def test_btranspose_official_layout_converts(name: str, layout) -> None:
    keys = _official_btranspose_keys(*layout)
    official = {k: torch.zeros(s) for k, s in keys.items()}
    model = create_model(name)
    ours = convert_state_dict(official, name, model)
    model.load_state_dict(ours, strict=True)
    assert sum(v.numel() for k, v in ours.items() if "running" not in k and "num_batches" not in k) == \
        sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def tp_r_a3_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sd = random_official(_keys("tp_r_256x192_enc3_d256_h1024_mh8"), seed=3)
    path = tmp_path_factory.mktemp("ckpt") / "tp_r_256x192_enc3_d256_h1024_mh8.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, path)
    return path


def test_load_official_file_and_errors(tp_r_a3_file: Path, tmp_path: Path) -> None:
    model = load_official(tp_r_a3_file, "transpose_r_a3")
    assert not model.training
    other = create_model("transpose_r_a3", pos_embed="learnable")  # a recipe-built model: same layout
    load_official_into(other, tp_r_a3_file)
    torch.testing.assert_close(other.state_dict()["encoder.layers.2.linear2.weight"],
                               model.state_dict()["encoder.layers.2.linear2.weight"])
    with pytest.raises(CheckpointError, match="does not fit"):
        load_official_into(create_model("transpose_r_a4"), tp_r_a3_file)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_official(tmp_path / "nope.pth", "transpose_r_a3")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_official(bad, "transpose_r_a3")
    with pytest.raises(CheckpointError, match="does not fit transpose_r_a4"):
        load_official(tp_r_a3_file, "transpose_r_a4")
    with pytest.raises(CheckpointError, match="does not fit transpose_h_s"):
        load_official(tp_r_a3_file, "transpose_h_s")
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"w": torch.zeros(1), "obj": nn.Linear(1, 1)}, unsafe)
    with pytest.raises(CheckpointError):
        load_official(unsafe, "transpose_r_a3")


def test_official_names_and_download(tp_r_a3_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(OFFICIAL_WEIGHTS) == set(LAYOUTS)
    assert {w.model for w in OFFICIAL_WEIGHTS.values()} == set(LAYOUTS.values())
    assert all(w.url.startswith("https://github.com/yangsenius/TransPose/releases/download/Hub/")
               for w in OFFICIAL_WEIGHTS.values())
    assert official_name("official:transpose-h-a6") == "tp_h_48_256x192_enc6_d96_h192_mh1"
    with pytest.raises(UnknownNameError, match="did you mean"):
        official_name("official:tp_r_256x192_enc5_d256_h1024_mh8")

    calls = []

    def fake_download(url, dest, *, size=None, sha256=None, md5=None, **kw):
        calls.append((url, Path(dest), size, sha256))
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes(tp_r_a3_file.read_bytes())
        return Path(dest)

    monkeypatch.setattr("poserepro.data.download.download_file", fake_download)
    monkeypatch.setenv("POSEREPRO_WEIGHTS", str(tmp_path / "cache"))
    model = load_official("official:tp_r_256x192_enc3_d256_h1024_mh8")
    assert type(model).__name__ == "TransPose" and len(model.encoder.layers) == 3
    assert calls[0][0].endswith("/Hub/tp_r_256x192_enc3_d256_h1024_mh8.pth")
    assert calls[0][1] == tmp_path / "cache" / "tp_r_256x192_enc3_d256_h1024_mh8.pth"

    app = typer.Typer()
    app.command("convert")(convert_cmd)
    app.command("other")(lambda: None)
    runner = CliRunner()
    out = tmp_path / "converted.pth"
    r = runner.invoke(app, ["convert", "official:tp_r_256x192_enc3_d256_h1024_mh8", "--out", str(out)])
    assert r.exit_code == 0, r.output
    from poserepro.weights.state import load_model_weights

    m = create_model("transpose_r_a3")
    load_model_weights(m, out)
    r = runner.invoke(app, ["convert", str(tp_r_a3_file)])
    assert r.exit_code == 2 and "--model" in r.output
    r = runner.invoke(app, ["convert", "--list"])
    assert r.exit_code == 0 and "tp_h_48_256x192_enc6_d96_h192_mh1" in r.output
