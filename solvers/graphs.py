"""Shortest paths on a user-given networkx graph: ``ShortestPath`` (Dijkstra, edge weights → 0/1 edges).

Grids with vertex costs (Warcraft) live in :mod:`solvers.grid_shortest_path`.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Literal

import numpy as np
from torch import Tensor

from difftools.errors import SolverError
from difftools.protocol import FunctionSolver, PerInstance
from solvers._common import check_context_keys, check_theta, import_optional

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


class _DijkstraOracle:
    """One instance: edge weights ``[E]`` → 0/1 indicators of a shortest source–target path.

    Picklable (a plain networkx graph and two node labels), so it runs in process pools.
    """

    def __init__(self, graph: Any, source: Any, target: Any):
        self.graph, self.source, self.target = graph, source, target

    def __call__(self, weights: np.ndarray, source: Any = None, target: Any = None) -> np.ndarray:
        nx = import_optional("networkx", "graphs", "shortest_path")
        source = self.source if source is None else _as_node(source)
        target = self.target if target is None else _as_node(target)
        for role, node in (("source", source), ("target", target)):
            if node not in self.graph:
                raise ValueError(f"{role} {node!r} is not a node of the graph")
        # Negative weights were rejected by ShortestPath or are meant to be clamped (negative="clamp").
        w = np.maximum(np.asarray(weights, dtype=np.float64), 0.0)
        try:
            _, path = nx.single_source_dijkstra(self.graph, source, target, weight=lambda u, v, d: w[d[_INDEX]])
        except nx.NetworkXNoPath:
            raise SolverError(f"no path from {source!r} to {target!r}") from None
        z = np.zeros_like(w)
        for u, v in zip(path, path[1:]):
            z[self.graph.edges[u, v][_INDEX]] = 1.0
        return z


class ShortestPath(FunctionSolver):
    """Shortest source–target path on a fixed networkx ``Graph`` or ``DiGraph`` (networkx Dijkstra).

    θ ``[*, E]`` are non-negative edge weights in ``list(graph.edges)`` order (also available as
    :attr:`edges`); the output is the 0/1 indicator vector of the edges on a shortest path
    (sense ``"min"``, ``event_dim=1``). Source and target are fixed here or given per call as
    context, shared (``source=3``) or per instance (``source=difftools.PerInstance(sources)``);
    context overrides the values fixed here.

    Dijkstra needs non-negative weights. Perturbation noise (Gumbel, Normal) pushes some perturbed
    costs below zero, so by default (``negative="clamp"``) they are clamped to 0, as in
    :class:`~solvers.grid_shortest_path.GridShortestPath`; ``negative="raise"`` raises instead.

    Args:
        graph: a ``networkx.Graph`` or ``networkx.DiGraph`` with at least one edge (multigraphs
            are not supported); copied, so later changes to it are not seen.
        source: default source node.
        target: default target node.
        negative: ``"clamp"`` (use 0, the default) or ``"raise"`` (a ValueError for any negative weight).
        executor: a ``concurrent.futures.Executor`` that solves instances in parallel.
        chunksize: instances per executor task (see :func:`difftools.solver`).
    """

    def __init__(
        self,
        graph: Any,
        source: Any = None,
        target: Any = None,
        *,
        negative: Literal["raise", "clamp"] = "clamp",
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
        if negative not in ("raise", "clamp"):
            raise ValueError(f"ShortestPath: negative must be 'raise' or 'clamp', got {negative!r}")
        private = nx.DiGraph() if graph.is_directed() else nx.Graph()
        private.add_nodes_from(graph.nodes)
        private.add_edges_from((u, v, {_INDEX: i}) for i, (u, v) in enumerate(graph.edges()))
        for role, node in (("source", source), ("target", target)):
            if node is not None and node not in private:
                raise ValueError(f"ShortestPath: {role} {node!r} is not a node of the graph")
        super().__init__(
            _DijkstraOracle(private, source, target),
            sense="min",
            event_dim=1,
            executor=executor,
            chunksize=chunksize,
            name="shortest_path",
        )
        self.edges: list[tuple[Any, Any]] = list(graph.edges())
        self.negative = negative

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    def __call__(self, theta: Tensor, /, **context: Any) -> Tensor:
        check_context_keys(context, ("source", "target"), self.name)
        check_theta(theta, self.name, (self.num_edges,), "[*, E] edge weights in graph.edges order")
        for role in ("source", "target"):
            if getattr(self.fn, role) is None and context.get(role) is None:
                raise ValueError(f"{self.name}: no {role}; pass {role}= to ShortestPath or as context")
            value = context.get(role)
            if value is not None and not isinstance(value, PerInstance):
                context[role] = _as_node(value)
        if self.negative == "raise" and bool((theta < 0).any()):
            raise ValueError(
                f"{self.name}: θ has negative edge weights (min {theta.min().item():.3g}); Dijkstra needs "
                "weights >= 0; construct it with negative='clamp' (the default) to clamp them to 0"
            )
        return super().__call__(theta, **context)

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
