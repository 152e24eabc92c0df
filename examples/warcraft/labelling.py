"""The labelling Dijkstra of the Warcraft benchmark: the reference tie-break, path counting, uniqueness.

:func:`dijkstra` follows the labelling code of the Warcraft shortest-path benchmark (Vlastelica et al.,
ICLR 2020) exactly, tie-break included, so :mod:`examples.warcraft.data` labels the generated maps with
it and the tests use it as an oracle. It also counts the optimal paths to report whether the label is
``unique``. That is more work per map than a shortest-path solver needs: the batched MAP oracle is
:class:`difftools.solvers.grid_shortest_path.GridShortestPath`, and ``benchmarks/solvers.py`` times
this labeller against a lean heapq Dijkstra in its own row.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np
from difftools.solvers.grid_shortest_path import grid_neighbours

__all__ = ["DijkstraResult", "dijkstra"]


class DijkstraResult(NamedTuple):
    """Reference shortest path: 0/1 ``path`` mask (uint8), its ``cost`` and whether it is ``unique``."""

    path: np.ndarray
    cost: float
    unique: bool


def dijkstra(
    weights: np.ndarray,
    *,
    source: tuple[int, int] = (0, 0),
    target: tuple[int, int] | None = None,
    neighbourhood: int = 8,
) -> DijkstraResult:
    """Vertex-weighted shortest path on an ``[H, W]`` grid, with the Warcraft reference tie-break.

    Heap of ``(cost, (x, y))``; the start cost is ``weights[source]``; neighbours are visited in
    ``itertools.product((-1, 0, 1), (-1, 0, 1))`` order; a predecessor is replaced only on a
    strictly smaller cost; the path is read backwards from ``target`` (default: the last cell).
    The path cost includes both end cells. Weights must be finite and non-negative.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"dijkstra: weights must be a non-empty [H, W] array, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("dijkstra: weights must be finite and non-negative")
    h, wd = w.shape
    target = (h - 1, wd - 1) if target is None else tuple(target)
    for name, cell in (("source", source), ("target", target)):
        if not (0 <= cell[0] < h and 0 <= cell[1] < wd):
            raise ValueError(f"dijkstra: {name} {cell} lies outside the {h}x{wd} grid")
    offsets = grid_neighbours(neighbourhood)
    cost = np.full((h, wd), np.inf)
    cost[source] = w[source]
    pred: dict[tuple[int, int], tuple[int, int]] = {}
    settled = np.zeros((h, wd), dtype=bool)
    order: list[tuple[int, int]] = []
    heap = [(cost[source], tuple(source))]
    while heap:
        c, (x, y) = heapq.heappop(heap)
        if settled[x, y]:
            continue
        settled[x, y] = True
        order.append((x, y))
        for dx, dy in offsets:
            nx, ny = x + dx, y + dy
            if 0 <= nx < h and 0 <= ny < wd and not settled[nx, ny]:
                new = cost[x, y] + w[nx, ny]
                if new < cost[nx, ny]:
                    cost[nx, ny] = new
                    pred[(nx, ny)] = (x, y)
                    heapq.heappush(heap, (new, (nx, ny)))
    path = np.zeros((h, wd), dtype=np.uint8)
    cell = target
    path[cell] = 1
    while cell != tuple(source):
        cell = pred[cell]
        path[cell] = 1
    return DijkstraResult(path, float(cost[target]), _count_paths(w, cost, order, offsets, target) == 1)


def _count_paths(w, cost, order, offsets, target) -> int:
    """Number of distinct optimal paths to ``target`` (ties within a relative 1e-9)."""
    h, wd = w.shape
    count = np.zeros((h, wd), dtype=object)
    rank = np.full((h, wd), len(order))
    for i, cell in enumerate(order):
        rank[cell] = i
    count[order[0]] = 1
    for x, y in order[1:]:
        total = 0
        for dx, dy in offsets:
            px, py = x + dx, y + dy
            if 0 <= px < h and 0 <= py < wd and rank[px, py] < rank[x, y]:
                if abs(cost[px, py] + w[x, y] - cost[x, y]) <= 1e-9 * max(1.0, cost[x, y]):
                    total += count[px, py]
        count[x, y] = total
    return int(count[target])
