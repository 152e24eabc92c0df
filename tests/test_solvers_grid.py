"""Tests of the grid shortest-path solver: the batched torch solver against the Warcraft labelling Dijkstra."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from difftools.solvers.grid_shortest_path import GridShortestPath, grid_neighbours
from hypothesis import given, settings
from hypothesis import strategies as st

import difftools
from examples.warcraft.labelling import dijkstra
from tests.training import fit_parameters_through_aimle

WARCRAFT_COSTS = [0.8, 1.2, 5.3, 7.7, 9.2]


def is_simple_path(mask: np.ndarray, source, target, neighbourhood: int) -> bool:
    """Whether the cells of ``mask`` are exactly those of one simple source-to-target path."""
    cells = {tuple(c) for c in np.argwhere(mask == 1)}
    if source not in cells or target not in cells or not set(np.unique(mask)) <= {0, 1}:
        return False
    offsets = grid_neighbours(neighbourhood)

    def extend(cell, seen) -> bool:
        if cell == target:
            return len(seen) == len(cells)
        for dr, dc in offsets:
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt in cells and nxt not in seen and extend(nxt, seen | {nxt}):
                return True
        return False

    return extend(source, {source})


@st.composite
def grid_instances(draw, max_side: int = 7):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    # Few distinct values (zero included) make ties and zero-cost plateaus common.
    values = draw(st.sampled_from([[0.0, 1.0], [0.0, *WARCRAFT_COSTS], WARCRAFT_COSTS, None]))
    if values is None:
        cost = draw(st.lists(st.floats(0, 10, allow_subnormal=False), min_size=h * w, max_size=h * w))
    else:
        cost = draw(st.lists(st.sampled_from(values), min_size=h * w, max_size=h * w))
    cells = st.tuples(st.integers(0, h - 1), st.integers(0, w - 1))
    source = draw(st.one_of(st.just((0, 0)), cells))
    target = draw(st.one_of(st.just((h - 1, w - 1)), cells))
    return np.array(cost, dtype=np.float64).reshape(h, w), source, target, draw(st.sampled_from([4, 8]))


@settings(max_examples=150, deadline=None)
@given(grid_instances())
def test_optimal_cost_and_simple_path_against_dijkstra(instance):
    costs, source, target, neighbourhood = instance
    reference = dijkstra(costs, source=source, target=target, neighbourhood=neighbourhood)
    result = GridShortestPath(neighbourhood, source=source, target=target).solve(torch.from_numpy(costs))
    mask = result.path.numpy()
    assert result.path.dtype == torch.float64
    assert float(result.cost) == pytest.approx(reference.cost, rel=1e-12, abs=1e-12)
    assert float((mask * costs).sum()) == pytest.approx(reference.cost, rel=1e-9, abs=1e-9)
    assert is_simple_path(mask, source, target, neighbourhood)


@settings(max_examples=25, deadline=None)
@given(st.lists(grid_instances(max_side=5), min_size=1, max_size=6), st.integers(1, 4))
def test_batch_matches_single_maps_and_is_deterministic(instances, side):
    grid = torch.from_numpy(np.stack([np.resize(c, (side, side + 1)) for c, *_ in instances]))
    solver = GridShortestPath()
    batch = solver(grid.reshape(1, len(instances), side, side + 1))
    assert batch.shape == (1, len(instances), side, side + 1)
    assert torch.equal(batch, solver(grid.reshape(1, len(instances), side, side + 1)))
    for i in range(len(instances)):
        assert torch.equal(batch[0, i], solver(grid[i]))


def test_distances_match_dijkstra_to_every_cell():
    rng = np.random.default_rng(0)
    costs = rng.choice(WARCRAFT_COSTS, size=(6, 5))
    distances = GridShortestPath().solve(torch.from_numpy(costs)).distances.numpy()
    for cell in np.ndindex(costs.shape):
        assert distances[cell] == pytest.approx(dijkstra(costs, target=cell).cost, rel=1e-12)


@pytest.mark.parametrize(("side", "batch"), [(12, 5), (30, 3)])
def test_warcraft_sizes_in_float32(side, batch):
    rng = np.random.default_rng(side)
    costs = rng.choice(WARCRAFT_COSTS, size=(batch, side, side)).astype(np.float32)
    result = GridShortestPath().solve(torch.from_numpy(costs))
    assert result.path.dtype == torch.float32
    for i in range(batch):
        reference = dijkstra(costs[i])
        assert float(result.cost[i]) == pytest.approx(reference.cost, rel=1e-5)
        assert is_simple_path(result.path[i].numpy(), (0, 0), (side - 1, side - 1), 8)


def test_half_precision_is_solved_in_float32_and_returned_in_half():
    costs = torch.tensor(np.random.default_rng(1).choice(WARCRAFT_COSTS, size=(2, 6, 6)), dtype=torch.float16)
    result = GridShortestPath().solve(costs)
    assert result.path.dtype == torch.float16
    for i in range(2):
        assert float(result.cost[i]) == pytest.approx(dijkstra(costs[i].float().numpy()).cost, rel=1e-3)


def test_ties_follow_the_documented_rule():
    # Two optimal paths around an expensive centre: via (0,1),(1,2) or via (1,0),(2,1).
    costs = np.array([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]])
    upper = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 1]], dtype=np.uint8)
    # Both neighbours of the target settle in sweep 2; (1,2) comes first in product order.
    assert np.array_equal(GridShortestPath()(torch.from_numpy(costs)).numpy(), upper)


def test_zero_cost_plateaus_still_give_a_simple_path():
    costs = np.zeros((7, 7))
    costs[3, :6] = 2.0  # a wall with a gap at the right, inside a zero-cost plateau
    for neighbourhood in (4, 8):
        mask = GridShortestPath(neighbourhood)(torch.from_numpy(costs)).numpy()
        assert (mask * costs).sum() == 0
        assert is_simple_path(mask, (0, 0), (6, 6), neighbourhood)


def test_negative_costs_are_clamped_by_default_and_raise_on_request():
    costs = torch.tensor([[1.0, -2.0, 3.0], [4.0, 0.5, -1.0], [2.0, 2.0, 1.0]])
    assert torch.equal(GridShortestPath()(costs), GridShortestPath()(costs.clamp(min=0)))
    with pytest.raises(ValueError, match=r"negative cell costs \(min -2\)"):
        GridShortestPath(negative="raise")(costs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_costs_raise(bad):
    costs = torch.ones(2, 4, 4)
    costs[1, 2, 3] = bad
    with pytest.raises(ValueError, match="GridShortestPath: θ contains NaN or Inf"):
        GridShortestPath()(costs)


def test_bad_inputs_raise_clear_errors():
    solver = GridShortestPath()
    with pytest.raises(ValueError, match=r"θ has shape \(5,\), expected \[\*batch, H, W\] cell costs"):
        solver(torch.ones(5))
    with pytest.raises(ValueError, match="H, W >= 1"):
        solver(torch.ones(3, 0))
    with pytest.raises(TypeError, match="floating-point dtype"):
        solver(torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        solver(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"target \(5, 5\) lies outside the 3x3 grid"):
        GridShortestPath(target=(5, 5))(torch.ones(3, 3))
    with pytest.raises(ValueError, match="source must be a pair"):
        GridShortestPath(source=(-1, 0))
    with pytest.raises(ValueError, match="neighbourhood must be 4 or 8"):
        GridShortestPath(neighbourhood=6)
    with pytest.raises(ValueError, match="negative must be 'clamp' or 'raise'"):
        GridShortestPath(negative="ignore")


def test_empty_batch_and_single_cell():
    assert GridShortestPath()(torch.ones(0, 4, 4)).shape == (0, 4, 4)
    result = GridShortestPath().solve(torch.full((2, 1, 1), 3.0))
    assert torch.equal(result.path, torch.ones(2, 1, 1)) and torch.equal(result.cost, torch.full((2,), 3.0))


def test_registered_and_follows_the_protocol():
    solver = difftools.get_solver("grid_shortest_path", neighbourhood=4)
    assert isinstance(solver, GridShortestPath) and solver.neighbourhood == 4
    assert (solver.sense, solver.event_dim) == ("min", 2)
    assert "grid_shortest_path" in difftools.list_solvers()


def test_learns_costs_through_aimle():
    # Learn the cell costs of four fixed maps from their optimal paths alone (Hamming loss).
    rng = np.random.default_rng(0)
    true_costs = torch.tensor(rng.choice(WARCRAFT_COSTS, size=(4, 6, 6)), dtype=torch.float32)
    before, after = fit_parameters_through_aimle(
        GridShortestPath(), true_costs, torch.full((4, 6, 6), 5.0), steps=15, lr=0.3
    )
    assert before > 0.1 and after <= before / 4, (before, after)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    rng = np.random.default_rng(2)
    costs = torch.tensor(rng.choice([0.0, *WARCRAFT_COSTS], size=(64, 12, 12)), dtype=torch.float32)
    for neighbourhood in (4, 8):
        solver = GridShortestPath(neighbourhood)
        cpu, gpu = solver.solve(costs), solver.solve(costs.cuda())
        assert gpu.path.device.type == "cuda"
        torch.testing.assert_close(gpu.cost.cpu(), cpu.cost)
        assert torch.equal(solver(costs.cuda()), gpu.path)
        for i in range(0, 64, 8):
            assert is_simple_path(gpu.path[i].cpu().numpy(), (0, 0), (11, 11), neighbourhood)
