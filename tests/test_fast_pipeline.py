"""The fast input pipeline produces TopDownDataset's crops and targets (same records, same augmentation)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from poserepro.data.coco import AugmentCfg, PersonRecord, TopDownDataset, gt_person_records
from poserepro.data.fast_pipeline import (
    CachedSource,
    FastTopDownDataset,
    SourceCache,
    affine_grid,
    collate_fast,
    warp_batch,
)
from poserepro.data.splits import make_dataset
from poserepro.keypoints import get_spec
from poserepro.recipes import load_recipe

from .conftest import tiny_overrides

STD255 = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255.0
EXACT_KEYS = ("joints", "joints_vis", "center", "scale", "rotation", "target_weight", "image_id", "index")


pytestmark = pytest.mark.usefixtures("one_thread")


def _records(root: Path, n: int = 24) -> list[PersonRecord]:
    recs = gt_person_records(root / "annotations" / "person_keypoints_train.json", root / "images" / "train",
                             192 / 256)
    return recs[:n]


def _pair(records: list[PersonRecord], **extra: object) -> tuple[TopDownDataset, dict]:
    kw = dict(input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0, train=True,
              flip_pairs=get_spec("coco").flip_pairs, augment=AugmentCfg(half_body_prob=0.5), seed=11)
    kw.update(extra)
    return TopDownDataset(records, **kw), kw


def _compare(ref: TopDownDataset, fast: FastTopDownDataset, epoch: int) -> tuple[torch.Tensor, dict, dict]:
    ref.set_epoch(epoch)
    fast.set_epoch(epoch)
    idx = range(len(ref))
    rb = default_collate([ref[i] for i in idx])
    fb = fast.transform(collate_fast([fast[i] for i in idx]))
    for k in EXACT_KEYS:
        assert torch.equal(rb[k], fb[k]), k
    assert fb["image"].shape == rb["image"].shape and fb["image"].is_contiguous()
    assert (rb["heatmaps"] - fb["heatmaps"]).abs().max() <= 1e-5
    return ((rb["image"] - fb["image"]) * STD255).abs(), rb, fb  # pixel differences in 0..255 units


@pytest.mark.parametrize("convention", ["dark", "hrnet"])
@pytest.mark.parametrize("cache", ["image", "region"])
def test_grid_warp_matches_opencv_pipeline(tiny_synth: Path, convention: str, cache: str) -> None:
    recs = _records(tiny_synth)
    ref, kw = _pair(recs, convention=convention)
    fast = FastTopDownDataset(recs, **kw, warp="grid", cache=cache)
    flips = 0
    for epoch in (0, 1):
        diff, rb, _ = _compare(ref, fast, epoch)
        # OpenCV rounds to uint8 (<= 0.5) and uses 1/32-px fixed-point coordinates; grid_sample is float32
        assert diff.mean() < 0.4, diff.mean()
        assert diff.max() <= 2.0, diff.max()
        flips += int((rb["center"][:, 0] != torch.tensor([r.center[0] for r in recs])).sum())
    assert flips > 0  # the augmentation really flipped some samples
    assert len(fast.cache) == (len({r.image_path for r in recs}) if cache == "image" else len(recs))


def test_cv2_warp_and_udp_targets_match(tiny_synth: Path) -> None:
    recs = _records(tiny_synth)
    for target in ("gaussian", "udp"):
        ref, kw = _pair(recs, target=target, convention="dark")
        fast = FastTopDownDataset(recs, **kw, warp="cv2")
        diff, _, _ = _compare(ref, fast, 3)
        assert diff.mean() < 0.01 and diff.max() <= 1.01  # the same OpenCV warp, up to the matrix rounding


def test_downsampled_region_cache_is_smaller_and_close(tmp_path: Path) -> None:
    # a smooth 1200x900 image and a large person: the crop never needs full resolution
    yy, xx = np.mgrid[0:900, 0:1200].astype(np.float32)
    img = np.stack([128 + 100 * np.sin(xx / 37.0), 128 + 100 * np.cos(yy / 41.0), (xx + yy) % 256], -1)
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), img.clip(0, 255).astype(np.uint8))
    joints = np.zeros((17, 3), np.float32)
    rec = PersonRecord(str(path), 1, (600.0, 450.0), (3.0, 4.0), joints)
    ref = TopDownDataset([rec], (192, 256), (48, 64), train=False)
    full = FastTopDownDataset([rec], (192, 256), (48, 64), train=False, cache="region", warp="grid")
    small = FastTopDownDataset([rec], (192, 256), (48, 64), train=False, cache="region", downsample=True, warp="grid")
    assert small.source(0).factor == 3 and full.source(0).factor == 1
    assert small.source(0).pixels.nbytes * 8 < full.source(0).pixels.nbytes
    r = ref[0]["image"][None]
    for ds, tol in ((full, 0.5), (small, 3.0)):
        out = ds.transform(collate_fast([ds[0]]))["image"]
        assert ((out - r) * STD255).abs().mean() < tol


def test_warp_batch_equals_cv2_including_border() -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    mats = [cv2.getRotationMatrix2D((20.0, 18.0), 30.0, 0.7), np.array([[1.3, 0.1, -12.0], [-0.2, 1.1, 5.0]])]
    inv = np.stack([cv2.invertAffineTransform(m) for m in mats])
    out = warp_batch(torch.from_numpy(src), torch.from_numpy(inv), (32, 24))
    for i, m in enumerate(mats):
        want = cv2.warpAffine(src[i], m, (32, 24), flags=cv2.INTER_LINEAR).astype(np.float32)
        got = out[i].permute(1, 2, 0).numpy()
        assert np.abs(got - want).max() <= 2.0 and np.abs(got - want).mean() < 0.5
    theta = torch.randn(3, 2, 3)
    assert torch.allclose(affine_grid(theta, (20, 13)), F.affine_grid(theta, [3, 1, 20, 13], align_corners=True),
                          atol=1e-6)


def test_source_cache_is_a_byte_bounded_lru() -> None:
    cache = SourceCache(max_bytes=3 * 300)
    for k in range(4):
        cache.put(k, CachedSource(np.zeros((10, 10, 3), np.uint8), (0, 0), 1, (10, 10)))
    assert len(cache) == 3 and cache.get(0) is None and cache.get(3) is not None and cache.bytes == 900
    cache.put("huge", CachedSource(np.zeros((100, 100, 3), np.uint8), (0, 0), 1, (100, 100)))
    assert cache.get("huge") is None and len(cache) == 3


def test_recipe_pipeline_fast_trains(tiny_synth: Path, tmp_path: Path) -> None:
    from poserepro.engine import train

    rec = load_recipe("transpose-r-smoke", tiny_overrides(tiny_synth) + [
        "data.pipeline=fast", "train.max_steps_per_epoch=2", "train.batch_size=4"])
    ds = make_dataset(rec, _records(tiny_synth)[:4], train=True)
    assert isinstance(ds, FastTopDownDataset) and ds.warp == "cv2"  # CPU recipe → OpenCV warps from the cache
    assert not isinstance(make_dataset(rec, _records(tiny_synth)[:4], train=False), FastTopDownDataset)
    res = train(rec, tmp_path / "run")
    assert np.isfinite(res.last_loss)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0]["steps"] == 2
