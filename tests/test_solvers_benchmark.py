"""Smoke test of benchmarks/solvers.py on tiny cases (timings are printed, never asserted)."""

from __future__ import annotations

from benchmarks.solvers import SECTIONS, bench_grid_shortest_path, bench_spanning_tree, format_rows


def test_sections_produce_rows_with_ratios():
    rows = bench_grid_shortest_path("cpu", quick=True, cases=((5, 3),), baseline_maps=2)
    rows += bench_spanning_tree("cpu", quick=True, cases=((4, 3),), baseline_instances=2)
    assert [(r.section, r.baseline) for r in rows] == [
        ("grid_shortest_path", "heapq dijkstra"),
        ("grid_shortest_path", "networkx dijkstra"),
        ("spanning_tree", "networkx kruskal"),
    ]
    assert all(r.ours_ms > 0 and r.baseline_ms > 0 and r.ratio > 0 for r in rows)
    assert "5x5, B=3" in format_rows(rows) and set(SECTIONS) >= {"grid_shortest_path", "spanning_tree"}
