"""Solver benchmarks: the batched built-in solvers against per-instance baselines, in one process.

Run from the repository root (``python -m``, so the ``solvers`` package is not shadowed by this
file)::

    python -m benchmarks.solvers                 # every section, CPU
    python -m benchmarks.solvers --quick         # fewer repeats and baseline maps
    python -m benchmarks.solvers --device cuda --only grid_shortest_path

Each section is one function returning :class:`Row` objects and is listed in ``SECTIONS``; a
new section (e.g. ILP solvers) is a new function added there. Every row reports the time per
instance of our solver and of a baseline, and their ratio (baseline / ours, > 1 means we are
faster). Our batched solvers are timed on the whole batch, best of a few repeats, divided by the
batch size; baselines are timed instance by instance, best of a few repeats each, averaged (best
of repeats filters out preemption on a shared machine, for both alike). Slow baselines are timed
on a subset of the instances; the row says how many. Grid rows repeat this in interleaved rounds
and report the median of each time over the rounds.

The grid rows use a lean heapq Dijkstra (:func:`lean_dijkstra`, what a careful Python user would
write) and networkx as baselines, never the labelling :func:`examples.warcraft.labelling.dijkstra` of the Warcraft data
(reference tie-break, path counting, uniqueness flag), which does much more work per map. That
labeller is timed against the lean one in the same loop, and its factor is printed as its own row.
"""

from __future__ import annotations

import argparse
import heapq
import time
from collections.abc import Callable, Iterable
from functools import lru_cache, partial
from typing import NamedTuple

from examples.common import HelpFormatter

# The names of SECTIONS (defined with the benchmarks below), for --help before torch is imported.
SECTION_NAMES = ("grid_shortest_path", "spanning_tree")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.solvers", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="device of our solvers: cpu or cuda (baselines run on CPU)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and baseline instances")
    parser.add_argument("--only", nargs="+", choices=SECTION_NAMES, help="run only these sections (default: all)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (default 1: the baselines are single-threaded)"
    )
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import networkx as nx
import numpy as np
import torch
from difftools.solvers.grid_shortest_path import GridShortestPath, grid_neighbours
from difftools.solvers.spanning_tree import SpanningTree

from examples.warcraft.labelling import dijkstra

# Warcraft terrain costs and their rough frequencies (see the Warcraft spec); cells are drawn
# independently, which gives longer, more winding shortest paths than the blob-shaped maps.
WARCRAFT_COSTS = np.array([0.8, 1.2, 5.3, 7.7, 9.2])
WARCRAFT_FREQUENCIES = np.array([0.24, 0.34, 0.12, 0.14, 0.16])


class Row(NamedTuple):
    section: str
    case: str
    ours_ms: float  # per instance
    baseline: str
    baseline_ms: float  # per instance
    timed: str  # how many instances the baseline was timed on
    ours: str = "ours"  # what the ``ours_ms`` column timed (a baseline, in the lean-vs-labelling row)

    @property
    def ratio(self) -> float:
        return self.baseline_ms / self.ours_ms


def best_time(fn: Callable[[], object], repeats: int, device: str = "cpu", budget_s: float = 1.0) -> float:
    """Best wall-clock seconds of at least ``repeats`` calls (after one warm-up call).

    Short calls are repeated until about ``budget_s`` seconds are spent (at most 50 times), so a
    run that no other job preempted is likely among them.
    """
    fn()
    best, spent, count = float("inf"), 0.0, 0
    while count < repeats or (spent < budget_s and count < 50):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        best, spent, count = min(best, elapsed), spent + elapsed, count + 1
    return best


def best_time_each(fn: Callable[[object], object], instances: Iterable, repeats: int) -> float:
    """Mean over ``instances`` of the best of ``repeats`` timed calls ``fn(instance)``.

    Timing each instance on its own (best of a few) treats a per-instance baseline the way
    :func:`best_time` treats a batched solver: preemption on a shared machine is filtered out.
    """
    return best_times_each([fn], instances, repeats)[0]


def best_times_each(fns: list[Callable[[object], object]], instances: Iterable, repeats: int) -> list[float]:
    """:func:`best_time_each` of several functions, interleaved: each repeat calls every ``fn`` in turn.

    Interleaving on the same instance gives every baseline the same machine load, so their ratio
    is fair even when the load changes during the run.
    """
    totals = [0.0] * len(fns)
    count = 0
    for x in instances:
        best = [float("inf")] * len(fns)
        for _ in range(repeats):
            for i, fn in enumerate(fns):
                start = time.perf_counter()
                fn(x)
                best[i] = min(best[i], time.perf_counter() - start)
        totals = [t + b for t, b in zip(totals, best)]
        count += 1
    return [t / count for t in totals]


def warcraft_costs(batch: int, side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(WARCRAFT_COSTS, size=(batch, side, side), p=WARCRAFT_FREQUENCIES)


@lru_cache(maxsize=16)
def flat_grid_neighbours(height: int, width: int) -> tuple[tuple[int, ...], ...]:
    """For each cell ``r * width + c`` of a ``height x width`` grid, the flat indices of its 8 neighbours."""
    offsets = grid_neighbours(8)
    return tuple(
        tuple((r + dr) * width + c + dc for dr, dc in offsets if 0 <= r + dr < height and 0 <= c + dc < width)
        for r in range(height)
        for c in range(width)
    )


def lean_dijkstra(costs: np.ndarray) -> np.ndarray:
    """0/1 mask (uint8) of a shortest corner-to-corner path on an 8-connected vertex-weighted grid.

    The fast heapq Dijkstra a careful Python user would write, the per-map baseline of the grid
    rows: flat cell indices, neighbour lists precomputed once per grid size, plain Python floats,
    no path counting, and it stops as soon as the target corner is settled. A path costs the sum
    of its cells, both ends included. ``costs`` must be a non-empty ``[H, W]`` array of finite,
    non-negative numbers (not checked: it is a baseline, not a solver). Ties go to whichever path
    the heap settles first, so on maps with several shortest paths it may pick another one than
    :class:`GridShortestPath`.
    """
    height, width = costs.shape
    neighbours = flat_grid_neighbours(height, width)
    weight = costs.ravel().tolist()
    target = height * width - 1
    dist = [float("inf")] * (target + 1)
    pred = [-1] * (target + 1)
    done = [False] * (target + 1)
    dist[0] = weight[0]
    heap = [(weight[0], 0)]
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        d, u = pop(heap)
        if done[u]:
            continue
        if u == target:
            break
        done[u] = True
        for v in neighbours[u]:
            new = d + weight[v]
            if new < dist[v]:
                dist[v] = new
                pred[v] = u
                push(heap, (new, v))
    mask = np.zeros(target + 1, dtype=np.uint8)
    u = target
    while u >= 0:
        mask[u] = 1
        u = pred[u]
    return mask.reshape(height, width)


def networkx_grid_path(graph: nx.DiGraph, costs: np.ndarray) -> tuple[float, np.ndarray]:
    """Cost and 0/1 mask of a shortest corner-to-corner path with networkx's Dijkstra.

    Vertex costs become the costs of the edges entering a cell (read through a weight function,
    so the graph is built once per grid size); the source cell's cost is added at the end.
    """
    h, w = costs.shape
    length, nodes = nx.single_source_dijkstra(graph, (0, 0), (h - 1, w - 1), weight=lambda _u, v, _d: costs[v])
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[tuple(np.array(nodes).T)] = 1
    return length + costs[0, 0], mask


def grid_costs(solver: GridShortestPath, costs: np.ndarray, graph: nx.DiGraph) -> dict[str, np.ndarray]:
    """Optimal path cost of each map ``[B, H, W]`` by each of the four solvers of the grid rows.

    Ours and the labeller report their cost; the lean Dijkstra and networkx are scored by the
    cost of the path they return (so a wrong path, not only a wrong number, shows).
    """
    return {
        "ours": solver.solve(torch.from_numpy(costs)).cost.numpy(),
        "lean heapq": np.array([float((lean_dijkstra(c) * c).sum()) for c in costs]),
        "networkx": np.array([float((networkx_grid_path(graph, c)[1] * c).sum()) for c in costs]),
        "labelling": np.array([dijkstra(c).cost for c in costs]),
    }


def check_grid_costs(solver: GridShortestPath, costs: np.ndarray, graph: nx.DiGraph) -> None:
    """The four solvers agree on the optimal costs (so the timings compare like with like)."""
    found = grid_costs(solver, costs, graph)
    reference = found["lean heapq"]
    for name, values in found.items():
        if not np.allclose(values, reference, rtol=1e-12, atol=0):
            raise AssertionError(f"optimal costs disagree: {name} {values.tolist()}, lean heapq {reference.tolist()}")


def check_spanning_trees(ours: SpanningTree, networkx: SpanningTree, theta: torch.Tensor) -> None:
    """Both back-ends return the same maximum spanning tree of every instance (normal weights: it is unique)."""
    mine = ours(theta).cpu()
    theirs = torch.stack([networkx(t) for t in theta.cpu()])
    if not torch.equal(mine, theirs):
        bad = (mine != theirs).any(-1).nonzero().flatten().tolist()
        raise AssertionError(f"spanning trees disagree on instances {bad}")


def grid_graph(side: int, neighbourhood: int = 8) -> nx.DiGraph:
    graph = nx.DiGraph()
    for r, c in np.ndindex(side, side):
        for dr, dc in grid_neighbours(neighbourhood):
            if 0 <= r + dr < side and 0 <= c + dc < side:
                graph.add_edge((r, c), (r + dr, c + dc))
    return graph


def bench_grid_shortest_path(
    device: str,
    quick: bool,
    cases: tuple[tuple[int, int], ...] = ((12, 70), (12, 1024), (30, 70), (30, 1024)),
    baseline_maps: int | None = None,
    rounds: int | None = None,
) -> list[Row]:
    """GridShortestPath (distances and path masks of the whole batch) vs lean heapq Dijkstra and networkx per map.

    A third row per case times the labelling ``dijkstra`` against the lean one (interleaved with
    the other baselines on the same maps): the factor by which that reference is the slower baseline.
    Our solver and the baselines take turns for ``rounds`` rounds (default 3, 1 with ``quick``);
    each row gives the median over rounds of each time, so a load change during the run hits both.
    """
    repeats = 2 if quick else 5
    rounds = rounds or (1 if quick else 3)
    solver = GridShortestPath()
    rows = []
    for side, batch in cases:
        costs = warcraft_costs(batch, side)
        theta = torch.tensor(costs, dtype=torch.float32, device=device)
        # The Python baselines cost ~0.1 ms (lean, 12x12) to ~12 ms (labelling, 30x30) per map: time a subset.
        timed = min(batch, baseline_maps or (10 if quick else max(10, 30_000 // side**2)))
        subset = costs[:timed]
        graph = grid_graph(side)
        check_grid_costs(solver, subset[:5], graph)
        baselines = [lean_dijkstra, partial(networkx_grid_path, graph), dijkstra]
        times = []  # per round: ours, lean, networkx, labelling (seconds per map)
        for _ in range(rounds):
            ours = best_time(partial(solver.solve, theta), repeats, device, budget_s=0.1 if quick else 1.0) / batch
            times.append([ours, *best_times_each(baselines, subset, 1 if quick else 3)])
        ours, lean, networkx, labelling = (float(t) * 1e3 for t in np.median(times, axis=0))
        case, maps = f"{side}x{side}, B={batch}", f"{timed} maps, {rounds} rounds"
        section = "grid_shortest_path"
        rows.append(Row(section, case, ours, "lean heapq dijkstra", lean, maps))
        rows.append(Row(section, case, ours, "networkx dijkstra", networkx, maps))
        rows.append(Row(section, case, lean, "labelling dijkstra", labelling, maps, ours="lean heapq"))
    return rows


def bench_spanning_tree(
    device: str, quick: bool, cases: tuple[tuple[int, int], ...] = ((10, 128),), baseline_instances: int | None = None
) -> list[Row]:
    """SpanningTree (batched torch Prim) vs networkx Kruskal per instance, on complete graphs.

    Before timing, both must return the same trees on the instances the baseline is timed on.
    """
    repeats = 3 if quick else 10
    ours_solver, networkx_solver = SpanningTree("torch"), SpanningTree("networkx")
    rows = []
    for n, batch in cases:
        theta = torch.randn(batch, n * (n - 1) // 2, generator=torch.Generator().manual_seed(0))
        ours = (
            best_time(partial(ours_solver, theta.to(device)), repeats, device, budget_s=0.1 if quick else 1.0) / batch
        )
        timed = min(batch, baseline_instances or batch)
        check_spanning_trees(ours_solver, networkx_solver, theta[:timed])
        baseline = best_time_each(networkx_solver, theta[:timed], 1 if quick else 3)
        rows.append(
            Row("spanning_tree", f"n={n}, B={batch}", ours * 1e3, "networkx kruskal", baseline * 1e3, f"{timed}")
        )
    return rows


SECTIONS: dict[str, Callable[[str, bool], list[Row]]] = dict(
    zip(SECTION_NAMES, (bench_grid_shortest_path, bench_spanning_tree), strict=True)
)


def format_rows(rows: list[Row]) -> str:
    header = (
        f"{'section':<20} {'case':<18} {'timed':<16} {'ms/inst':>9} {'baseline':<20} {'base ms/inst':>12} "
        f"{'ratio':>8}  baseline timed on"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.section:<20} {r.case:<18} {r.ours:<16} {r.ours_ms:>9.4f} {r.baseline:<20} {r.baseline_ms:>12.4f} "
            f"{r.ratio:>7.1f}x  {r.timed}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    torch.set_num_threads(args.threads)
    rows: list[Row] = []
    for name in args.only or SECTIONS:
        section_rows = SECTIONS[name](args.device, args.quick)
        print(format_rows(section_rows), flush=True)
        print()
        rows += section_rows
    return rows


if __name__ == "__main__":
    main()
