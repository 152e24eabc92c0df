"""Tests of benchmarks/solvers.py: the baselines against exact answers, the benchmark's solvers agreeing with
its baselines (a disagreement stops a run), and the rows the sections produce.

Timings are printed by the benchmark, never asserted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from difftools.solvers.grid_shortest_path import GridShortestPath
from difftools.solvers.spanning_tree import SpanningTree
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.solvers import (
    SECTIONS,
    bench_grid_shortest_path,
    bench_spanning_tree,
    check_grid_costs,
    check_spanning_trees,
    format_rows,
    grid_costs,
    grid_graph,
    lean_dijkstra,
    warcraft_costs,
)
from examples.warcraft.labelling import dijkstra
from tests.test_solvers_grid import WARCRAFT_COSTS, is_simple_path


def check_lean_path(costs: np.ndarray) -> None:
    """The lean mask is one simple corner-to-corner path whose cost is GridShortestPath's optimum."""
    mask = lean_dijkstra(costs)
    corner = (costs.shape[0] - 1, costs.shape[1] - 1)
    assert mask.dtype == np.uint8 and mask.shape == costs.shape
    assert is_simple_path(mask, (0, 0), corner, 8)
    optimum = float(GridShortestPath().solve(torch.from_numpy(costs)).cost)
    assert float((mask * costs).sum()) == pytest.approx(optimum, rel=1e-12, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda h: st.integers(1, 8).flatmap(
            lambda w: st.one_of(
                # Few distinct values (zero included) make ties and zero-cost plateaus common.
                st.lists(st.sampled_from([0.0, 1.0]), min_size=h * w, max_size=h * w),
                st.lists(st.sampled_from(WARCRAFT_COSTS), min_size=h * w, max_size=h * w),
                st.lists(st.floats(0, 10, allow_subnormal=False), min_size=h * w, max_size=h * w),
            ).map(lambda values: np.array(values, dtype=np.float64).reshape(h, w))
        )
    )
)
def test_lean_dijkstra_finds_an_optimal_simple_path(costs):
    check_lean_path(costs)


def test_lean_dijkstra_on_warcraft_sized_maps():
    # The benchmark's own maps, at its sizes: the same optimum as both other solvers.
    for side in (12, 30):
        for costs in warcraft_costs(4, side, seed=side):
            check_lean_path(costs)
            assert float((lean_dijkstra(costs) * costs).sum()) == pytest.approx(dijkstra(costs).cost, rel=1e-12)


def test_lean_dijkstra_on_a_map_with_a_known_path():
    # A wall of expensive cells with one cheap gap forces the path through the gap.
    costs = np.full((5, 5), 1.0)
    costs[2, :] = 100.0
    costs[2, 0] = 1.0
    mask = lean_dijkstra(costs)
    assert mask[2].tolist() == [1, 0, 0, 0, 0]
    # Three cells down to the gap, then four steps (one column each) to the corner: seven cells of cost 1.
    assert float((mask * costs).sum()) == 7.0
    assert lean_dijkstra(np.array([[3.0]])).tolist() == [[1]]


def test_the_benchmark_solvers_agree_with_the_baselines_on_known_maps():
    # Exact optima: all-ones 3x3 (the diagonal, 3 cells) and a wall of cost 100 with one gap at its
    # left end (down to the gap, then diagonally and along the bottom row: 7 cells of cost 1).
    wall = np.full((5, 5), 1.0)
    wall[2, 1:] = 100.0
    maps = {3: (np.ones((1, 3, 3)), [3.0]), 5: (wall[None], [7.0])}
    for side, (costs, expected) in maps.items():
        found = grid_costs(GridShortestPath(), costs, grid_graph(side))
        assert set(found) == {"ours", "lean heapq", "networkx", "labelling"}
        for name, values in found.items():
            assert values.tolist() == expected, name


@pytest.mark.parametrize("side", [12, 30])
def test_the_benchmark_solvers_agree_with_the_baselines_on_its_own_maps(side):
    # The maps the grid rows time (seed 0), several optimal paths included: the same optimal costs.
    costs = warcraft_costs(8, side)
    found = grid_costs(GridShortestPath(), costs, grid_graph(side))
    for name, values in found.items():
        np.testing.assert_allclose(values, found["labelling"], rtol=1e-12, atol=0, err_msg=name)
    check_grid_costs(GridShortestPath(), costs, grid_graph(side))
    theta = torch.randn(16, 45, generator=torch.Generator().manual_seed(0))  # n = 10, as the spanning-tree row
    trees = SpanningTree("torch")(theta)
    assert torch.equal(trees, torch.stack([SpanningTree("networkx")(t) for t in theta]))
    assert (trees.sum(-1) == 9).all()  # n - 1 edges each
    check_spanning_trees(SpanningTree("torch"), SpanningTree("networkx"), theta)


def test_a_baseline_that_disagrees_stops_the_benchmark(monkeypatch):
    # A baseline returning another path than a shortest one (here: every cell) must fail the run, not be timed.
    import benchmarks.solvers as bench

    monkeypatch.setattr(bench, "lean_dijkstra", lambda costs: np.ones(costs.shape, dtype=np.uint8))
    with pytest.raises(AssertionError, match="optimal costs disagree: ours"):
        bench.bench_grid_shortest_path("cpu", quick=True, cases=((5, 3),), baseline_maps=2, rounds=1)
    monkeypatch.undo()
    networkx = SpanningTree("networkx")

    class Wrong(SpanningTree):
        def solve_batch(self, theta):
            return torch.flip(super().solve_batch(theta), [-1])  # another edge set, not the maximum tree

    monkeypatch.setattr(bench, "SpanningTree", lambda backend="torch": networkx if backend == "networkx" else Wrong())
    with pytest.raises(AssertionError, match="spanning trees disagree on instances"):
        bench.bench_spanning_tree("cpu", quick=True, cases=((5, 3),), baseline_instances=3)


def test_sections_produce_their_rows():
    rows = bench_grid_shortest_path("cpu", quick=True, cases=((5, 3),), baseline_maps=2, rounds=2)
    rows += bench_spanning_tree("cpu", quick=True, cases=((4, 3),), baseline_instances=2)
    assert [(r.section, r.case, r.ours, r.baseline, r.timed) for r in rows] == [
        ("grid_shortest_path", "5x5, B=3", "ours", "lean heapq dijkstra", "2 maps, 2 rounds"),
        ("grid_shortest_path", "5x5, B=3", "ours", "networkx dijkstra", "2 maps, 2 rounds"),
        ("grid_shortest_path", "5x5, B=3", "lean heapq", "labelling dijkstra", "2 maps, 2 rounds"),
        ("spanning_tree", "n=4, B=3", "ours", "networkx kruskal", "2"),
    ]
    # The labelling row's "ours" column is the lean baseline's time of the first row, and the
    # ratio is the quotient of the two columns (timings themselves are printed, never asserted).
    assert rows[2].ours_ms == rows[0].baseline_ms
    assert all(r.ratio == r.baseline_ms / r.ours_ms for r in rows)
    table = format_rows(rows)
    assert all(f"{r.ratio:>7.1f}x" in table for r in rows)
    assert set(SECTIONS) == {"grid_shortest_path", "spanning_tree"}
