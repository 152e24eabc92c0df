"""Maximum spanning trees: of complete graphs (:class:`SpanningTree`) and of a given networkx graph
(:class:`GraphSpanningTree`), batched in torch (CPU/GPU) or per instance with networkx's Kruskal.

networkx is imported only by the ``"networkx"`` back-end and by :class:`GraphSpanningTree`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difftools.contract import Solver
from difftools.function_solver import solver

__all__ = ["GraphSpanningTree", "SpanningTree", "maximum_spanning_parents"]

_BACKENDS = ("torch", "networkx")


def maximum_spanning_parents(weights: Tensor) -> Tensor:
    """Prim's algorithm on a batch of dense symmetric weight matrices ``[B, n, n]``.

    Absent edges are ``-inf``. Returns ``parent`` ``[B, n]``: the tree neighbour through which
    each vertex joined, or -1 for a vertex that starts a tree (vertex 0, and in a disconnected
    graph the lowest-numbered vertex of each further component), i.e. a maximum spanning forest.
    One step per vertex, each an argmax over the ``[B, n]`` keys of the vertices not yet in the
    forest; ties go to the lowest vertex (``argmax``) and a key changes only on a strictly larger
    weight, so the output is deterministic.
    """
    b, n, _ = weights.shape
    device = weights.device
    in_tree = torch.zeros((b, n), dtype=torch.bool, device=device)
    parent = torch.full((b, n), -1, dtype=torch.long, device=device)
    if n == 0:
        return parent
    rows = torch.arange(b, device=device)
    in_tree[:, 0] = True
    key = weights[:, 0].clone()
    parent[:, 1:] = 0
    key[:, 0] = -torch.inf
    # key: the heaviest edge from each vertex into the forest (-inf: none, so it can only join
    # as a new root).
    for _ in range(n - 1):
        masked = key.masked_fill(in_tree, -torch.inf)
        best, vertex = masked.max(1)
        # No edge leaves the current tree: start a new tree at the first vertex not yet in the forest.
        new_root = best == -torch.inf
        first_out = (~in_tree).to(torch.uint8).argmax(1)
        vertex = torch.where(new_root, first_out, vertex)
        parent[rows, vertex] = torch.where(new_root, -1, parent[rows, vertex])
        in_tree[rows, vertex] = True
        row = weights[rows, vertex]
        better = (row > key) & ~in_tree
        key = torch.where(better, row, key)
        parent = torch.where(better, vertex[:, None], parent)
    return parent


def _edge_indicators(parent: Tensor, edge_index: Tensor, num_edges: int, dtype: torch.dtype) -> Tensor:
    """0/1 edge vector ``[B, num_edges]`` from parents; ``edge_index[u, v]`` numbers edge {u, v}."""
    b, n = parent.shape
    child = torch.arange(n, device=parent.device).expand(b, n)
    has_parent = parent >= 0
    ids = edge_index[parent.clamp(min=0), child]
    # Roots write into a spare last column that is dropped.
    ids = torch.where(has_parent, ids, num_edges)
    z = torch.zeros((b, num_edges + 1), dtype=dtype, device=parent.device)
    z.scatter_(1, ids, 1.0)
    return z[:, :num_edges]


def _nx_maximum_tree(edges: list[tuple[Any, Any]], nodes: list[Any], weights: np.ndarray) -> np.ndarray:
    """networkx Kruskal on one instance; 0/1 indicators in the order of ``edges``."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_weighted_edges_from((u, v, float(x)) for (u, v), x in zip(edges, weights))
    tree = nx.maximum_spanning_tree(graph, algorithm="kruskal")
    return np.array([float(tree.has_edge(u, v)) for u, v in edges], dtype=weights.dtype)


class SpanningTree(Solver):
    """Maximum spanning tree of the complete graph on n vertices (sense ``"max"``, ``event_dim`` 1).

    θ ``[*batch, n(n-1)/2]`` holds the edge weights in ``torch.triu_indices(n, n, 1)`` order
    ((0,1), (0,2), ..., (1,2), ...); n is inferred from the count. The output is the 0/1 edge
    vector of a maximum-weight spanning tree (n − 1 ones), in θ's dtype and device.

    ``backend="torch"`` runs a batched Prim (:func:`maximum_spanning_parents`) on θ's device;
    ``backend="networkx"`` runs ``networkx.maximum_spanning_tree`` (Kruskal) per instance on the
    CPU. Both return a maximum-weight tree; with tied weights they may return different ones.
    """

    sense = "max"
    event_dim = 1
    discrete = "binary"
    theta_meaning = "[*batch, n(n-1)/2] edge weights"

    def __init__(self, backend: str = "torch"):
        if backend not in _BACKENDS:
            raise ValueError(f"SpanningTree: backend must be one of {_BACKENDS}, got {backend!r}")
        self.backend = backend
        self._per_instance = solver(self._solve_one, sense="max", event_dim=1, name="SpanningTree(backend='networkx')")

    def __repr__(self) -> str:
        return f"SpanningTree(backend={self.backend!r})"

    @staticmethod
    def num_vertices(num_edges: int) -> int:
        """n with n(n−1)/2 == ``num_edges``, or ``ValueError``."""
        n = (1 + math.isqrt(1 + 8 * num_edges)) // 2
        if n * (n - 1) // 2 != num_edges:
            raise ValueError(
                f"SpanningTree: theta's last dim must be n(n-1)/2 edge weights of a complete graph "
                f"(1, 3, 6, 10, 15, ...), got {num_edges}"
            )
        return n

    def solve_batch(self, theta: Tensor, /) -> Tensor:
        theta = theta.detach()
        m = theta.shape[-1]
        n = self.num_vertices(m)
        if self.backend == "networkx":
            return self._per_instance(theta)
        flat = theta.reshape(math.prod(theta.shape[:-1]), m)
        rows, cols = torch.triu_indices(n, n, 1, device=theta.device)
        dense = torch.full((flat.shape[0], n, n), -torch.inf, dtype=flat.dtype, device=flat.device)
        dense[:, rows, cols] = flat
        dense[:, cols, rows] = flat
        edge_index = torch.zeros((n, n), dtype=torch.long, device=theta.device)
        edge_index[rows, cols] = torch.arange(m, device=theta.device)
        edge_index[cols, rows] = edge_index[rows, cols]
        z = _edge_indicators(maximum_spanning_parents(dense), edge_index, m, flat.dtype)
        return z.reshape(theta.shape)

    @staticmethod
    def _solve_one(weights: np.ndarray) -> np.ndarray:
        n = SpanningTree.num_vertices(weights.shape[-1])
        rows, cols = np.triu_indices(n, 1)
        return _nx_maximum_tree(list(zip(rows.tolist(), cols.tolist())), list(range(n)), weights)


class GraphSpanningTree(Solver):
    """Maximum spanning tree of a given undirected networkx graph (sense ``"max"``, ``event_dim`` 1).

    θ ``[*batch, E]`` holds one weight per edge in ``list(graph.edges)`` order; the output is the
    0/1 indicator of the edges of a maximum-weight spanning tree. If the graph is disconnected the
    result is a maximum spanning FOREST (one tree per connected component, n − #components
    edges), as networkx returns. Self-loops are never chosen. Multigraphs and directed graphs are
    rejected (a maximum spanning arborescence is a different problem).

    ``backend="torch"`` runs the batched Prim of :func:`maximum_spanning_parents` on θ's device;
    ``backend="networkx"`` runs Kruskal per instance.
    """

    sense = "max"
    event_dim = 1
    discrete = "binary"

    def __init__(self, graph: Any, backend: str = "torch"):
        import networkx as nx

        if not isinstance(graph, nx.Graph):
            raise TypeError(f"GraphSpanningTree: graph must be a networkx.Graph, got {type(graph).__name__}")
        if graph.is_directed() or graph.is_multigraph():
            raise ValueError(
                f"GraphSpanningTree: graph must be an undirected simple networkx.Graph, got a {type(graph).__name__}"
            )
        if backend not in _BACKENDS:
            raise ValueError(f"GraphSpanningTree: backend must be one of {_BACKENDS}, got {backend!r}")
        self.graph = graph
        self.backend = backend
        self.nodes = list(graph.nodes)
        self.edges = list(graph.edges)
        self.event_shape = (len(self.edges),)
        self.theta_meaning = "[*batch, E] edge weights in graph.edges order"
        position = {v: i for i, v in enumerate(self.nodes)}
        pairs = [(position[u], position[v]) for u, v in self.edges]
        # Self-loops stay out of the dense matrix, so Prim never picks them.
        proper = [(i, (u, v)) for i, (u, v) in enumerate(pairs) if u != v]
        self._edge_ids = torch.tensor([i for i, _ in proper], dtype=torch.long)
        self._ends = torch.tensor([uv for _, uv in proper], dtype=torch.long).reshape(-1, 2)
        self._per_instance = solver(
            self._solve_one, sense="max", event_dim=1, name="GraphSpanningTree(backend='networkx')"
        )

    def __repr__(self) -> str:
        return f"GraphSpanningTree(nodes={len(self.nodes)}, edges={len(self.edges)}, backend={self.backend!r})"

    def solve_batch(self, theta: Tensor, /) -> Tensor:
        theta = theta.detach()
        m = len(self.edges)
        if self.backend == "networkx":
            return self._per_instance(theta)
        n = len(self.nodes)
        device = theta.device
        flat = theta.reshape(math.prod(theta.shape[:-1]), m)
        ids, ends = self._edge_ids.to(device), self._ends.to(device)
        u, v = ends[:, 0], ends[:, 1]
        dense = torch.full((flat.shape[0], n, n), -torch.inf, dtype=flat.dtype, device=device)
        dense[:, u, v] = flat[:, ids]
        dense[:, v, u] = flat[:, ids]
        edge_index = torch.zeros((n, n), dtype=torch.long, device=device)
        edge_index[u, v] = ids
        edge_index[v, u] = ids
        z = _edge_indicators(maximum_spanning_parents(dense), edge_index, m, flat.dtype)
        return z.reshape(theta.shape)

    def _solve_one(self, weights: np.ndarray) -> np.ndarray:
        return _nx_maximum_tree(self.edges, self.nodes, weights)
