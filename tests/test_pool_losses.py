"""Pool losses (NCE, contrastive MAP, pointwise / pairwise / listwise ranking): hand-computed values, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import difftools
from difftools import (
    ContrastiveMAPLoss,
    ListwiseRankingLoss,
    NCELoss,
    PairwiseRankingLoss,
    PerInstance,
    PointwiseRankingLoss,
    SolutionPool,
    cached,
)

pytestmark = pytest.mark.timeout(60)

# A tiny pool, prediction, target and true objective; every value below is worked out by hand.
POOL = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
THETA_HAT = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)  # ⟨θ̂, w⟩ = 0, 1, 3
TARGET = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)  # ⟨θ̂, y⟩ = 0
THETA = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)  # ⟨θ, w⟩ = 3, 1, 2


def value(loss_type, sense, second, **options):
    loss = loss_type(SolutionPool(POOL), sense=sense, **options)
    return float(loss(THETA_HAT, second))


def test_nce_by_hand():
    # max: mean(0 − 0, 1 − 0, 3 − 0); min (costs): mean(0 − 0, 0 − 1, 0 − 3)
    assert value(NCELoss, "max", TARGET) == pytest.approx(4 / 3)
    assert value(NCELoss, "min", TARGET) == pytest.approx(-4 / 3)


def test_contrastive_map_by_hand():
    # max: max(0, 1, 3) − 0; min: ⟨ĉ, y⟩ − min ⟨ĉ, w⟩ = 0 − 0
    assert value(ContrastiveMAPLoss, "max", TARGET) == pytest.approx(3.0)
    assert value(ContrastiveMAPLoss, "min", TARGET) == pytest.approx(0.0)
    cheaper = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)  # ⟨ĉ, y⟩ = 1 > min = 0
    assert float(ContrastiveMAPLoss(SolutionPool(POOL), sense="min")(THETA_HAT, cheaper)) == pytest.approx(1.0)


def test_pointwise_by_hand():
    # θ̂ − θ = [−1, 2, −2]; ⟨θ̂ − θ, w⟩ = −3, 0, 1; mean of squares = 10/3, whatever the sense
    for sense in ("max", "min"):
        assert value(PointwiseRankingLoss, sense, THETA) == pytest.approx(10 / 3)


def test_pairwise_by_hand():
    # max: best true member w1 (3), predicted 0; others: relu(1 − 0) = 1, relu(3 − 0) = 3
    assert value(PairwiseRankingLoss, "max", THETA) == pytest.approx(2.0)
    assert value(PairwiseRankingLoss, "max", THETA, margin=1.0) == pytest.approx(3.0)  # relu(2), relu(4)
    # min: cheapest true member w2 (1); max-form predicted scores 0, −1, −3; others: relu(0 + 1), relu(−3 + 1)
    assert value(PairwiseRankingLoss, "min", THETA) == pytest.approx(0.5)
    assert value(PairwiseRankingLoss, "min", THETA, margin=2.5) == pytest.approx((3.5 + 0.5) / 2)


def test_listwise_by_hand():
    def cross_entropy(true, predicted, tau):
        t = [math.exp(v / tau) for v in true]
        target = [v / sum(t) for v in t]
        lse = math.log(sum(math.exp(v / tau) for v in predicted))
        return -sum(p * (s / tau - lse) for p, s in zip(target, predicted))

    assert value(ListwiseRankingLoss, "max", THETA) == pytest.approx(cross_entropy([3, 1, 2], [0, 1, 3], 1.0))
    assert value(ListwiseRankingLoss, "min", THETA) == pytest.approx(cross_entropy([-3, -1, -2], [0, -1, -3], 1.0))
    assert value(ListwiseRankingLoss, "max", THETA, temperature=0.5) == pytest.approx(
        cross_entropy([3, 1, 2], [0, 1, 3], 0.5)
    )


def test_gradients_by_hand():
    theta_hat = THETA_HAT.clone().requires_grad_()
    NCELoss(SolutionPool(POOL), sense="max")(theta_hat, TARGET).backward()
    torch.testing.assert_close(theta_hat.grad, POOL.mean(0) - TARGET)  # mean_w w − y
    theta_hat.grad = None
    NCELoss(SolutionPool(POOL), sense="min")(theta_hat, TARGET).backward()
    torch.testing.assert_close(theta_hat.grad, TARGET - POOL.mean(0))  # the min-sense gradient is minus it
    theta_hat.grad = None
    ContrastiveMAPLoss(SolutionPool(POOL), sense="max")(theta_hat, TARGET).backward()
    torch.testing.assert_close(theta_hat.grad, POOL[2] - TARGET)  # best member for θ̂ is w3
    theta_hat.grad = None
    PointwiseRankingLoss(SolutionPool(POOL), sense="max")(theta_hat, THETA).backward()
    errors = (THETA_HAT - THETA) @ POOL.T
    torch.testing.assert_close(theta_hat.grad, (2 * errors[:, None] * POOL).mean(0))


@pytest.mark.parametrize("sense", ["max", "min"])
@pytest.mark.parametrize(
    ("loss_type", "second", "options"),
    [
        (NCELoss, "target", {}),
        (ContrastiveMAPLoss, "target", {}),
        (PointwiseRankingLoss, "theta", {}),
        (PairwiseRankingLoss, "theta", {"margin": 0.3}),
        (ListwiseRankingLoss, "theta", {"temperature": 0.7}),
    ],
)
def test_gradcheck_in_float64_with_a_per_instance_pool(loss_type, second, options, sense):
    gen = torch.Generator().manual_seed(0)
    solutions = torch.randint(0, 2, (12, 5), generator=gen).double()
    owners = torch.arange(12) % 3
    pool = SolutionPool(solutions, per_instance=True, owners=owners)
    theta_hat = torch.randn(3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    other = solutions[:3].clone() if second == "target" else torch.randn(3, 5, generator=gen, dtype=torch.float64)
    loss = loss_type(pool, sense=sense, reduction="sum", **options)
    index = PerInstance(torch.arange(3))
    assert torch.autograd.gradcheck(lambda t: loss(t, other, pool_index=index), (theta_hat,))
    # Masking is the same as giving each instance its own pool.
    per_instance = loss(theta_hat, other, pool_index=index)
    alone = sum(
        loss_type(SolutionPool(pool.solutions[pool.owners == i]), sense=sense, reduction="sum", **options)(
            theta_hat[i : i + 1], other[i : i + 1]
        )
        for i in range(3)
    )
    torch.testing.assert_close(per_instance, alone)


def test_min_sense_is_max_sense_on_negated_objectives():
    gen = torch.Generator().manual_seed(1)
    pool = SolutionPool(torch.randint(0, 2, (10, 4), generator=gen).float())
    theta_hat, theta = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    for loss_type in (PairwiseRankingLoss, ListwiseRankingLoss, PointwiseRankingLoss):
        as_costs = loss_type(pool, sense="min", reduction="none")(theta_hat, theta)
        as_rewards = loss_type(pool, sense="max", reduction="none")(-theta_hat, -theta)
        torch.testing.assert_close(as_costs, as_rewards)


def test_a_cached_solver_refreshes_the_pool_and_gives_the_sense():
    solver = difftools.solver(lambda c: (c < 0).astype(c.dtype), sense="min", name="negatives")
    layer = cached(solver, solve_ratio=1.0)
    loss = NCELoss(layer)
    assert loss.sense == "min"
    theta_hat = torch.tensor([[1.0, -1.0, 2.0]], requires_grad=True)
    value = loss(theta_hat, torch.tensor([[0.0, 1.0, 0.0]]))
    assert layer.solver_calls == 1 and torch.equal(layer.pool.solutions, torch.tensor([[0.0, 1.0, 0.0]]))
    assert float(value.detach()) == 0.0  # the target is the only member, and it is optimal
    value.backward()
    torch.testing.assert_close(theta_hat.grad, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="sense='max' contradicts the cached solver's sense='min'"):
        NCELoss(layer, sense="max")


def test_training_with_contrastive_map_reduces_regret_when_the_pool_is_the_feasible_set():
    # All 0/1 vectors with exactly two ones: the pool is the whole feasible set, so its argmax is the true MAP.
    import itertools

    members = torch.tensor([[float(i in pair) for i in range(5)] for pair in itertools.combinations(range(5), 2)])
    pool = SolutionPool(members)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, 3, generator=gen)
    truth = x @ torch.randn(3, 5, generator=gen)
    target = pool.best(truth, "max")
    weights = torch.zeros(3, 5, requires_grad=True)
    optimiser = torch.optim.Adam([weights], lr=0.05)
    loss = ContrastiveMAPLoss(pool, sense="max")

    def regret() -> float:
        chosen = pool.best((x @ weights).detach(), "max")
        return float(difftools.regret(chosen, truth, target, sense="max", normalized=False))

    before = regret()
    for _ in range(150):
        optimiser.zero_grad()
        loss(x @ weights, target).backward()
        optimiser.step()
    assert regret() < 0.1 * before, (before, regret())


def test_bad_arguments():
    with pytest.raises(ValueError, match="a bare SolutionPool needs sense='max'"):
        NCELoss(SolutionPool(POOL))
    with pytest.raises(TypeError, match="pool must be a difftools.SolutionPool or a cached solver"):
        NCELoss(np.ones((2, 2)), sense="max")
    with pytest.raises(ValueError, match="margin must be a number >= 0"):
        PairwiseRankingLoss(SolutionPool(POOL), sense="max", margin=-1)
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        ListwiseRankingLoss(SolutionPool(POOL), sense="max", temperature=0)
    with pytest.raises(ValueError, match="reduction must be"):
        NCELoss(SolutionPool(POOL), sense="max", reduction="avg")
    loss = NCELoss(SolutionPool(POOL), sense="max")
    with pytest.raises(ValueError, match=r"target has shape \(2,\), expected theta_hat's \(3,\)"):
        loss(THETA_HAT, torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="θ has 4 entries per instance, the pool holds solutions of 3"):
        loss(torch.ones(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"context \['capacity'\] only reaches a solver"):
        loss(THETA_HAT, TARGET, capacity=3)
    assert "margin=0.5, sense='min', event_dim=1, reduction='mean'" in repr(
        PairwiseRankingLoss(SolutionPool(POOL), sense="min", margin=0.5)
    )
