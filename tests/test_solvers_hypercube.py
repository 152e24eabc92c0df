"""Hypercube: brute force over {0,1}^n, both senses, the registry, and its entry in the estimator × solver matrix."""

from __future__ import annotations

import itertools

import pytest
import torch
from difftools.solvers.hypercube import Hypercube

import difftools

# The matrix (tests/test_estimators_matrix.py) runs every estimator and loss on this example; a registered
# solver without one fails there.
MATRIX_EXAMPLES = {
    "hypercube": lambda gen: (
        difftools.get_solver("hypercube"),
        torch.randn(2, 5, generator=gen, dtype=torch.float64),
        {},
    )
}


def brute_force(theta: torch.Tensor, sense: str) -> torch.Tensor:
    points = torch.tensor(list(itertools.product((0.0, 1.0), repeat=theta.shape[-1])), dtype=theta.dtype)
    values = theta @ points.T  # [batch, 2^n]
    best = values.argmax(-1) if sense == "max" else values.argmin(-1)
    return points[best]


@pytest.mark.parametrize("sense", ["max", "min"])
def test_matches_brute_force(sense):
    theta = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(Hypercube(sense)(theta), brute_force(theta, sense))


def test_registered_and_checked_by_the_base():
    assert isinstance(difftools.get_solver("hypercube"), Hypercube)
    assert repr(Hypercube("min")) == "Hypercube(sense='min')"
    with pytest.raises(ValueError, match="Hypercube: θ contains NaN or Inf"):
        Hypercube()(torch.tensor([0.0, float("nan")]))
    with pytest.raises(TypeError, match=r"Hypercube: unknown context argument\(s\) \['k'\]"):
        Hypercube()(torch.zeros(3), k=2)
