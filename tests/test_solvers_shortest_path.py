"""ShortestPath on networkx graphs: exact answers against path enumeration, context, training, errors."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from difftools.solvers._common import import_optional
from difftools.solvers.shortest_path import ShortestPath
from hypothesis import given, settings
from hypothesis import strategies as st

import difftools
from difftools import PerInstance, SolverError
from tests.training import fit_through_aimle

pytestmark = pytest.mark.timeout(120)


def path_edges_are_a_path(graph: nx.Graph, edges: list, z: np.ndarray, source, target) -> bool:
    """Whether the edges selected by z form one simple path from source to target."""
    chosen = [edges[i] for i in np.flatnonzero(z)]
    if source == target:
        return not chosen
    sub = (nx.DiGraph if graph.is_directed() else nx.Graph)(chosen)
    if source not in sub or target not in sub:
        return False
    paths = list(nx.all_simple_paths(sub, source, target))
    return len(paths) == 1 and len(paths[0]) - 1 == len(chosen)


@st.composite
def graphs_with_weights(draw):
    n = draw(st.integers(2, 6))
    directed = draw(st.booleans())
    pairs = [(u, v) for u in range(n) for v in range(n) if u != v and (directed or u < v)]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    graph = (nx.DiGraph if directed else nx.Graph)()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(chosen)
    # Small integers make exact ties common: the cost, not the path, is compared.
    weights = draw(st.lists(st.integers(0, 4), min_size=len(chosen), max_size=len(chosen)))
    source, target = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
    return graph, np.asarray(weights, dtype=np.float64), source, target


@settings(max_examples=60, deadline=None)
@given(graphs_with_weights())
def test_matches_brute_force_over_simple_paths(case):
    graph, weights, source, target = case
    edges = list(graph.edges())
    index = {e: i for i, e in enumerate(edges)}
    if not graph.is_directed():
        index.update({(v, u): i for (u, v), i in list(index.items())})
    costs = [
        sum(weights[index[(u, v)]] for u, v in zip(path, path[1:]))
        for path in nx.all_simple_paths(graph, source, target)
    ] + ([0.0] if source == target else [])
    solver = ShortestPath(graph, source, target)
    if not costs:
        with pytest.raises(SolverError, match=f"instance 0: no path from {source} to {target}"):
            solver(torch.tensor(weights))
        return
    z = solver(torch.tensor(weights)).numpy()
    assert set(np.unique(z)) <= {0.0, 1.0}
    assert path_edges_are_a_path(graph, edges, z, source, target)
    assert float(weights @ z) == pytest.approx(min(costs))


def test_batch_shapes_dtype_and_registry():
    graph = nx.cycle_graph(5)
    solver = difftools.get_solver("shortest_path", graph=graph, source=0, target=2)
    assert (solver.sense, solver.event_dim, solver.edges) == ("min", 1, list(graph.edges()))
    w = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0], [5.0, 1.0, 5.0, 1.0, 1.0]], dtype=torch.float64).expand(3, 2, 5)
    z = solver(w)
    assert z.shape == (3, 2, 5) and z.dtype == torch.float64
    # cycle_graph(5) edges: (0,1), (0,4), (1,2), (2,3), (3,4)
    torch.testing.assert_close(z[0], torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 0, 1, 1]], dtype=torch.float64))
    assert "ShortestPath(Graph(nodes=5, edges=5), source=0, target=2" in repr(solver)


def test_context_overrides_fixed_source_and_target_per_instance():
    graph = nx.path_graph(5)  # edges (0,1), (1,2), (2,3), (3,4)
    solver = ShortestPath(graph, source=0, target=4)
    w = torch.ones(3, 4)
    z = solver(w, source=PerInstance(torch.tensor([0, 1, 2])), target=PerInstance([1, 3, 4]))
    torch.testing.assert_close(z, torch.tensor([[1.0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]))
    torch.testing.assert_close(solver(w[0], target=2), torch.tensor([1.0, 1, 0, 0]))


def test_tuple_nodes_per_instance_as_tensor_rows():
    graph = nx.grid_2d_graph(3, 3)
    solver = ShortestPath(graph)
    w = torch.ones(2, graph.number_of_edges())
    sources, targets = PerInstance(torch.tensor([[0, 0], [2, 2]])), PerInstance([(0, 2), (2, 0)])
    z = solver(w, source=sources, target=targets)
    assert z.sum(-1).tolist() == [2.0, 2.0]
    for b, (s, t) in enumerate([((0, 0), (0, 2)), ((2, 2), (2, 0))]):
        assert path_edges_are_a_path(graph, solver.edges, z[b].numpy(), s, t)


def test_per_instance_source_target_reach_forward_and_backward_of_aimle():
    graph = nx.grid_2d_graph(3, 4)
    inner = ShortestPath(graph, negative="clamp")
    calls = []

    class Recording(difftools.SolverWrapper):
        """Records what reaches the inner solver; the wrapper base hands PerInstance context on."""

        def solve_batch(self, theta, **context):
            z = super().solve_batch(theta, **context)
            calls.append((z, context["source"].value, context["target"].value))
            return z

    sources, targets = [(0, 0), (2, 3), (1, 1)], [(2, 3), (0, 0), (1, 2)]
    theta = (torch.rand(3, inner.num_edges, generator=torch.Generator().manual_seed(0)) + 0.5).requires_grad_()
    layer = difftools.AIMLE(Recording(inner), samples=4, initial_alpha=1.0, generator=torch.Generator().manual_seed(1))
    z = layer(theta, source=PerInstance(sources), target=PerInstance(targets))
    (z * torch.randn(z.shape, generator=torch.Generator().manual_seed(2))).mean(0).sum().backward()
    assert [c[0].shape[0] for c in calls] == [4, 8]  # forward: 4 samples; backward: both ends of 4
    for out, s_seen, t_seen in calls:
        for flat, zb in enumerate(out.reshape(-1, inner.num_edges)):
            b = flat % 3
            assert (s_seen[flat], t_seen[flat]) == (sources[b], targets[b])
            assert path_edges_are_a_path(graph, inner.edges, zb.detach().numpy(), sources[b], targets[b])
    assert theta.grad.abs().sum() > 0


def test_process_pool_and_pickling():
    graph = nx.cycle_graph(8, create_using=nx.DiGraph)  # strongly connected, plus chords
    graph.add_edges_from([(0, 4), (2, 7), (5, 1), (6, 3), (3, 0), (7, 2)])
    w = torch.rand(10, 14, generator=torch.Generator().manual_seed(4))
    sources, targets = PerInstance([i % 8 for i in range(10)]), PerInstance([(i * 3 + 1) % 8 for i in range(10)])
    expected = ShortestPath(graph)(w, source=sources, target=targets)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        parallel = ShortestPath(graph, negative="clamp", executor=pool, chunksize=3)
        torch.testing.assert_close(parallel(w, source=sources, target=targets), expected)
        copy = pickle.loads(pickle.dumps(parallel))
    assert copy.executor is None
    torch.testing.assert_close(copy(w, source=sources, target=targets), expected)


def test_learns_through_aimle():
    # An undirected grid has cycles: noise pushes costs below 0, which only clamping keeps solvable.
    solver = ShortestPath(nx.grid_2d_graph(4, 4), (0, 0), (3, 3), negative="clamp")
    # initial_alpha skips AIMLE's warm-up (from α = 0 at η = 1e-3 per step), which 40 steps can't cover.
    before, after = fit_through_aimle(
        solver, (solver.num_edges,), steps=40, lr=0.1, transform=F.softplus, initial_alpha=0.5, controller="paper"
    )
    assert after <= before / 3, (before, after)


# --------------------------------------------------------------------------- bad input
@pytest.fixture
def path4():
    return ShortestPath(nx.path_graph(4), 0, 3)


def test_wrong_shape_dtype_and_nan(path4):
    with pytest.raises(ValueError, match=r"θ has shape \(2, 4\), expected \[\*, E\] edge weights .*\[3\]"):
        path4(torch.ones(2, 4))
    with pytest.raises(TypeError, match="floating-point dtype, got torch.int64"):
        path4(torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="θ contains NaN or Inf"):
        path4(torch.tensor([1.0, float("nan"), 1.0]))
    with pytest.raises(TypeError, match="θ must be a torch.Tensor"):
        path4(np.ones(3))


def test_negative_weights_raise_or_clamp():
    strict = ShortestPath(nx.path_graph(4), 0, 3, negative="raise")
    with pytest.raises(ValueError, match=r"negative edge weights \(min -2\).*negative='clamp'"):
        strict(torch.tensor([1.0, -2.0, 1.0]))
    clamped = ShortestPath(nx.cycle_graph(4), 0, 2, negative="clamp")  # edges (0,1),(0,3),(1,2),(2,3)
    torch.testing.assert_close(clamped(torch.tensor([-5.0, 0.5, -1.0, 0.2])), torch.tensor([1.0, 0, 1, 0]))
    with pytest.raises(ValueError, match="negative must be 'exact', 'raise' or 'clamp'"):
        ShortestPath(nx.path_graph(3), negative="ignore")


def brute_force_cost(graph: nx.Graph, weights: np.ndarray, source, target) -> float | None:
    """The cheapest simple source–target path by enumeration (None: no path)."""
    index = {e: i for i, e in enumerate(graph.edges())}
    costs = [
        sum(weights[index[(u, v)]] for u, v in zip(path, path[1:]))
        for path in nx.all_simple_paths(graph, source, target)
    ] + ([0.0] if source == target else [])
    return min(costs) if costs else None


@st.composite
def dags_with_signed_weights(draw):
    n = draw(st.integers(2, 7))
    pairs = [(u, v) for u in range(n) for v in range(u + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    # Shuffled node labels: the solver must find the topological order, not assume 0..n-1 is one.
    labels = draw(st.permutations(range(n)))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((labels[u], labels[v]) for u, v in chosen)
    weights = draw(st.lists(st.integers(-5, 5), min_size=len(chosen), max_size=len(chosen)))
    return graph, np.asarray(weights, dtype=np.float64), draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))


@settings(max_examples=80, deadline=None)
@given(dags_with_signed_weights())
def test_negative_costs_on_a_dag_are_exact(case):
    graph, weights, source, target = case
    best = brute_force_cost(graph, weights, source, target)
    solver = ShortestPath(graph, source, target)
    if best is None:
        with pytest.raises(SolverError, match=f"no path from {source} to {target}"):
            solver(torch.tensor(weights))
        return
    z = solver(torch.tensor(weights)).numpy()
    assert path_edges_are_a_path(graph, list(graph.edges()), z, source, target)
    assert float(weights @ z) == best


@st.composite
def digraphs_without_negative_cycles(draw):
    """Cyclic digraphs whose negative edges cannot form a negative cycle: w(u, v) = c + p(u) − p(v), c ≥ 0."""
    n = draw(st.integers(3, 6))
    pairs = [(u, v) for u in range(n) for v in range(n) if u != v]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=3, max_size=len(pairs), unique=True))
    graph = nx.DiGraph(chosen)
    graph.add_nodes_from(range(n))
    potential = draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n))
    base = draw(st.lists(st.integers(0, 4), min_size=len(chosen), max_size=len(chosen)))
    weights = [c + potential[u] - potential[v] for c, (u, v) in zip(base, graph.edges())]
    return graph, np.asarray(weights, dtype=np.float64), draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))


@settings(max_examples=60, deadline=None)
@given(digraphs_without_negative_cycles())
def test_negative_costs_without_negative_cycles_are_exact(case):
    graph, weights, source, target = case
    best = brute_force_cost(graph, weights, source, target)
    solver = ShortestPath(graph, source, target)
    if best is None:
        with pytest.raises(SolverError, match="no path"):
            solver(torch.tensor(weights))
        return
    z = solver(torch.tensor(weights)).numpy()
    assert path_edges_are_a_path(graph, list(graph.edges()), z, source, target)
    assert float(weights @ z) == pytest.approx(best)


def test_negative_cycle_is_an_error_not_a_clamp():
    cyclic = nx.DiGraph([(0, 1), (1, 2), (2, 0), (2, 3)])
    solver = ShortestPath(cyclic, 0, 3)
    with pytest.raises(SolverError, match=r"instance 0: the edge costs have a negative cycle.*negative='clamp'"):
        solver(torch.tensor([1.0, -3.0, 1.0, 1.0]))  # 0 -> 1 -> 2 -> 0 costs -1
    undirected = ShortestPath(nx.path_graph(3), 0, 2)
    with pytest.raises(SolverError, match="an undirected edge with a negative cost is itself a negative cycle"):
        undirected(torch.tensor([1.0, -1.0]))


def test_clamping_was_wrong_on_a_dag():
    """The bug of issue 14: 0 -> 1 -> 3 costs 2 − 5 = −3, but clamped it looked worse than 0 -> 2 -> 3 (1 + 0)."""
    cost = {(0, 1): 2.0, (1, 3): -5.0, (0, 2): 1.0, (2, 3): 0.0}
    dag = nx.DiGraph(list(cost))
    edges = list(dag.edges())
    weights = torch.tensor([cost[e] for e in edges])
    via_1 = torch.tensor([float(e in ((0, 1), (1, 3))) for e in edges])
    torch.testing.assert_close(ShortestPath(dag, 0, 3)(weights), via_1)
    torch.testing.assert_close(ShortestPath(dag, 0, 3, negative="clamp")(weights), 1.0 - via_1)


def test_bad_graphs_nodes_and_context(path4):
    with pytest.raises(TypeError, match="networkx Graph or DiGraph, got list"):
        ShortestPath([(0, 1)])
    with pytest.raises(TypeError, match="multigraphs are not supported"):
        ShortestPath(nx.MultiGraph([(0, 1), (0, 1)]))
    with pytest.raises(ValueError, match="graph has no edges"):
        ShortestPath(nx.empty_graph(3))
    with pytest.raises(ValueError, match="source 9 is not a node of the graph"):
        ShortestPath(nx.path_graph(3), source=9)
    with pytest.raises(SolverError, match="instance 1: raised ValueError: target 7 is not a node"):
        path4(torch.ones(2, 3), target=PerInstance([3, 7]))
    with pytest.raises(ValueError, match="no source; pass source="):
        ShortestPath(nx.path_graph(3))(torch.ones(2), target=2)
    with pytest.raises(TypeError, match=r"unknown context argument\(s\) \['sink'\]; accepted: source, target"):
        path4(torch.ones(3), sink=2)
    directed = ShortestPath(nx.DiGraph([(0, 1), (1, 2)]), 2, 0)
    with pytest.raises(SolverError, match="solver 'shortest_path', instance 0: no path from 2 to 0"):
        directed(torch.ones(2))


def test_missing_backend_names_the_extra():
    with pytest.raises(
        ImportError,
        match=r'needs no_such_backend, which is not installed: pip install "difftools\[graphs\]" '
        r'\(or, in a clone of the repository, pip install -e "\.\[graphs\]"\)',
    ):
        import_optional("no_such_backend.sub", "graphs", "shortest_path")
