"""Exact references for the integer-programming tests: enumeration over small boxes, random programs."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st


def enumerate_best(theta, A=None, b=None, A_eq=None, b_eq=None, values=(0, 1), maximize=True):
    """Optimal objective by enumerating every z in values^n (None when infeasible)."""
    n = len(theta)
    z = np.array(list(itertools.product(values, repeat=n)), dtype=np.float64)
    feasible = np.ones(len(z), dtype=bool)
    if A is not None:
        feasible &= (z @ np.asarray(A).T <= np.asarray(b) + 1e-9).all(1)
    if A_eq is not None:
        feasible &= (np.abs(z @ np.asarray(A_eq).T - np.asarray(b_eq)) <= 1e-9).all(1)
    if not feasible.any():
        return None
    objective = z[feasible] @ theta
    return objective.max() if maximize else objective.min()


def satisfies(z, A=None, b=None, A_eq=None, b_eq=None) -> bool:
    ok = True
    if A is not None:
        ok &= bool((np.asarray(A) @ z <= np.asarray(b) + 1e-6).all())
    if A_eq is not None:
        ok &= bool(np.allclose(np.asarray(A_eq) @ z, b_eq, atol=1e-6))
    return ok


@st.composite
def binary_programs(draw, integer_data: bool):
    """Random 0/1 programs; A has one decimal (SCIP) or integers (CP-SAT); A_eq z = b_eq is feasible."""
    n = draw(st.integers(1, 10))
    m = draw(st.integers(0, 3))
    entry = st.integers(-3, 5) if integer_data else st.integers(-30, 50).map(lambda v: v / 10)
    A = np.array(draw(st.lists(st.lists(entry, min_size=n, max_size=n), min_size=m, max_size=m)), dtype=float)
    b = np.array(draw(st.lists(st.integers(-2, 8), min_size=m, max_size=m)), dtype=float)
    theta = np.array(draw(st.lists(st.floats(-5, 5, width=32), min_size=n, max_size=n)), dtype=np.float64)
    program = dict(A=A.reshape(m, n), b=b) if m else {}
    if draw(st.booleans()):
        A_eq = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), dtype=float)[None]
        z0 = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=float)
        program.update(A_eq=A_eq, b_eq=A_eq @ z0)
    return theta, program
