"""Dependency areas: attention rows/columns of the predicted keypoints, per layer, at input resolution."""

from __future__ import annotations

import numpy as np
import torch

from poserepro import create_model
from poserepro.explain import dependency_areas


def test_dependency_maps_are_attention_rows_at_input_size() -> None:
    torch.manual_seed(0)
    model = create_model("transpose_r_smoke", num_layers=2).eval()
    maps = dependency_areas(model, torch.randn(3, 96, 72))
    assert maps.dependency.shape == (2, 17, 96, 72) and maps.affected.shape == (2, 17, 96, 72)
    # each dependency map is one softmax row (sums to 1 over the 12x9 grid) upsampled by the stride 8
    sums = maps.dependency.sum(axis=(2, 3)) / 64.0
    np.testing.assert_allclose(sums, 1.0, rtol=2e-2)
    assert (maps.keypoints >= 0).all() and (maps.keypoints[:, 0] < 72).all() and (maps.keypoints[:, 1] < 96).all()
    thr = dependency_areas(model, torch.randn(3, 96, 72), threshold=0.05)
    assert (thr.dependency == 0).any()
