"""Tests of benchmarks/solvers.py: the lean Dijkstra baseline against exact answers, and a smoke run of the sections.

Timings are printed by the benchmark, never asserted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from difftools.solvers.grid_shortest_path import GridShortestPath
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.solvers import (
    SECTIONS,
    bench_grid_shortest_path,
    bench_spanning_tree,
    format_rows,
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


def test_sections_produce_rows_with_ratios():
    rows = bench_grid_shortest_path("cpu", quick=True, cases=((5, 3),), baseline_maps=2, rounds=2)
    rows += bench_spanning_tree("cpu", quick=True, cases=((4, 3),), baseline_instances=2)
    assert [(r.section, r.ours, r.baseline) for r in rows] == [
        ("grid_shortest_path", "ours", "lean heapq dijkstra"),
        ("grid_shortest_path", "ours", "networkx dijkstra"),
        ("grid_shortest_path", "lean heapq", "labelling dijkstra"),
        ("spanning_tree", "ours", "networkx kruskal"),
    ]
    # The labelling row's "ours" column is the lean baseline's time of the first row.
    assert rows[2].ours_ms == rows[0].baseline_ms
    assert all(r.ours_ms > 0 and r.baseline_ms > 0 and r.ratio > 0 for r in rows)
    table = format_rows(rows)
    assert "5x5, B=3" in table and "labelling dijkstra" in table and "2 maps, 2 rounds" in table
    assert set(SECTIONS) >= {"grid_shortest_path", "spanning_tree"}
