"""Tests for the Hungarian-matched Huber set-prediction loss (paper Section 2.3, slotlab.losses)."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from slotlab.losses import hungarian_huber_loss, hungarian_match, pairwise_huber_cost


def _brute_force_loss(pred: torch.Tensor, target: torch.Tensor) -> float:
    total = 0.0
    k = pred.shape[1]
    for b in range(pred.shape[0]):
        best = min(
            sum(F.huber_loss(pred[b, i], target[b, perm[i]], delta=1.0).item() for i in range(k))
            for perm in itertools.permutations(range(k))
        )
        total += best
    return total / pred.shape[0]


def test_pairwise_cost_matches_huber_per_pair():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 3, 19, generator=g) * 2  # large values exercise the linear part of Huber
    target = torch.rand(2, 3, 19, generator=g)
    cost = pairwise_huber_cost(pred, target)  # [B, K, K]
    assert cost.shape == (2, 3, 3)
    for b, i, j in itertools.product(range(2), range(3), range(3)):
        expected = F.huber_loss(pred[b, i], target[b, j], delta=1.0)
        torch.testing.assert_close(cost[b, i, j], expected)


def test_equals_brute_force_minimum_over_permutations():
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(5, 4, 19, generator=g)
    target = torch.rand(5, 4, 19, generator=g)
    loss = hungarian_huber_loss(pred, target)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(_brute_force_loss(pred, target), rel=1e-5, abs=1e-6)


def test_invariant_to_permuting_predictions_and_targets():
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(3, 6, 19, generator=g)
    target = torch.rand(3, 6, 19, generator=g)
    loss = hungarian_huber_loss(pred, target)
    perm_p = torch.randperm(6, generator=g)
    perm_t = torch.randperm(6, generator=g)
    torch.testing.assert_close(hungarian_huber_loss(pred[:, perm_p], target), loss)
    torch.testing.assert_close(hungarian_huber_loss(pred, target[:, perm_t]), loss)
    torch.testing.assert_close(hungarian_huber_loss(pred[:, perm_p], target[:, perm_t]), loss)


def test_match_recovers_known_permutation_and_huber_value():
    g = torch.Generator().manual_seed(3)
    target = torch.rand(1, 4, 19, generator=g)
    perm = torch.tensor([2, 0, 3, 1])
    noise = 0.01 * torch.randn(1, 4, 19, generator=g)
    pred = target[:, perm] + noise  # prediction i is a noisy copy of target perm[i]
    match = hungarian_match(pairwise_huber_cost(pred, target))
    assert match.dtype == torch.long
    assert match.tolist() == [perm.tolist()]
    loss = hungarian_huber_loss(pred, target)
    expected = sum(F.huber_loss(pred[0, i], target[0, perm[i]], delta=1.0) for i in range(4))
    torch.testing.assert_close(loss, expected)


def test_gradient_flows_to_predictions():
    g = torch.Generator().manual_seed(4)
    pred = torch.rand(2, 4, 19, generator=g).requires_grad_(True)
    target = torch.rand(2, 4, 19, generator=g)
    hungarian_huber_loss(pred, target).backward()
    assert pred.grad is not None
    assert torch.isfinite(pred.grad).all()
    assert pred.grad.abs().sum() > 0
    # every slot is matched to exactly one target, so every slot receives a gradient
    assert (pred.grad.abs().sum(dim=-1) > 0).all()


@pytest.mark.parametrize(
    "pred_shape,target_shape",
    [((2, 4, 19), (2, 5, 19)), ((2, 4, 19), (3, 4, 19)), ((4, 19), (4, 19)), ((2, 4, 19), (2, 4, 18))],
)
def test_shape_validation(pred_shape, target_shape):
    with pytest.raises(ValueError, match="shape"):
        hungarian_huber_loss(torch.zeros(pred_shape), torch.zeros(target_shape))


def test_hungarian_match_rejects_non_square_cost():
    with pytest.raises(ValueError, match=r"\[B, K, K\]"):
        hungarian_match(torch.zeros(2, 3, 4))
