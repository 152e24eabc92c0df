"""Tests of the maximum spanning tree solvers (complete graphs and given graphs) against networkx."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest
import torch
from difftools.solvers.spanning_tree import GraphSpanningTree, SpanningTree
from hypothesis import given, settings
from hypothesis import strategies as st

import difftools
from tests.training import fit_parameters_through_aimle


def complete_graph_weights(n: int, weights: np.ndarray) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    rows, cols = torch.triu_indices(n, n, 1).tolist()
    graph.add_weighted_edges_from(zip(rows, cols, weights.tolist()))
    return graph


def tree_weight(graph: nx.Graph) -> float:
    return sum(d["weight"] for *_, d in nx.maximum_spanning_tree(graph).edges(data=True))


def assert_spanning_tree(z: np.ndarray, n: int) -> None:
    """``z`` (triu order) has n-1 edges that connect all n vertices."""
    assert set(np.unique(z)) <= {0.0, 1.0}
    rows, cols = torch.triu_indices(n, n, 1).tolist()
    tree = nx.Graph()
    tree.add_nodes_from(range(n))
    tree.add_edges_from((u, v) for u, v, x in zip(rows, cols, z) if x == 1)
    assert tree.number_of_edges() == n - 1 and nx.is_connected(tree)


@st.composite
def complete_graphs(draw, max_n: int = 9):
    n = draw(st.integers(2, max_n))
    m = n * (n - 1) // 2
    # Integer weights make ties frequent; floats (negative too) test the general case.
    element = draw(st.sampled_from([st.integers(-2, 2).map(float), st.floats(-100, 100, allow_subnormal=False)]))
    return n, np.array(draw(st.lists(element, min_size=m, max_size=m)))


@settings(max_examples=150, deadline=None)
@given(complete_graphs())
def test_torch_and_networkx_backends_find_a_maximum_spanning_tree(instance):
    n, weights = instance
    optimum = tree_weight(complete_graph_weights(n, weights))
    theta = torch.from_numpy(weights)
    for backend in ("torch", "networkx"):
        z = SpanningTree(backend)(theta)
        assert z.dtype == torch.float64 and z.shape == theta.shape
        assert_spanning_tree(z.numpy(), n)
        assert float((z * theta).sum()) == pytest.approx(optimum, rel=1e-12, abs=1e-9)


def test_brute_force_on_four_vertices():
    # All 16 spanning trees of K4, enumerated as 3-edge subsets that connect the 4 vertices.
    rng = np.random.default_rng(0)
    rows, cols = torch.triu_indices(4, 4, 1).tolist()
    trees = []
    for subset in itertools.combinations(range(6), 3):
        graph = nx.Graph([(rows[i], cols[i]) for i in subset])
        if graph.number_of_nodes() == 4 and nx.is_connected(graph):
            trees.append(subset)
    assert len(trees) == 16
    weights = torch.from_numpy(rng.normal(size=(200, 6)))
    best = torch.stack([weights[:, list(subset)].sum(1) for subset in trees]).amax(0)
    torch.testing.assert_close((SpanningTree()(weights) * weights).sum(1), best)


def test_batched_over_leading_dims_and_deterministic():
    theta = torch.randn(3, 4, 28, generator=torch.Generator().manual_seed(0)).round()  # n = 8, with ties
    solver = SpanningTree()
    z = solver(theta)
    assert z.shape == (3, 4, 28) and torch.equal(z, solver(theta))
    for index in itertools.product(range(3), range(4)):
        assert torch.equal(z[index], solver(theta[index]))


def test_tiny_graphs_and_empty_batch():
    assert torch.equal(SpanningTree()(torch.tensor([[-3.0]])), torch.ones(1, 1))
    assert SpanningTree()(torch.empty(2, 0)).shape == (2, 0)  # n = 1: a tree without edges
    assert SpanningTree()(torch.empty(0, 6)).shape == (0, 6)


def test_spanning_tree_bad_inputs():
    with pytest.raises(ValueError, match=r"n\(n-1\)/2 edge weights .* got 4"):
        SpanningTree()(torch.ones(2, 4))
    with pytest.raises(ValueError, match="SpanningTree: θ contains NaN or Inf"):
        SpanningTree()(torch.tensor([1.0, float("nan"), 0.0]))
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        SpanningTree("networkx")(torch.tensor([1.0, float("inf"), 0.0]))
    with pytest.raises(TypeError, match="floating-point dtype"):
        SpanningTree()(torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"θ has shape \(\), expected \[\*batch, n\(n-1\)/2\] edge weights"):
        SpanningTree()(torch.tensor(1.0))
    with pytest.raises(ValueError, match="backend must be one of"):
        SpanningTree("scipy")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(0, 20), st.integers(0, 2**16), st.booleans())
def test_graph_spanning_tree_is_a_maximum_spanning_forest(n, m, seed, self_loop):
    graph = nx.gnm_random_graph(n, m, seed=seed)
    if self_loop:
        graph.add_edge(0, 0)
    rng = np.random.default_rng(seed)
    weights = rng.integers(-3, 4, size=(2, graph.number_of_edges())).astype(float)
    components = nx.number_connected_components(graph)
    for backend in ("torch", "networkx"):
        z = GraphSpanningTree(graph, backend=backend)(torch.from_numpy(weights)).numpy()
        for zi, wi in zip(z, weights):
            chosen = [e for e, x in zip(graph.edges, zi) if x == 1]
            forest = nx.Graph(chosen)
            forest.add_nodes_from(graph.nodes)
            assert nx.is_forest(forest) and len(chosen) == n - components
            assert nx.number_connected_components(forest) == components
            weighted = nx.Graph()
            weighted.add_nodes_from(graph.nodes)
            weighted.add_weighted_edges_from((u, v, x) for (u, v), x in zip(graph.edges, wi))
            assert float(zi @ wi) == pytest.approx(tree_weight(weighted))


def test_graph_spanning_tree_with_named_nodes_and_bad_inputs():
    graph = nx.Graph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])
    z = GraphSpanningTree(graph)(torch.tensor([5.0, 1.0, 2.0, -1.0]))
    assert z.tolist() == [1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"θ has shape \(3,\), expected \[\*batch, E\] edge weights .* shaped \[4\]"):
        GraphSpanningTree(graph)(torch.ones(3))
    with pytest.raises(ValueError, match="undirected simple"):
        GraphSpanningTree(nx.DiGraph(graph))
    with pytest.raises(TypeError, match="networkx.Graph"):
        GraphSpanningTree([(0, 1)])


def test_registered_and_follows_the_protocol():
    solver = difftools.get_solver("spanning_tree", backend="networkx")
    assert isinstance(solver, SpanningTree) and (solver.sense, solver.event_dim) == ("max", 1)
    graph_solver = difftools.get_solver("graph_spanning_tree", graph=nx.cycle_graph(4))
    assert isinstance(graph_solver, GraphSpanningTree)
    assert torch.equal(graph_solver(torch.tensor([1.0, 2.0, 3.0, 0.0])), torch.tensor([1.0, 1.0, 1.0, 0.0]))


@pytest.mark.parametrize(
    "solver",
    [SpanningTree(), GraphSpanningTree(nx.circulant_graph(8, [1, 2]))],  # K6 (15 edges); 16 edges on 8 vertices
    ids=["complete", "graph"],
)
def test_learns_edge_weights_through_aimle(solver):
    # Recover the trees of fixed instances from the trees alone, Hamming loss on edge indicators.
    edges = 15 if isinstance(solver, SpanningTree) else len(solver.edges)
    true_weights = torch.randn(8, edges, generator=torch.Generator().manual_seed(0))
    # Not zeros: AIMLE's step scales with the norm of θ, which would stay 0.
    initial = torch.randn(true_weights.shape, generator=torch.Generator().manual_seed(2))
    before, after = fit_parameters_through_aimle(solver, true_weights, initial, steps=40, lr=0.1, seed=1)
    assert before > 0.2 and after <= before / 4, (before, after)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    theta = torch.randn(64, 36, generator=torch.Generator().manual_seed(0))
    cpu, gpu = SpanningTree()(theta), SpanningTree()(theta.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close((gpu.cpu() * theta).sum(1), (cpu * theta).sum(1))
    graph = nx.gnm_random_graph(9, 14, seed=0)
    weights = torch.randn(16, 14, generator=torch.Generator().manual_seed(1))
    solver = GraphSpanningTree(graph)
    torch.testing.assert_close((solver(weights.cuda()).cpu() * weights).sum(1), (solver(weights) * weights).sum(1))
