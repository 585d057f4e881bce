"""Official checkpoints of every code base, in every layout its code writes, through ``poserepro convert`` and
``--weights``: plain ``state_dict()`` dumps, ``module.``-prefixed (DataParallel) ones, and the training
``checkpoint.pth`` dict of the HRNet-derived ``tools/train.py`` (``{"epoch", "model": <name string>,
"state_dict": <DataParallel state>, "best_state_dict", "perf", "optimizer", ...}``, TransPose and PRTR alike)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from poserepro import create_model
from poserepro.cli.main import app
from poserepro.weights.official import code_base_of
from poserepro.weights.state import load_model_weights

from .test_convert import _keys, _official_btranspose_keys, random_official

# (official file stem or btranspose layout, registered model, code base, a converted key to probe)
CASES = {
    "transpose-r": ("tp_r_256x192_enc3_d256_h1024_mh8", "transpose_r_a3", "transpose",
                    "encoder.layers.0.linear1.weight"),
    "transpose-h": ("tp_h_32_256x192_enc4_d64_h128_mh1", "transpose_h_s", "transpose", "head.final_layer.weight"),
    "btranspose": ("btranspose", "btranspose_c3a1_8h", "btranspose", "head.final_layer.weight"),
    "prtr": ("prtr_res50_384x288", "prtr_r50", "prtr", "transformer.decoder.norm.weight"),
}


def _official(case: str) -> dict[str, torch.Tensor]:
    stem = CASES[case][0]
    if stem == "btranspose":
        keys = _official_btranspose_keys((64, 96, 128, 256), (3, 4, 6, 3), (4,), 8)
        return {f"model_alpha.{k}" if not k.startswith("model_alpha.") else k: v
                for k, v in random_official(keys, seed=5).items()}
    return random_official(_keys(stem), seed=5)


def _layout(state: dict[str, torch.Tensor], layout: str) -> dict:
    prefixed = {"module." + k: v for k, v in state.items()}
    if layout == "plain":
        return state
    if layout == "module":
        return prefixed
    return {"epoch": 12, "model": "pose_transformer", "state_dict": prefixed, "best_state_dict": state,
            "perf": 0.71, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
            "train_global_steps": 120, "valid_global_steps": 12}


@pytest.mark.parametrize("layout", ["plain", "module", "checkpoint"])
@pytest.mark.parametrize("case", list(CASES))
def test_official_layouts_convert_and_load(case: str, layout: str, tmp_path: Path, one_thread) -> None:
    stem, model_name, code, probe = CASES[case]
    official = _official(case)
    assert code_base_of(official) == code
    src = tmp_path / "official.pth"
    torch.save(_layout(official, layout), src)

    # --weights: detected, converted through its own code base's map, strict
    direct = create_model(model_name)
    load_model_weights(direct, src)

    # poserepro convert (PRTR names its model from its backbone; the others take --model)
    out = tmp_path / "ours.pth"
    args = ["convert", str(src), "--out", str(out)] + ([] if code == "prtr" else ["--model", model_name])
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"model {model_name}" in r.output
    converted = create_model(model_name)
    load_model_weights(converted, out)
    for m in (direct, converted):
        torch.testing.assert_close(m.state_dict()[probe], _value_of(official, probe, code), rtol=0, atol=0)
    torch.testing.assert_close(direct.state_dict(), converted.state_dict(), rtol=0, atol=0)


def _value_of(official: dict[str, torch.Tensor], probe: str, code: str) -> torch.Tensor:
    if code == "prtr":
        return official[probe]
    if probe.startswith("head."):
        key = probe.removeprefix("head.")
        return official.get(key, official.get(f"model_alpha.{key}"))
    return official[probe.replace("encoder.", "global_encoder.", 1)]


def test_prtr_no_longer_goes_through_the_transpose_map(tmp_path: Path) -> None:
    """The defect of the issue: PRTR keys must not come out ``backbone.``-prefixed (458 missing / unexpected)."""
    from poserepro.weights.official import convert_official

    state = convert_official(_official("prtr"))
    assert "transformer.encoder.layers.0.self_attn.in_proj_weight" in state
    assert not any(k.startswith("backbone.transformer") for k in state)


def test_from_code_and_errors(tmp_path: Path) -> None:
    src = tmp_path / "prtr.pth"
    torch.save(_official("prtr"), src)
    run = CliRunner().invoke
    r = run(app, ["convert", str(src), "--from-code", "detr", "--out", str(tmp_path / "x.pth")])
    assert r.exit_code != 0 and "--from-code must be one of transpose, btranspose, prtr" in r.output
    r = run(app, ["convert", str(src), "--from-code", "transpose", "--model", "prtr_r50",
                  "--out", str(tmp_path / "x.pth")])
    assert r.exit_code != 0 and "does not fit" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.pth").exists()
    ours = tmp_path / "ours.pth"
    torch.save({"model": create_model("transpose_r_smoke").state_dict()}, ours)
    r = run(app, ["convert", str(ours), "--model", "transpose_r_smoke", "--out", str(tmp_path / "y.pth")])
    assert r.exit_code != 0 and "cannot tell which code base" in r.output
