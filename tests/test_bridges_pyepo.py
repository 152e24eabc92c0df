"""The PyEPO bridge: from_pyepo against PyEPO's own solve (both senses), SPO+ against PyEPO's SPO+."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import difftools
from difftools import SolverError, from_pyepo

pyepo = pytest.importorskip("pyepo", reason="the PyEPO bridge tests need pyepo (pip install difftools[pyepo])")
from pyepo.model.ort import knapsackModel, shortestPathModel  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def pyepo_solve(optmodel, costs: np.ndarray) -> np.ndarray:
    out = []
    for c in costs:
        optmodel.setObj(c)
        solution, _ = optmodel.solve()
        out.append(np.asarray(solution, dtype=np.float64))
    return np.stack(out)


def test_shortest_path_is_a_min_solver_matching_pyepo():
    solver = from_pyepo(shortestPathModel((4, 4)))
    assert solver.sense == "min" and solver.event_dim == 1 and solver.num_cost == 24
    costs = np.random.default_rng(0).uniform(0.1, 2.0, (12, 24))
    z = solver(torch.from_numpy(costs))
    np.testing.assert_array_equal(z.numpy(), pyepo_solve(shortestPathModel((4, 4)), costs))
    # A path from corner to corner on a 4 × 4 grid of right/down arcs has 6 arcs.
    np.testing.assert_array_equal(z.sum(-1).numpy(), np.full(12, 6.0))


def test_knapsack_is_a_max_solver_matching_pyepo_and_brute_force():
    rng = np.random.default_rng(1)
    weights, capacity = rng.integers(1, 6, (1, 7)).astype(float), np.array([9.0])
    solver = from_pyepo(knapsackModel(weights=weights, capacity=capacity))
    assert solver.sense == "max"
    values = rng.uniform(0.0, 3.0, (10, 7))
    z = solver(torch.from_numpy(values)).numpy()
    np.testing.assert_array_equal(z, pyepo_solve(knapsackModel(weights=weights, capacity=capacity), values))
    subsets = np.array(np.meshgrid(*[[0.0, 1.0]] * 7)).reshape(7, -1).T
    feasible = subsets[(subsets @ weights.T <= capacity).all(1)]
    np.testing.assert_allclose(np.einsum("bi,bi->b", values, z), (values @ feasible.T).max(1))


def test_the_sense_reaches_the_estimators():
    # AIMLE through a "min" PyEPO model must match AIMLE through the same solver written by hand.
    optmodel = shortestPathModel((3, 3))
    bridged = from_pyepo(optmodel)
    by_hand = difftools.solver(lambda c: pyepo_solve(shortestPathModel((3, 3)), c[None])[0], sense="min")
    theta = torch.rand(4, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.1
    grads = []
    for solver in (bridged, by_hand):
        t = theta.clone().requires_grad_()
        layer = difftools.AIMLE(solver, initial_alpha=1.0, generator=torch.Generator().manual_seed(3))
        (layer(t) * torch.arange(12.0, dtype=torch.float64)).sum().backward()
        grads.append(t.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_spo_plus_through_the_bridge_equals_pyepo_spo_plus():
    grid = (5, 5)
    optmodel = shortestPathModel(grid)
    x, c = pyepo.data.shortestpath.genData(32, 5, grid, deg=4, noise_width=0.5, seed=135)
    dataset = pyepo.data.dataset.optDataset(optmodel, x, c)
    features, costs, solutions, objectives = (torch.stack(t) for t in zip(*[dataset[i] for i in range(len(dataset))]))
    predicted = torch.randn(costs.shape, generator=torch.Generator().manual_seed(4)).requires_grad_()
    theirs = pyepo.func.SPOPlus(optmodel)(predicted, costs, solutions, objectives)
    (grad_theirs,) = torch.autograd.grad(theirs, predicted)
    ours = difftools.SPOPlusLoss(from_pyepo(shortestPathModel(grid)))(predicted, costs, solution=solutions)
    (grad_ours,) = torch.autograd.grad(ours, predicted)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=0, atol=1e-7)


def test_bad_input():
    with pytest.raises(TypeError, match="expected a PyEPO optModel"):
        from_pyepo(object())
    solver = from_pyepo(shortestPathModel((3, 3)))
    with pytest.raises(ValueError, match=r"θ has shape \(2, 5\), expected \[\*, 12\]"):
        solver(torch.ones(2, 5))
    with pytest.raises(TypeError, match="takes no context"):
        solver(torch.ones(12), capacity=1)
    with pytest.raises(ValueError, match="θ contains NaN"):
        solver(torch.full((12,), float("nan")))
    assert repr(solver) == "PyEPOSolver(shortestPathModel, n=12, sense='min')"

    class Broken(shortestPathModel):
        def solve(self):
            raise RuntimeError("solver crashed")

    with pytest.raises(SolverError, match="instance 0: raised RuntimeError: solver crashed"):
        from_pyepo(Broken((3, 3)))(torch.ones(12))
