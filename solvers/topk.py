"""Torch (CPU/GPU) MAP oracles over vectors: ``argmax`` (one-hot) and ``TopK`` (k-hot)."""

from __future__ import annotations

import torch
from torch import Tensor

from difftools.contract import Solver

__all__ = ["Argmax", "TopK", "argmax"]


class TopK(Solver):
    """k-hot MAP oracle: ``z = argmax_{z ∈ {0,1}^n, Σz = k} <z, θ>`` over the last dim.

    Batched over any leading dims, on θ's device; ties go to the lower index (``torch.topk``).
    """

    sense = "max"
    event_dim = 1
    discrete = "binary"
    theta_meaning = "[*, n] scores"
    check_finite_theta = False  # torch.topk orders NaN as the largest value; the estimators refuse NaN θ
    check_output_values = False  # ones scattered into zeros: 0 and 1 whatever θ is

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"TopK: k must be a positive int, got {k!r}")
        self.k = k

    def solve_batch(self, theta: Tensor, /) -> Tensor:
        if theta.shape[-1] < self.k:
            raise ValueError(f"TopK(k={self.k}): θ has only {theta.shape[-1]} entries in its last dim")
        index = torch.topk(theta, self.k, dim=-1, sorted=False).indices
        return torch.zeros_like(theta).scatter_(-1, index, 1.0)

    def __repr__(self) -> str:
        return f"TopK(k={self.k})"


class Argmax(Solver):
    """One-hot MAP oracle ``z = onehot(argmax θ)`` over the last dim (the categorical case)."""

    sense = "max"
    event_dim = 1
    discrete = "binary"
    theta_meaning = "[*, n] scores"
    check_finite_theta = False
    check_output_values = False  # a one scattered into zeros: 0 and 1 whatever θ is

    def solve_batch(self, theta: Tensor, /) -> Tensor:
        index = theta.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(theta).scatter_(-1, index, 1.0)

    def __repr__(self) -> str:
        return "Argmax()"


argmax = Argmax()
