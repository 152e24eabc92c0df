"""Assignment (scipy linear_sum_assignment): brute force over permutations, training, errors."""

from __future__ import annotations

import concurrent.futures
import itertools
import pickle

import numpy as np
import pytest
import torch
from difftools.solvers.assignment import Assignment
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import difftools
from tests.training import fit_through_aimle

pytestmark = pytest.mark.timeout(120)


def brute_force_best(theta: np.ndarray, maximize: bool) -> float:
    """Best total over all matchings of min(n, m) pairs, by enumerating injective maps."""
    n, m = theta.shape
    scores = theta if n <= m else theta.T
    rows = np.arange(len(scores))
    totals = [scores[rows, list(cols)].sum() for cols in itertools.permutations(range(scores.shape[1]), len(scores))]
    return max(totals) if maximize else min(totals)


def is_matching(z: np.ndarray) -> bool:
    n, m = z.shape
    return (
        set(np.unique(z)) <= {0.0, 1.0}
        and (z.sum(0) <= 1).all()
        and (z.sum(1) <= 1).all()
        and z.sum() == min(n, m)
    )


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["max", "min"]),
    st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(
        lambda shape: arrays(np.float64, shape, elements=st.floats(-10, 10, allow_nan=False, width=32))
    ),
)
def test_matches_brute_force_including_rectangular(sense, theta):
    z = Assignment(sense)(torch.from_numpy(theta)).numpy()
    assert is_matching(z)
    assert float((theta * z).sum()) == pytest.approx(brute_force_best(theta, sense == "max"), abs=1e-9)


def test_batch_shape_dtype_sense_and_registry():
    solver = difftools.get_solver("assignment", sense="min")
    assert (solver.sense, solver.event_dim) == ("min", 2)
    theta = torch.tensor([[3.0, 1.0], [1.0, 3.0]], dtype=torch.float64).expand(2, 3, 2, 2)
    z = solver(theta)
    assert z.shape == (2, 3, 2, 2) and z.dtype == torch.float64
    torch.testing.assert_close(z[1, 2], torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(Assignment(sense="max")(theta[0, 0]), torch.eye(2, dtype=torch.float64))
    assert repr(solver) == "Assignment(sense='min')"


def test_thread_pool_and_pickling():
    theta = torch.randn(12, 4, 5, generator=torch.Generator().manual_seed(0))
    expected = Assignment(sense="max")(theta)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        solver = Assignment(sense="max", executor=pool, chunksize=2)
        torch.testing.assert_close(solver(theta), expected)
        assert "executor=ThreadPoolExecutor" in repr(solver)
    torch.testing.assert_close(pickle.loads(pickle.dumps(solver))(theta), expected)


def test_learns_through_aimle():
    before, after = fit_through_aimle(Assignment(sense="max"), (4, 4), steps=40, lr=0.1, initial_alpha=1.0)
    assert after <= before / 4, (before, after)


def test_bad_input():
    solver = Assignment(sense="max")
    with pytest.raises(ValueError, match=r"θ has shape \(3,\), expected \[\*, n, m\] assignment scores"):
        solver(torch.ones(3))
    with pytest.raises(TypeError, match="floating-point dtype, got torch.int32"):
        solver(torch.ones(2, 2, dtype=torch.int32))
    with pytest.raises(ValueError, match="θ contains NaN or Inf"):
        solver(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(TypeError, match="it takes no context arguments"):
        solver(torch.ones(2, 2), capacity=3)
    with pytest.raises(ValueError, match="sense must be 'max' or 'min', got 'maximise'"):
        Assignment("maximise")


def test_an_empty_side_matches_nothing():
    z = Assignment(sense="max")(torch.ones(3, 0, 4))
    assert z.shape == (3, 0, 4)
