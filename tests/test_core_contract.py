"""The solver contract: the Solver base, wrappers and the one rule for handing per-instance context on."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np
import pytest
import torch
from difftools.solvers.assignment import Assignment
from difftools.solvers.grid_shortest_path import GridShortestPath
from difftools.solvers.ilp import ILP
from difftools.solvers.shortest_path import ShortestPath
from difftools.solvers.spanning_tree import GraphSpanningTree, SpanningTree
from difftools.solvers.topk import TopK, argmax

import difftools
from difftools import PerInstance, Solver, SolverError, SolverWrapper
from examples.warcraft.train import TimedSolver
from tests.estimators_cases import Flipped


def top_k_each(theta: np.ndarray, k) -> np.ndarray:
    """One instance: the k largest entries (k an int or a 0-d array)."""
    z = np.zeros_like(theta)
    z[np.argsort(-theta, kind="stable")[: int(k)]] = 1.0
    return z


INNER = difftools.solver(top_k_each, sense="max", name="top_k_each")
KS = torch.tensor([1, 3, 2])


class Plain(SolverWrapper):
    """A wrapper that adds nothing: what every wrapper inherits."""


@pytest.mark.parametrize("wrap", [Plain, TimedSolver, lambda s: Flipped(Flipped(s))], ids=["plain", "timed", "flip2"])
@pytest.mark.parametrize("samples", [None, 3])
def test_wrappers_hand_per_instance_context_on_in_forward_and_backward(wrap, samples):
    theta = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    layer = difftools.AIMLE(wrap(INNER), samples=samples, initial_alpha=1.0, generator=torch.Generator().manual_seed(1))
    out = layer(theta, k=PerInstance(KS))
    # Instance b of every sample has exactly k_b ones: the context was split per instance, not shared.
    counts = out.sum(-1) if samples is None else out.sum(-1)[0]
    torch.testing.assert_close(counts, KS.float())
    out.sum().backward()  # the backward's solver calls go through the same wrapper
    assert theta.grad is not None and torch.isfinite(theta.grad).all()


def test_duck_typed_solvers_receive_the_bare_per_instance_value():
    seen = []

    class Duck:
        sense, event_dim = "max", 1

        def __call__(self, theta, k):
            seen.append(k)
            return INNER(theta, k=PerInstance(k))

    out = difftools.IMLE(Duck(), lam=1.0, noise=None)(torch.randn(3, 5), k=PerInstance(KS))
    torch.testing.assert_close(out.sum(-1), KS.float())
    assert isinstance(seen[0], torch.Tensor) and seen[0].shape == (1, 3)  # laid out over the sample dim


def test_accepts_per_instance_still_works_with_a_deprecation_warning():
    class Legacy:
        sense, event_dim = "max", 1
        accepts_per_instance = True

        def __call__(self, theta, **context):
            return INNER(theta, **context)

    with pytest.warns(DeprecationWarning, match="accepts_per_instance is deprecated"):
        out = difftools.IMLE(Legacy(), lam=1.0, noise=None)(torch.randn(3, 5), k=PerInstance(KS))
    torch.testing.assert_close(out.sum(-1), KS.float())


def test_the_old_protocol_module_warns_and_still_resolves_every_name():
    import difftools.protocol as protocol

    for name, new in protocol._MOVED.items():
        with pytest.warns(DeprecationWarning, match=f"import {name} from {new}"):
            assert getattr(protocol, name) is getattr(__import__(new, fromlist=[name]), name)
    with pytest.raises(AttributeError):
        protocol.no_such_name  # noqa: B018


def test_a_subclass_that_solves_nothing_is_refused_at_definition():
    with pytest.raises(TypeError, match="Empty: a Solver subclass must implement solve_batch"):

        class Empty(Solver):
            sense, event_dim = "max", 1


def test_the_base_checks_context_keywords_and_outputs():
    class Wrong(Solver):
        sense, event_dim = "max", 1

        def solve_batch(self, theta):
            return theta[..., :1]

    with pytest.raises(TypeError, match=r"TopK: unknown context argument\(s\) \['k'\]; it takes no context"):
        TopK(2)(torch.randn(2, 4), k=3)
    with pytest.raises(SolverError, match=r"returned shape \(2, 1\), expected θ's shape \(2, 4\)"):
        Wrong()(torch.randn(2, 4))
    with pytest.raises(TypeError, match="Wrong: θ must have a floating-point dtype"):
        Wrong()(torch.ones(2, 4, dtype=torch.long))
    assert repr(Wrong()) == "Wrong(sense='max', event_dim=1)"


def test_every_built_in_solver_derives_from_the_base():
    graph = nx.path_graph(4)
    built = [
        argmax,
        TopK(2),
        SpanningTree(),
        GraphSpanningTree(graph),
        GridShortestPath(),
        ShortestPath(graph, 0, 3),
        Assignment("max"),
        ILP(sense="max"),
        difftools.cached(argmax),
        difftools.solver(top_k_each, sense="max"),
    ]
    for solver in built:
        assert isinstance(solver, Solver), solver
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no built-in relies on a deprecated path
        for name in ("argmax", "grid_shortest_path", "spanning_tree"):
            assert isinstance(difftools.get_solver(name), Solver)


def test_old_solver_module_names_warn_and_forward_to_the_same_objects():
    from difftools.solvers.cvxpy_solver import CvxpySolver

    with pytest.warns(DeprecationWarning, match="import ShortestPath from difftools.solvers.shortest_path"):
        from difftools.solvers.graphs import ShortestPath as Old
    assert Old is ShortestPath
    with pytest.warns(DeprecationWarning, match="import CvxpySolver from difftools.solvers.cvxpy_solver"):
        from difftools.solvers.cvxpy_layer import CvxpySolver as OldCvxpy
    assert OldCvxpy is CvxpySolver


def test_the_top_level_name_solvers_warns_and_is_the_same_package():
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n    import solvers\nexcept DeprecationWarning as e:\n    print('warned:', e)\n"
        "warnings.simplefilter('ignore')\n"
        "import solvers.topk, difftools.solvers.topk, difftools\n"
        "print(solvers.topk is difftools.solvers.topk, difftools.get_solver('argmax') is solvers.topk.argmax)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "warned: the top-level package 'solvers' is deprecated" in out
    assert out.strip().endswith("True True")
