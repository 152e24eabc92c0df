"""Shared fixtures of the estimator tests: example inputs per built-in solver, tiny exact solvers."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import difftools


class Flipped(difftools.SolverWrapper):
    """The same oracle in the opposite sense: ``Flipped(s)(θ) = s(−θ)`` (argmax ⟷ argmin)."""

    def __init__(self, inner: Any):
        super().__init__(inner, sense="min" if inner.sense == "max" else "max")

    def solve_batch(self, theta: torch.Tensor, /, **context: Any) -> torch.Tensor:
        return super().solve_batch(-theta, **context)

    def __repr__(self) -> str:
        return f"Flipped({self.inner!r})"


# A 4-node DAG s=0, a=1, b=2, t=3 with edges (in θ order) s→a, s→b, a→t, b→t, a→b and its three s–t paths.
DAG_EDGES = ((0, 1), (0, 2), (1, 3), (2, 3), (1, 2))
DAG_PATHS = np.array(
    [
        [1, 0, 1, 0, 0],  # s-a-t
        [0, 1, 0, 1, 0],  # s-b-t
        [1, 0, 0, 1, 1],  # s-a-b-t
    ],
    dtype=np.float64,
)


def _dag_shortest_path(costs: np.ndarray) -> np.ndarray:
    """Brute force: the cheapest of the three s–t paths (edge indicators)."""
    return DAG_PATHS[int(np.argmin(DAG_PATHS @ costs))].copy()


dag_shortest_path = difftools.solver(_dag_shortest_path, sense="min", event_dim=1, name="dag_shortest_path")


@dataclass(frozen=True)
class Example:
    """How to build a valid input for a registered solver: the module it needs and a factory."""

    module: str
    make: Callable[[torch.Generator], tuple[Any, torch.Tensor, dict]]


def _vector(n: int, positive: bool = False) -> Callable[[torch.Generator], torch.Tensor]:
    def draw(gen: torch.Generator) -> torch.Tensor:
        theta = torch.randn(2, n, generator=gen, dtype=torch.float64)
        return theta.abs() + 0.1 if positive else theta

    return draw


def _cvxpy_example(gen: torch.Generator) -> tuple[Any, torch.Tensor, dict]:
    import cvxpy as cp

    theta, z = cp.Parameter(4), cp.Variable(4)
    problem = cp.Problem(cp.Maximize(theta @ z), [z >= 0, z <= 1, cp.sum(z) <= 2])
    solver = difftools.get_solver("cvxpy", problem=problem, parameter=theta, variable=z)
    return solver, _vector(4)(gen), {}


def _shortest_path_example(gen: torch.Generator) -> tuple[Any, torch.Tensor, dict]:
    import networkx as nx

    graph = nx.DiGraph(list(DAG_EDGES))
    # Perturbation noise makes some costs negative: on this DAG the solver still solves exactly.
    solver = difftools.get_solver("shortest_path", graph=graph, source=0, target=3)
    return solver, _vector(len(DAG_EDGES), positive=True)(gen), {}


def _ilp_example(gen: torch.Generator) -> tuple[Any, torch.Tensor, dict]:
    solver = difftools.get_solver("ilp", sense="max", A=np.array([[1.0, 1.0, 1.0, 1.0]]), b=np.array([2.0]))
    return solver, _vector(4)(gen), {}


def _graph_spanning_tree_example(gen: torch.Generator) -> tuple[Any, torch.Tensor, dict]:
    import networkx as nx

    solver = difftools.get_solver("graph_spanning_tree", graph=nx.cycle_graph(5))  # 5 edges, trees of 4
    return solver, _vector(5)(gen), {}


def _simple(name: str, draw: Callable[[torch.Generator], torch.Tensor], **params: Any):
    return lambda gen: (difftools.get_solver(name, **params), draw(gen), {})


def _grid(gen: torch.Generator) -> torch.Tensor:
    return torch.rand(2, 3, 3, generator=gen, dtype=torch.float64) + 0.1


EXAMPLES: dict[str, Example] = {
    "argmax": Example("difftools.solvers.topk", _simple("argmax", _vector(4))),
    "topk": Example("difftools.solvers.topk", _simple("topk", _vector(5), k=2)),
    "grid_shortest_path": Example("difftools.solvers.grid_shortest_path", _simple("grid_shortest_path", _grid)),
    "spanning_tree": Example("difftools.solvers.spanning_tree", _simple("spanning_tree", _vector(6))),
    "graph_spanning_tree": Example("difftools.solvers.spanning_tree", _graph_spanning_tree_example),
    "shortest_path": Example("difftools.solvers.shortest_path", _shortest_path_example),
    "assignment": Example(
        "difftools.solvers.assignment",
        _simple("assignment", lambda gen: torch.randn(2, 3, 3, generator=gen, dtype=torch.float64), sense="max"),
    ),
    "ilp": Example("difftools.solvers.ilp", _ilp_example),
    "cvxpy": Example("difftools.solvers.cvxpy_solver", _cvxpy_example),
}


def _examples_from_solver_tests() -> dict[str, Example]:
    """``MATRIX_EXAMPLES`` of every ``tests/test_solvers_*.py``: a solver's matrix entry may live with its tests."""
    found: dict[str, Example] = {}
    for path in sorted(Path(__file__).parent.glob("test_solvers_*.py")):
        module = f"tests.{path.stem}"
        for name, make in getattr(importlib.import_module(module), "MATRIX_EXAMPLES", {}).items():
            found[name] = Example(module, make)
    return found


EXAMPLES.update(_examples_from_solver_tests())


def solver_names() -> list[str]:
    """Every registered solver name plus every name with an example: a solver missing from either fails."""
    return sorted(set(difftools.list_solvers()) | set(EXAMPLES))


def make_example(name: str, seed: int = 0) -> tuple[Any, torch.Tensor, dict]:
    """(solver, θ [2, *event], context) for a solver name; FAILS (never skips) for a solver without an example.

    A new solver is not done until the estimator × solver matrix runs on it: add its entry to EXAMPLES.
    """
    if name not in EXAMPLES:
        pytest.fail(
            f"solver {name!r} is registered but has no example input in tests/estimators_cases.py EXAMPLES, so the "
            "estimator × solver matrix cannot run on it; add one (see CONTRIBUTING.md, 'Adding a solver')"
        )
    if name not in difftools.list_solvers():
        pytest.fail(f"tests/estimators_cases.py has an example for {name!r}, but no solver of that name is registered")
    importlib.import_module(EXAMPLES[name].module)
    gen = torch.Generator().manual_seed(seed)
    return EXAMPLES[name].make(gen)

