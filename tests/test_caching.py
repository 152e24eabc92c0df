"""Solution caching: the pool's argmax against brute force, bit-for-bit equality at solve_ratio=1, state_dict."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import torch
from torch import nn

import difftools
from difftools import PerInstance, SolutionPool, cached

pytestmark = pytest.mark.timeout(120)


def all_binary(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)))


def counting_topk(k: int = 2):
    """A numpy top-k solver (one instance per call) that counts the instances it solves."""
    calls = []

    def topk(theta: np.ndarray) -> np.ndarray:
        calls.append(1)
        z = np.zeros_like(theta)
        z[np.argsort(-theta, kind="stable")[:k]] = 1.0
        return z

    return difftools.solver(topk, sense="max", name="topk_numpy"), calls


# --------------------------------------------------------------------------- the pool
@pytest.mark.parametrize("sense", ["max", "min"])
def test_pool_best_is_the_brute_force_best_member(sense):
    gen = torch.Generator().manual_seed(0)
    members = all_binary(6)[torch.randperm(64, generator=gen)[:20]]
    pool = SolutionPool(members)
    theta = torch.randn(50, 6, generator=gen, dtype=torch.float64)
    best = pool.best(theta, sense)
    for t, b in zip(theta, best):
        values = [float(t @ w.double()) for w in members]
        target = max(values) if sense == "max" else min(values)
        assert float(t @ b) == target
        assert any(torch.equal(b.float(), w) for w in members)


def test_pool_of_every_binary_vector_gives_the_unconstrained_map():
    pool = SolutionPool(all_binary(5))
    theta = torch.randn(30, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(pool.best(theta, "max"), (theta > 0).float())
    torch.testing.assert_close(pool.best(theta, "min"), (theta < 0).float())


def test_pool_keeps_distinct_rows_in_insertion_order():
    pool = SolutionPool()
    assert pool.add(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])) == 2
    assert pool.add(torch.tensor([[1.0, 1.0], [0.0, 1.0]])) == 1
    torch.testing.assert_close(pool.solutions, torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    grid = SolutionPool(torch.ones(2, 3, 3))  # instances with event_dim 2 are flattened to rows
    assert grid.solutions.shape == (1, 9) and len(grid) == 1


def test_per_instance_pool_only_offers_an_instances_own_solutions():
    members = all_binary(4)
    owners = torch.arange(16) % 3
    pool = SolutionPool(members, per_instance=True, owners=owners)
    assert len(pool) == 16
    assert pool.add(members[:2], owners=torch.tensor([0, 0])) == 1  # member 1 is new for owner 0 only
    theta = torch.randn(9, 4, generator=torch.Generator().manual_seed(2))
    index = torch.tensor([0, 1, 2] * 3)
    best = pool.best(theta, "max", index)
    for t, i, b in zip(theta, index, best):
        own = pool.solutions[pool.owners == i]
        assert float(t @ b) == float((own @ t).max())
    assert pool.covers(torch.tensor([0, 2])) and not pool.covers(torch.tensor([0, 5]))


# --------------------------------------------------------------------------- the cached solver
def test_solve_ratio_zero_answers_from_the_pool_without_calling_the_solver():
    solver, calls = counting_topk()
    layer = cached(solver, solve_ratio=0.0)
    theta = torch.randn(8, 5, generator=torch.Generator().manual_seed(3))
    first = layer(theta)  # empty pool: the solver must run
    assert len(calls) == 8 and layer.solver_calls == 1 and layer.solved == 8
    torch.testing.assert_close(layer(theta), first)  # now every answer comes from the pool
    assert len(calls) == 8 and layer.pool_calls == 1 and layer.looked_up == 8
    other = torch.randn(4, 5, generator=torch.Generator().manual_seed(4))
    expected = layer.pool.best(other, "max")
    torch.testing.assert_close(layer(other), expected)


def test_min_sense_solver_looks_up_the_cheapest_member():
    costs = difftools.solver(lambda c: (c < 0).astype(c.dtype), sense="min", name="negatives")
    layer = cached(costs, SolutionPool(all_binary(3)), solve_ratio=0.0)
    c = torch.tensor([[1.0, -2.0, 0.5], [-1.0, -1.0, 3.0]])
    torch.testing.assert_close(layer(c), torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]))
    assert layer.sense == "min" and layer.solver_calls == 0


def test_solve_ratio_sets_the_fraction_of_calls_that_reach_the_solver():
    solver, _ = counting_topk()
    layer = cached(solver, solve_ratio=0.25, generator=torch.Generator().manual_seed(5))
    theta = torch.randn(2, 6, generator=torch.Generator().manual_seed(6))
    for _ in range(400):
        layer(theta)
    assert 0.19 < (layer.solver_calls - 1) / 399 < 0.31, layer.solver_calls
    assert layer.solver_calls + layer.pool_calls == 400


def test_same_generator_seed_gives_the_same_decisions():
    def run(seed):
        solver, _ = counting_topk()
        layer = cached(solver, solve_ratio=0.3, generator=torch.Generator().manual_seed(seed))
        gen = torch.Generator().manual_seed(0)
        outs = [layer(torch.randn(3, 6, generator=gen)) for _ in range(30)]
        return layer.solver_calls, torch.stack(outs)

    (calls_a, out_a), (calls_b, out_b) = run(7), run(7)
    assert calls_a == calls_b and torch.equal(out_a, out_b)
    assert run(8)[0] != calls_a or not torch.equal(run(8)[1], out_a)


def train(solver, steps: int = 15):
    """A few AIMLE steps of a linear model; returns the final weights and the last loss."""
    gen = torch.Generator().manual_seed(0)
    x, target = torch.randn(16, 4, generator=gen), torch.randn(16, 6, generator=gen)
    torch.manual_seed(1)
    model = nn.Linear(4, 6)
    layer = difftools.AIMLE(solver, samples=2, generator=torch.Generator().manual_seed(2))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(steps):
        loss = ((layer(model(x)) - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()]), loss.detach(), layer


def test_solve_ratio_one_trains_exactly_like_the_uncached_solver():
    plain, plain_loss, _ = train(counting_topk()[0])
    solver, calls = counting_topk()
    wrapped, wrapped_loss, layer = train(cached(solver, solve_ratio=1.0))
    assert torch.equal(plain, wrapped) and torch.equal(plain_loss, wrapped_loss)
    # Every instance went to the solver (none looked up), and the pool recorded the answers.
    assert len(calls) == layer.solver.solved > 0 and layer.solver.pool_calls == 0
    assert len(layer.solver.pool) > 0


@pytest.mark.parametrize(
    "make",
    [
        lambda s: difftools.Blackbox(s, lam=1e-3),
        lambda s: difftools.IMLE(s, lam=1e-3, noise=None),
        lambda s: difftools.AIMLE(s, central=False, noise=None, initial_alpha=1e-4),
    ],
    ids=["Blackbox", "IMLE", "AIMLE-forward"],
)
def test_forward_difference_takes_both_answers_from_the_same_source(make):
    # θ's top 2 are far from any tie, so a small step leaves MAP(θ) and the pool's best unchanged and
    # the true forward difference is exactly 0. A forward answer from the pool (a non-optimal member)
    # minus a backward answer from the solver would instead be a spurious ±1/λ gradient.
    solver = difftools.get_solver("topk", k=2)
    direction = torch.tensor([[1.0, -1.0, 1.0, -1.0, 1.0, -1.0]])
    decisions = set()
    for seed in range(16):
        theta = torch.tensor([[3.0, 2.0, 0.5, 0.2, 0.1, 0.0]], requires_grad=True)
        pool = SolutionPool(torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]]))
        layer = cached(solver, pool, solve_ratio=0.5, generator=torch.Generator().manual_seed(seed))
        (make(layer)(theta) * direction).sum().backward()
        assert torch.equal(theta.grad, torch.zeros_like(theta)), (seed, layer.solver_calls, layer.pool_calls)
        assert (layer.solver_calls, layer.pool_calls) in ((2, 0), (0, 2))  # one draw, two calls
        decisions.add(layer.solver_calls)
    assert decisions == {0, 2}  # both decisions were exercised


def test_paired_calls_reproduce_the_uncached_gradient_when_both_solve():
    solver = difftools.get_solver("topk", k=2)
    theta = torch.tensor([[3.0, 2.9, 0.5, 0.2], [0.1, 1.0, 0.9, 2.0]])
    grad_out = torch.tensor([[0.0, 2.0, -1.0, 0.0], [1.0, 0.0, 0.0, -3.0]])
    plain = theta.clone().requires_grad_()
    (difftools.Blackbox(solver, lam=1.0)(plain) * grad_out).sum().backward()
    layer = cached(solver, SolutionPool(torch.tensor([[0.0, 0.0, 1.0, 1.0]])), solve_ratio=0.0)
    wrapped = theta.clone().requires_grad_()
    with layer.decided(True):
        (difftools.Blackbox(layer, lam=1.0)(wrapped) * grad_out).sum().backward()
    assert torch.equal(wrapped.grad, plain.grad) and layer.solver_calls == 2 and layer.last_solved
    with layer.decided(False):
        layer(theta)
    assert layer.last_solved is False and layer.pool_calls == 1
    with pytest.raises(TypeError, match=r"decided\(solve\) needs a bool"):
        with layer.decided(1):
            pass


def test_caching_works_inside_every_kind_of_consumer():
    solver, calls = counting_topk()
    theta = torch.randn(4, 6, generator=torch.Generator().manual_seed(9), requires_grad=True)
    layer = cached(solver, solve_ratio=0.0)
    for consumer in (
        difftools.AIMLE(layer, samples=3),
        difftools.IMLE(layer, lam=1.0),
        difftools.Blackbox(layer),
        difftools.Perturbed(layer, noise_temperature=0.5, samples=3),
    ):
        out = consumer(theta)
        out.sum().backward()
    loss = difftools.SPOPlusLoss(layer)(theta, torch.randn(4, 6, generator=torch.Generator().manual_seed(10)))
    loss.backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()
    assert layer.solver_calls >= 1 and layer.pool_calls > 5


def test_state_dict_round_trip_inside_an_estimator():
    solver, _ = counting_topk()
    layer = difftools.AIMLE(cached(solver, solve_ratio=0.5, generator=torch.Generator().manual_seed(0)), samples=2)
    theta = torch.randn(5, 6, generator=torch.Generator().manual_seed(11), requires_grad=True)
    for _ in range(4):
        layer(theta).sum().backward()
    state = layer.state_dict()
    assert {"solver.pool.solutions", "solver.pool.owners"} <= set(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    fresh = difftools.AIMLE(cached(counting_topk()[0], solve_ratio=0.0), samples=2)
    assert len(fresh.solver.pool) == 0
    fresh.load_state_dict(torch.load(buffer))
    assert torch.equal(fresh.solver.pool.solutions, layer.solver.pool.solutions)
    assert torch.equal(fresh.solver.pool.owners, layer.solver.pool.owners)
    probe = torch.randn(7, 6, generator=torch.Generator().manual_seed(12))
    torch.testing.assert_close(fresh.solver(probe), layer.solver.pool.best(probe, "max"))


def test_per_instance_pool_reaches_through_estimator_samples():
    seen = []

    def count_ones(theta: np.ndarray, k: float) -> np.ndarray:
        seen.append(k)
        z = np.zeros_like(theta)
        z[np.argsort(-theta, kind="stable")[: int(k)]] = 1.0
        return z

    inner = difftools.solver(count_ones, sense="max", name="variable_topk")
    pool = SolutionPool(per_instance=True)
    layer = cached(inner, pool, solve_ratio=0.0)
    k = torch.tensor([1.0, 2.0, 3.0])
    theta = torch.randn(3, 5, generator=torch.Generator().manual_seed(13))
    estimator = difftools.AIMLE(layer, samples=2)
    first = estimator(theta, k=PerInstance(k), pool_index=PerInstance(torch.arange(3)))
    assert sorted(seen) == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]  # per-instance context reached the solver
    again = estimator(theta, k=PerInstance(k), pool_index=PerInstance(torch.arange(3)))
    assert len(seen) == 6  # answered from each instance's own pool: the sizes still match k
    torch.testing.assert_close(again.sum(-1), k.expand(2, 3))
    torch.testing.assert_close(first.sum(-1), k.expand(2, 3))


def test_cached_solver_repr_and_protocol():
    layer = cached(counting_topk()[0], solve_ratio=0.1)
    assert difftools.contract.is_solver(layer)
    assert "solve_ratio=0.1" in repr(layer) and "SolutionPool(size=0" in repr(layer)


def test_bad_arguments():
    solver, _ = counting_topk()
    with pytest.raises(ValueError, match=r"solve_ratio must be a number in \[0, 1\], got 1.5"):
        cached(solver, solve_ratio=1.5)
    with pytest.raises(TypeError, match="pool must be a difftools.SolutionPool"):
        cached(solver, pool=[1, 2])
    with pytest.raises(TypeError, match="generator must be a CPU torch.Generator"):
        cached(solver, generator=1)
    with pytest.raises(TypeError, match="already cached"):
        cached(cached(solver))
    with pytest.raises(ValueError, match="per-instance pool needs the context argument pool_index"):
        cached(solver, SolutionPool(per_instance=True))(torch.ones(2, 3))
    with pytest.raises(ValueError, match="'pool_index' was given but the pool is shared"):
        cached(solver)(torch.ones(2, 3), pool_index=PerInstance(torch.arange(2)))
    with pytest.raises(ValueError, match="pool_index must hold integer instance indices"):
        cached(solver, SolutionPool(per_instance=True))(torch.ones(2, 3), pool_index=PerInstance(torch.ones(2)))
    with pytest.raises(ValueError, match="a per-instance pool needs owners"):
        SolutionPool(per_instance=True).add(torch.ones(2, 3))
    with pytest.raises(ValueError, match="owners are only meaningful"):
        SolutionPool().add(torch.ones(2, 3), owners=torch.zeros(2))
    with pytest.raises(ValueError, match="solutions have 4 entries each, the pool holds rows of 3"):
        SolutionPool(torch.ones(2, 3)).add(torch.ones(1, 4))
    with pytest.raises(ValueError, match="the pool is empty"):
        SolutionPool().best(torch.ones(1, 3), "max")


@pytest.mark.cuda
def test_pool_lives_on_the_gpu():
    device = torch.device("cuda")
    layer = cached(difftools.get_solver("topk", k=2), solve_ratio=0.0).to(device)
    theta = torch.randn(64, 10, device=device)
    z = layer(theta)
    assert z.device.type == "cuda" and layer.pool.solutions.device.type == "cuda"
    torch.testing.assert_close(layer(theta), z)
    assert layer.pool_calls == 1
