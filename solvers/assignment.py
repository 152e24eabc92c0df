"""Linear assignment (bipartite matching) MAP oracle: ``Assignment`` over ``[*, n, m]`` scores (scipy)."""

from __future__ import annotations

import concurrent.futures
from typing import Literal

import numpy as np
from difftools.solvers._common import import_optional

from difftools.contract import check_sense
from difftools.function_solver import FunctionSolver

__all__ = ["Assignment"]


class _LinearSumAssignment:
    """One instance: ``[n, m]`` scores → 0/1 matching matrix (picklable, for process pools)."""

    def __init__(self, maximize: bool):
        self.maximize = maximize

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        optimize = import_optional("scipy.optimize", "graphs", "assignment")
        rows, cols = optimize.linear_sum_assignment(theta, maximize=self.maximize)
        z = np.zeros_like(theta)
        z[rows, cols] = 1.0
        return z


class Assignment(FunctionSolver):
    """Optimal assignment: ``z = argmax_{z ∈ P} <z, θ>`` (or argmin) by ``scipy.optimize.linear_sum_assignment``.

    θ ``[*, n, m]`` scores or costs (``event_dim=2``); P holds the 0/1 matrices with at most one
    1 per row and per column and exactly ``min(n, m)`` ones, so rectangular problems match every
    row (n ≤ m) or every column (n > m). Each instance is solved exactly (Jonker–Volgenant).

    Args:
        sense: required: ``"max"`` (θ are scores) or ``"min"`` (θ are costs).
        executor: a ``concurrent.futures.Executor`` that solves instances in parallel.
        chunksize: instances per executor task (see :func:`difftools.solver`).
    """

    context_keys = ()
    theta_meaning = "[*, n, m] assignment scores"
    check_finite_theta = True
    floating_theta = True

    def __init__(
        self,
        sense: Literal["max", "min"] | None = None,
        *,
        executor: concurrent.futures.Executor | None = None,
        chunksize: int | None = None,
    ):
        sense = check_sense(sense, "Assignment")
        super().__init__(
            _LinearSumAssignment(maximize=sense == "max"),
            sense=sense,
            event_dim=2,
            executor=executor,
            chunksize=chunksize,
            name="assignment",
            discrete="binary",
        )

    def __repr__(self) -> str:
        executor = "" if self.executor is None else f", executor={type(self.executor).__name__}"
        return f"Assignment(sense={self.sense!r}{executor})"
