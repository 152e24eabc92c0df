"""Shortest paths on a user-given networkx graph: ``ShortestPath`` (edge weights → 0/1 edges of a shortest path).

Exact for any weights where a shortest path is defined: Dijkstra for non-negative weights, one pass
in topological order on a DAG, Bellman–Ford on other graphs; a negative cycle is an error.

Grids with vertex costs (Warcraft) live in :mod:`difftools.solvers.grid_shortest_path`.
"""

from __future__ import annotations

import concurrent.futures
import math
from typing import Any, Literal

import numpy as np
from difftools.solvers._common import import_optional
from torch import Tensor

from difftools.context import PerInstance
from difftools.errors import SolverError
from difftools.function_solver import FunctionSolver

__all__ = ["ShortestPath"]

# Edge attribute of the private graph copy holding each edge's position in ``graph.edges``.
_INDEX = "difftools_edge_index"


def _as_node(value: Any) -> Any:
    """A hashable node label from context values (tensors and arrays arrive as numbers or tuples)."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.item() if value.ndim == 0 else tuple(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


class _PathOracle:
    """One instance: edge weights ``[E]`` → 0/1 indicators of a shortest source–target path.

    Picklable (a plain networkx graph, two node labels and the graph's topological order), so it
    runs in process pools. ``negative`` says what negative weights mean: ``"exact"`` solves the
    problem as given, ``"clamp"`` replaces them by 0 first (``"raise"`` was checked before).
    """

    def __init__(self, graph: Any, source: Any, target: Any, negative: str = "exact"):
        self.graph, self.source, self.target, self.negative = graph, source, target, negative
        nx = import_optional("networkx", "graphs", "shortest_path")
        # A DAG has no cycles, negative or not: one relaxation pass in topological order is exact.
        self.order = (
            list(nx.topological_sort(graph)) if graph.is_directed() and nx.is_directed_acyclic_graph(graph) else None
        )

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"negative": "clamp", "order": None, **state})  # pickles of the Dijkstra-only oracle

    def __call__(self, weights: np.ndarray, source: Any = None, target: Any = None) -> np.ndarray:
        nx = import_optional("networkx", "graphs", "shortest_path")
        source = self.source if source is None else _as_node(source)
        target = self.target if target is None else _as_node(target)
        for role, node in (("source", source), ("target", target)):
            if node not in self.graph:
                raise ValueError(f"{role} {node!r} is not a node of the graph")
        w = np.asarray(weights, dtype=np.float64)
        if self.negative == "clamp":
            w = np.maximum(w, 0.0)
        if w.min(initial=0.0) >= 0.0:
            path = self._dijkstra(nx, w, source, target)
        elif self.order is not None:
            path = self._dag(w, source, target)
        elif not self.graph.is_directed():
            raise self._negative_cycle(w)  # no need to search: u → v → u is already one
        else:
            path = self._bellman_ford(nx, w, source, target)
        z = np.zeros_like(w)
        for u, v in zip(path, path[1:]):
            z[self.graph.edges[u, v][_INDEX]] = 1.0
        return z

    def _dijkstra(self, nx: Any, w: np.ndarray, source: Any, target: Any) -> list:
        try:
            _, path = nx.single_source_dijkstra(self.graph, source, target, weight=lambda u, v, d: w[d[_INDEX]])
        except nx.NetworkXNoPath:
            raise SolverError(f"no path from {source!r} to {target!r}") from None
        return path

    def _dag(self, w: np.ndarray, source: Any, target: Any) -> list:
        distance = {source: 0.0}
        parent: dict[Any, Any] = {}
        succ = self.graph.succ
        for u in self.order:
            if u not in distance:
                continue
            du = distance[u]
            for v, data in succ[u].items():
                candidate = du + w[data[_INDEX]]
                if candidate < distance.get(v, math.inf):  # strict: the first best predecessor in order wins
                    distance[v], parent[v] = candidate, u
        if target not in distance:
            raise SolverError(f"no path from {source!r} to {target!r}")
        path = [target]
        while path[-1] != source:
            path.append(parent[path[-1]])
        return path[::-1]

    def _bellman_ford(self, nx: Any, w: np.ndarray, source: Any, target: Any) -> list:
        try:
            return nx.bellman_ford_path(self.graph, source, target, weight=lambda u, v, d: w[d[_INDEX]])
        except nx.NetworkXNoPath:
            raise SolverError(f"no path from {source!r} to {target!r}") from None
        except nx.NetworkXUnbounded:
            raise self._negative_cycle(w) from None

    def _negative_cycle(self, w: np.ndarray) -> SolverError:
        why = (
            "an undirected edge with a negative cost is itself a negative cycle (walk it back and forth)"
            if not self.graph.is_directed()
            else "a cycle reachable from the source has negative total cost"
        )
        return SolverError(
            f"the edge costs have a negative cycle ({int((w < 0).sum())} negative edge(s), min {w.min():.3g}): "
            f"{why}, so no shortest path exists. Keep costs >= 0 on graphs with cycles (perturbation noise can push "
            "them below 0: construct ShortestPath(..., negative='clamp') to treat negative costs as 0), or use a DAG"
        )


_DijkstraOracle = _PathOracle  # the oracle's former name, so that solvers pickled before still load


class ShortestPath(FunctionSolver):
    """Shortest source–target path on a fixed networkx ``Graph`` or ``DiGraph``.

    θ ``[*, E]`` are edge weights in ``list(graph.edges)`` order (also available as
    :attr:`edges`); the output is the 0/1 indicator vector of the edges on a shortest path
    (sense ``"min"``, ``event_dim=1``). Source and target are fixed here or given per call as
    context, shared (``source=3``) or per instance (``source=difftools.PerInstance(sources)``);
    context overrides the values fixed here.

    Negative weights (predicted costs, or costs pushed below 0 by perturbation noise) are solved
    exactly by default (``negative="exact"``): Dijkstra when every weight is >= 0, one relaxation
    pass in topological order on a DAG, networkx Bellman–Ford otherwise. Where a negative cycle
    makes the shortest path undefined (on an undirected graph, any negative edge) a
    :class:`~difftools.SolverError` says so. ``negative="clamp"`` replaces negative weights by 0
    first (an approximation, as in :class:`~difftools.solvers.grid_shortest_path.GridShortestPath`, that
    keeps cyclic graphs solvable under noise); ``negative="raise"`` rejects them.

    Args:
        graph: a ``networkx.Graph`` or ``networkx.DiGraph`` with at least one edge (multigraphs
            are not supported); copied, so later changes to it are not seen.
        source: default source node.
        target: default target node.
        negative: ``"exact"`` (the default), ``"clamp"`` (use 0) or ``"raise"`` (a ValueError for any
            negative weight).
        executor: a ``concurrent.futures.Executor`` that solves instances in parallel.
        chunksize: instances per executor task (see :func:`difftools.solver`).
    """

    context_keys = ("source", "target")
    theta_meaning = "[*, E] edge weights in graph.edges order"
    check_finite_theta = True
    floating_theta = True

    def __init__(
        self,
        graph: Any,
        source: Any = None,
        target: Any = None,
        *,
        negative: Literal["exact", "raise", "clamp"] = "exact",
        executor: concurrent.futures.Executor | None = None,
        chunksize: int | None = None,
    ):
        nx = import_optional("networkx", "graphs", "ShortestPath")
        if not isinstance(graph, nx.Graph):
            raise TypeError(f"ShortestPath: graph must be a networkx Graph or DiGraph, got {type(graph).__name__}")
        if graph.is_multigraph():
            raise TypeError("ShortestPath: multigraphs are not supported; keep one edge per node pair")
        if graph.number_of_edges() == 0:
            raise ValueError("ShortestPath: graph has no edges")
        if negative not in ("exact", "raise", "clamp"):
            raise ValueError(f"ShortestPath: negative must be 'exact', 'raise' or 'clamp', got {negative!r}")
        private = nx.DiGraph() if graph.is_directed() else nx.Graph()
        private.add_nodes_from(graph.nodes)
        private.add_edges_from((u, v, {_INDEX: i}) for i, (u, v) in enumerate(graph.edges()))
        for role, node in (("source", source), ("target", target)):
            if node is not None and node not in private:
                raise ValueError(f"ShortestPath: {role} {node!r} is not a node of the graph")
        super().__init__(
            _PathOracle(private, source, target, "clamp" if negative == "clamp" else "exact"),
            sense="min",
            event_dim=1,
            executor=executor,
            chunksize=chunksize,
            name="shortest_path",
            discrete="binary",
        )
        self.edges: list[tuple[Any, Any]] = list(graph.edges())
        self.event_shape = (len(self.edges),)
        self.negative = negative

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    def solve_batch(self, theta: Tensor, /, **context: Any) -> Tensor:
        for role in ("source", "target"):
            if getattr(self.fn, role) is None and context.get(role) is None:
                raise ValueError(f"{self.name}: no {role}; pass {role}= to ShortestPath or as context")
            value = context.get(role)
            if value is not None and not isinstance(value, PerInstance):
                context[role] = _as_node(value)
        if self.negative == "raise" and bool((theta < 0).any()):
            raise ValueError(
                f"{self.name}: θ has negative edge weights (min {theta.min().item():.3g}) and this solver was "
                "constructed with negative='raise'; negative='exact' (the default) solves them exactly, "
                "negative='clamp' treats them as 0"
            )
        return super().solve_batch(theta, **context)

    def __repr__(self) -> str:
        kind = "DiGraph" if self.fn.graph.is_directed() else "Graph"
        parts = [
            f"{kind}(nodes={self.fn.graph.number_of_nodes()}, edges={self.num_edges})",
            f"source={self.fn.source!r}",
            f"target={self.fn.target!r}",
            f"negative={self.negative!r}",
        ]
        if self.executor is not None:
            parts.append(f"executor={type(self.executor).__name__}")
        return f"ShortestPath({', '.join(parts)})"
