"""Checks of a solver's output values (NaN/Inf, its discrete set) and the built-in solvers that skip them."""

from __future__ import annotations

import importlib
import math
import pkgutil

import hypothesis.strategies as st
import pytest
import torch
from difftools.solvers.hypercube import Hypercube
from difftools.solvers.topk import Argmax, TopK
from hypothesis import given, settings

import difftools

# The built-in solvers that declare check_output_values = False. A new one belongs here only with a
# reason its output cannot be NaN or Inf, and it joins the property test below.
UNCHECKED = {"Argmax", "TopK", "Hypercube"}

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=32)


def _built_in_solver_classes() -> dict[str, type]:
    import difftools.solvers as package

    classes = {}
    for info in pkgutil.iter_modules(package.__path__):
        try:
            module = importlib.import_module(f"{package.__name__}.{info.name}")
        except ImportError:  # an optional dependency (cvxpy) is missing
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, difftools.Solver) and value.__module__ == module.__name__:
                classes[value.__name__] = value
    return classes


def test_only_the_solvers_with_finite_outputs_by_construction_skip_the_check():
    classes = _built_in_solver_classes()
    assert UNCHECKED <= set(classes) and len(classes) > len(UNCHECKED)
    assert {name for name, cls in classes.items() if not cls.check_output_values} == UNCHECKED


@settings(max_examples=60, deadline=None)
@given(values=st.lists(ANY_FLOAT, min_size=6, max_size=6), k=st.integers(1, 3), sense=st.sampled_from(["max", "min"]))
def test_the_unchecked_solvers_return_zeros_and_ones_whatever_theta_holds(values, k, sense):
    theta = torch.tensor(values, dtype=torch.float32).reshape(2, 3)
    for solver in (TopK(k), Argmax(), Hypercube(sense)):
        z = solver.solve_batch(theta)  # what the output check would see (Hypercube's θ check refuses NaN first)
        assert z.shape == theta.shape and z.dtype == theta.dtype
        assert bool(((z == 0) | (z == 1)).all()), (solver, theta, z)


class _ReturnsNaN(difftools.Solver):
    sense = "max"
    event_dim = 1

    def solve_batch(self, theta, /):
        return torch.full_like(theta, math.nan)


def test_a_solver_returning_nan_is_refused_unless_it_declares_its_output_finite():
    with pytest.raises(difftools.SolverError, match="returned non-finite values"):
        _ReturnsNaN()(torch.zeros(2, 3))
    unchecked = _ReturnsNaN()
    unchecked.check_output_values = False  # the declaration is a promise: the check is skipped
    assert torch.isnan(unchecked(torch.zeros(2, 3))).all()


class _ReturnsHalves(difftools.Solver):
    sense = "max"
    event_dim = 1
    discrete = "binary"

    def solve_batch(self, theta, /):
        return torch.full_like(theta, 0.5)


def test_the_discrete_set_is_checked_unless_the_solver_declares_its_values(recwarn):
    with pytest.warns(RuntimeWarning, match="entries that are not 0 or 1"):
        difftools.AIMLE(_ReturnsHalves())(torch.zeros(2, 3))
    unchecked = _ReturnsHalves()
    unchecked.check_output_values = False
    difftools.AIMLE(unchecked)(torch.zeros(2, 3))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
