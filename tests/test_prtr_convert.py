"""Official PRTR two-stage checkpoints → our modules: every key mapped, shapes equal, nothing left over, strict load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import poserepro.models.prtr  # noqa: F401  (registers the PRTR models)
from poserepro.errors import CheckpointError
from poserepro.models.registry import create_model
from poserepro.weights.prtr import convert_state_dict, detect_backbone, load_official, official_key_to_ours

FIXTURES = Path("/work/shared/fixtures/official-state-dict-keys")
CASES = {
    "prtr_res50_384x288": "prtr_r50",
    "prtr_res101_384x288": "prtr_r101",
    "prtr_w32_384x288": "prtr_hrnet_w32",
}


def _fake_checkpoint(stem: str, prefix: str = "") -> dict[str, torch.Tensor]:
    """A state dict with the official keys and shapes (values = a running index, to check they arrive)."""
    keys = json.loads((FIXTURES / f"{stem}.keys.json").read_text())["keys"]
    out = {}
    for i, (k, shape) in enumerate(keys.items()):
        dtype = torch.int64 if k.endswith("num_batches_tracked") else torch.float32
        out[prefix + k] = torch.full(shape, float(i % 97), dtype=dtype)
    return out


pytestmark = [pytest.mark.skipif(not FIXTURES.is_dir(), reason="official key manifests not available"),
              pytest.mark.usefixtures("one_thread")]


@pytest.mark.parametrize("stem", list(CASES))
def test_every_official_key_maps_and_loads_strictly(stem):
    official = _fake_checkpoint(stem, prefix="module.")  # DataParallel checkpoints carry this prefix
    assert detect_backbone(official) == CASES[stem]
    model = create_model(CASES[stem])
    ours = model.state_dict()
    converted = convert_state_dict(official)
    assert set(converted) == set(ours)  # every key mapped, nothing left over, nothing missing
    assert all(tuple(converted[k].shape) == tuple(v.shape) for k, v in ours.items())
    for k in official:  # the map is the identity up to the prefix and the Joiner index
        bare = k.removeprefix("module.")
        assert official_key_to_ours(k) == bare.replace("backbone.0.body.", "backbone.body.", 1)
    load_official(model, official)
    probe = "transformer.decoder.norm.weight"
    torch.testing.assert_close(model.state_dict()[probe], official["module." + probe])


def test_wrapped_and_mismatched_checkpoints(tmp_path):
    official = _fake_checkpoint("prtr_res50_384x288")
    path = tmp_path / "prtr.pth"
    torch.save({"state_dict": official}, path)
    model = create_model("prtr_r50")
    load_official(model, path)
    bad = dict(official)
    bad["class_embed.weight"] = torch.zeros(17, 256)
    with pytest.raises(CheckpointError, match="shape"):
        load_official(model, bad)
    missing = {k: v for k, v in official.items() if k != "query_embed.weight"}
    with pytest.raises(CheckpointError, match="missing"):
        load_official(model, missing)
