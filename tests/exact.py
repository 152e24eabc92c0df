"""Exact expectations by enumeration, the reference for gradient estimators in tests."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor


def k_subsets(n: int, k: int, dtype=torch.float64) -> Tensor:
    """All 0/1 vectors of length n with exactly k ones, one per row."""
    rows = [[1.0 if i in c else 0.0 for i in range(n)] for c in itertools.combinations(range(n), k)]
    return torch.tensor(rows, dtype=dtype)


def exact_value_and_grad(theta: Tensor, states: Tensor, f) -> tuple[Tensor, Tensor]:
    """E_{z~p(z;θ)}[f(z)] and its gradient, p(z;θ) ∝ exp<z,θ> over the rows of ``states``."""
    theta = theta.detach().to(states.dtype).clone().requires_grad_(True)
    p = torch.softmax(states @ theta, dim=0)
    value = (p * f(states)).sum()
    (grad,) = torch.autograd.grad(value, theta)
    return value.detach(), grad


def cosine(a: Tensor, b: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))
