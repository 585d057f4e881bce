"""Sinkhorn (entropic OT) heatmap loss: zero for identical maps, grows with displacement, finite gradients,
masking, vectorisation, and the separable soft-min against a dense log-sum-exp reference."""

from __future__ import annotations

import pytest
import torch

from poserepro.losses.sinkhorn import SinkhornLoss, _softmin_grid, sinkhorn_divergence, sinkhorn_ot


def gaussian(cy: float, cx: float, h: int = 32, w: int = 24, sigma: float = 1.5) -> torch.Tensor:
    y = torch.arange(h, dtype=torch.float32)[:, None]
    x = torch.arange(w, dtype=torch.float32)[None, :]
    return torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))


def test_identical_distributions_give_zero() -> None:
    t = torch.stack([gaussian(10, 8), gaussian(20, 5)])[None]  # (1, 2, h, w)
    loss = SinkhornLoss()(t.clone(), t, torch.ones(1, 2))
    assert abs(loss.item()) < 1e-6


def test_grows_with_displacement_and_gradients_finite() -> None:
    target = gaussian(16, 12)[None, None]
    losses = []
    for d in (0, 1, 2, 4, 8):
        pred = gaussian(16, 12 + d)[None, None].requires_grad_()
        loss = SinkhornLoss()(pred, target, torch.ones(1, 1))
        loss.backward()
        assert torch.isfinite(pred.grad).all()
        losses.append(loss.item())
    assert all(b > a for a, b in zip(losses, losses[1:]))
    # squared-Euclidean ground cost: roughly quadratic in the shift once it exceeds the blur
    assert losses[4] / losses[3] == pytest.approx(4.0, rel=0.35)


def test_target_weight_masks_joints_and_empty_targets() -> None:
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 16, 12)
    target = torch.stack([gaussian(4, 4, 16, 12), gaussian(8, 6, 16, 12), torch.zeros(16, 12)])[None].repeat(2, 1, 1, 1)
    w = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    loss = SinkhornLoss()(pred, target, w)
    only_first = SinkhornLoss()(pred[:, :1], target[:, :1], torch.ones(2, 1))
    assert loss.item() == pytest.approx(only_first.item(), rel=1e-5)  # joint 1 masked, joint 2 has no mass
    assert SinkhornLoss()(pred, target, torch.zeros(2, 3)).item() == 0.0


def test_vectorised_equals_loop_and_shapes() -> None:
    torch.manual_seed(1)
    a = torch.rand(5, 12, 10)
    b = torch.rand(5, 12, 10)
    a, b = a / a.sum((1, 2), keepdim=True), b / b.sum((1, 2), keepdim=True)
    batched = sinkhorn_divergence(a, b)
    looped = torch.cat([sinkhorn_divergence(a[i : i + 1], b[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-7)
    assert (batched > 0).all()


def test_separable_softmin_matches_dense_logsumexp() -> None:
    torch.manual_seed(2)
    h, w, eps = 6, 5, 0.05
    z = torch.randn(3, h, w, dtype=torch.float64)
    scale = 1.0 / (max(h, w) - 1)
    r = torch.arange(h, dtype=torch.float64) * scale
    c = torch.arange(w, dtype=torch.float64) * scale
    yy, xx = torch.meshgrid(r, c, indexing="ij")
    pts = torch.stack([yy.flatten(), xx.flatten()], 1)
    cost = torch.cdist(pts, pts) ** 2  # (hw, hw)
    dense = torch.logsumexp(z.flatten(1)[:, None, :] - cost[None] / eps, dim=-1).view(3, h, w)
    log_ky = -((r[:, None] - r[None]) ** 2) / eps
    log_kx = -((c[:, None] - c[None]) ** 2) / eps
    torch.testing.assert_close(_softmin_grid(z, log_kx, log_ky), dense)


def test_ot_value_is_positive_transport_cost_scale() -> None:
    a = gaussian(4, 4, 16, 16)[None]
    b = gaussian(4, 12, 16, 16)[None]
    a, b = a / a.sum(), b / b.sum()
    div = sinkhorn_divergence(a, b, eps=0.025, iters=50).item()
    true_w2 = (8 / 15) ** 2  # a translation by 8 px on a grid normalised by 15: S_ε = |τ|² (up to the borders)
    assert div == pytest.approx(true_w2, rel=0.05)
    assert torch.isfinite(sinkhorn_ot(a, b)).all()


@pytest.mark.parametrize("transform", ["relu", "softmax"])
def test_transforms_and_mse_term(transform: str) -> None:
    torch.manual_seed(3)
    pred = torch.randn(2, 4, 16, 12, requires_grad=True)
    target = gaussian(8, 6, 16, 12)[None, None].repeat(2, 4, 1, 1)
    loss = SinkhornLoss(pred_transform=transform, temperature=0.1, mse_weight=1.0)(pred, target, torch.ones(2, 4, 1))
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
