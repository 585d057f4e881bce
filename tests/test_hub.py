"""``hubconf.py``: ``torch.hub.load(REPO, NAME, source="local")`` builds registered models, and ``pretrained=True``
downloads the released checkpoint through the weights catalogue from a 127.0.0.1 stand-in for the release host
(``$POSEREPRO_WEIGHTS_MIRROR``, same paths), serving a file with the official TP-R-A4 keys and shapes (from the
key manifest) and random values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from poserepro.errors import CheckpointError
from poserepro.weights.catalogue import CATALOGUE, MIRROR_ENV
from poserepro.weights.hub import hub_model, released_models

from .conftest import FIXTURES, REPO, serve_directory

MANIFEST = FIXTURES / "official-state-dict-keys" / "tp_r_256x192_enc4_d256_h1024_mh8.keys.json"
ENTRY = CATALOGUE["tp_r_256x192_enc4_d256_h1024_mh8"]


def test_hub_lists_and_builds_registered_models() -> None:
    import hubconf  # importable from the repository root, as torch.hub imports it
    from poserepro.models.registry import list_models

    for name in list_models():
        assert callable(getattr(hubconf, name)), name
    model = torch.hub.load(str(REPO), "tfpose_smoke", source="local", num_joints=16, verbose=False)
    assert type(model).__name__ == "TFPose" and not model.training and model.num_joints == 16
    assert "released tp_r_256x192_enc4" in (hubconf.transpose_r_a4.__doc__ or "")


def test_hub_pretrained_without_release_is_one_line() -> None:
    assert set(released_models()) == {"transpose_r_a3", "transpose_r_a4", "transpose_h_s", "transpose_h_a4",
                                      "transpose_h_a6"}
    with pytest.raises(CheckpointError, match="no released checkpoint for tfpose_smoke: pretrained=True works for"):
        hub_model("tfpose_smoke", pretrained=True)


@pytest.fixture()
def release_host(tmp_path: Path) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """A local host serving a fake TP-R-A4 release at the official path; yields (mirror URL, its state)."""
    if not MANIFEST.is_file():
        pytest.skip("official key manifest not available")
    keys = json.loads(MANIFEST.read_text())["keys"]
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.zeros(s, dtype=torch.int64) if k.endswith("num_batches_tracked")
                 else torch.rand(s, generator=gen)) for k, s in keys.items()}
    root = tmp_path / "host"
    dest = root / re.sub(r"^https?://[^/]+/", "", ENTRY.url or "")
    dest.parent.mkdir(parents=True)
    torch.save(state, dest)
    with serve_directory(root) as url:
        yield url, state


def test_hub_pretrained_from_local_mirror(release_host: tuple[str, dict[str, torch.Tensor]], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, one_thread: None) -> None:
    url, state = release_host
    monkeypatch.setenv(MIRROR_ENV, url)
    monkeypatch.setenv("POSEREPRO_WEIGHTS", str(tmp_path / "cache"))
    model = torch.hub.load(str(REPO), "transpose_r_a4", source="local", pretrained=True, verbose=False)
    assert (tmp_path / "cache" / ENTRY.filename).is_file()
    sd = model.state_dict()
    assert torch.equal(sd["pos_embed.weight"], state["pos_embedding"].reshape(768, 256))
    assert torch.equal(sd["backbone.conv1.weight"], state["conv1.weight"])
    assert torch.equal(sd["encoder.layers.3.linear2.weight"], state["global_encoder.layers.3.linear2.weight"])
    assert torch.equal(sd["head.final_layer.weight"], state["final_layer.weight"])
    assert not model.training
