"""Hungarian matchers against brute force on tiny problems; box utilities."""

from __future__ import annotations

import itertools

import pytest
import torch

from poserepro.codecs.matching import (
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
    generalized_box_iou,
    keypoint_cost,
    match_boxes,
    match_keypoints,
    readout_keypoints,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # a loaded 2-core machine: avoid OpenMP spinning


def _brute_min(cost: torch.Tensor) -> float:
    """Minimum over injective maps rows → columns of the summed cost of a (R, C) matrix, R <= C."""
    r, c = cost.shape
    return min(sum(float(cost[i, j]) for i, j in enumerate(cols)) for cols in itertools.permutations(range(c), r))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_keypoint_matcher_is_optimal(seed):
    g = torch.Generator().manual_seed(seed)
    b, q, k = 2, 5, 3
    logits = torch.randn(b, q, k + 1, generator=g)
    coords = torch.rand(b, q, 2, generator=g)
    targets = torch.rand(b, k, 2, generator=g)
    cost = keypoint_cost(logits, coords, targets, 1.0, 5.0)
    # the cost is 5·L1 − p(joint) with the softmax over all K+1 classes
    expect = 5 * torch.cdist(coords, targets, p=1) - logits.softmax(-1)[..., :k]
    torch.testing.assert_close(cost, expect.transpose(1, 2))
    for i, (rows, cols) in enumerate(match_keypoints(logits, coords, targets)):
        assert rows.tolist() == list(range(k)) and len(set(cols.tolist())) == k
        got = float(cost[i, rows, cols].sum())
        assert got == pytest.approx(_brute_min(cost[i]), abs=1e-6)


def test_fixed_queries_match_identity():
    logits, coords, targets = torch.randn(2, 17, 18), torch.rand(2, 17, 2), torch.rand(2, 17, 2)
    for rows, cols in match_keypoints(logits, coords, targets, fixed=True):
        assert rows.tolist() == cols.tolist() == list(range(17))
    assert readout_keypoints(torch.rand(2, 17, 17), fixed=True).tolist() == [list(range(17))] * 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_readout_is_optimal(seed):
    g = torch.Generator().manual_seed(seed)
    prob = torch.rand(3, 6, 4, generator=g)
    idx = readout_keypoints(prob)
    for i in range(3):
        assert len(set(idx[i].tolist())) == 4
        got = -float(prob[i, idx[i], torch.arange(4)].sum())
        assert got == pytest.approx(_brute_min(-prob[i].T), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_box_matcher_is_optimal(seed):
    g = torch.Generator().manual_seed(seed)
    q, n = 5, 3
    logits = torch.randn(1, q, 2, generator=g)
    boxes = torch.cat([torch.rand(1, q, 2, generator=g) * 0.6 + 0.2, torch.rand(1, q, 2, generator=g) * 0.3 + 0.1],
                      dim=-1)
    tb = torch.cat([torch.rand(n, 2, generator=g) * 0.6 + 0.2, torch.rand(n, 2, generator=g) * 0.3 + 0.1], dim=-1)
    (qi, ti), = match_boxes(logits, boxes, [{"boxes": tb}], 1.0, 5.0, 2.0)
    assert qi.tolist() == sorted(qi.tolist())
    cost = (-logits[0].softmax(-1)[:, [0]] + 5 * torch.cdist(boxes[0], tb, p=1)
            - 2 * generalized_box_iou(box_cxcywh_to_xyxy(boxes[0]), box_cxcywh_to_xyxy(tb)))
    got = float(cost[qi, ti].sum())
    assert got == pytest.approx(_brute_min(cost.T), abs=1e-5)


def test_box_matcher_empty_targets():
    (qi, ti), = match_boxes(torch.randn(1, 4, 2), torch.rand(1, 4, 4), [{"boxes": torch.zeros(0, 4)}])
    assert qi.numel() == ti.numel() == 0


def test_giou_and_conversions():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0], [0.5, 0.0, 1.5, 1.0]])
    giou = generalized_box_iou(a, b)[0]
    torch.testing.assert_close(giou, torch.tensor([1.0, -1 / 3, 1 / 3]))
    c = torch.tensor([[0.5, 0.4, 0.2, 0.3]])
    torch.testing.assert_close(box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(c)), c)
