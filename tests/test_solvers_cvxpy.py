"""CvxpySolver: form validation, enumeration references (MILP) and linprog (LP), context, training, errors."""

from __future__ import annotations

import concurrent.futures
import pickle

import cvxpy as cp
import numpy as np
import pytest
import scipy.optimize
import torch
from difftools.solvers.cvxpy_solver import CvxpySolver
from hypothesis import given, settings
from hypothesis import strategies as st

import difftools
from difftools import PerInstance, SolverError
from tests.enumeration import binary_programs, enumerate_best, satisfies
from tests.training import fit_through_aimle

pytestmark = pytest.mark.timeout(120)


def knapsack(n: int = 6, boolean: bool = True):
    theta = cp.Parameter(n, name="theta")
    z = cp.Variable(n, boolean=boolean, name="z")
    capacity = cp.Parameter(name="capacity", value=3.0)
    weights = np.arange(1.0, n + 1.0)
    constraints = [weights @ z <= capacity] + ([] if boolean else [z >= 0, z <= 1])
    return cp.Problem(cp.Maximize(theta @ z), constraints), theta, z


@settings(max_examples=25, deadline=None)
@given(data=st.data(), sense=st.sampled_from(["max", "min"]))
def test_boolean_programs_match_enumeration(data, sense):
    theta, program = data.draw(binary_programs(integer_data=False))
    n = len(theta)
    t, z = cp.Parameter(n), cp.Variable(n, boolean=True)
    constraints = []
    if "A" in program:
        constraints.append(program["A"] @ z <= program["b"])
    if "A_eq" in program:
        constraints.append(program["A_eq"] @ z == program["b_eq"])
    objective = cp.Maximize(t @ z) if sense == "max" else cp.Minimize(cp.sum(cp.multiply(t, z)))
    solver = CvxpySolver(cp.Problem(objective, constraints), t, z)
    assert solver.sense == sense
    best = enumerate_best(theta, **program, maximize=sense == "max")
    if best is None:
        with pytest.raises(SolverError, match="instance 0: the problem is infeasible"):
            solver(torch.from_numpy(theta))
        return
    out = solver(torch.from_numpy(theta)).numpy()
    assert set(np.unique(out)) <= {0.0, 1.0} and satisfies(out, **program)
    assert float(theta @ out) == pytest.approx(best, abs=1e-6)


def test_linear_program_matches_linprog_and_batches():
    problem, theta, z = knapsack(5, boolean=False)
    solver = difftools.get_solver("cvxpy", problem=problem, parameter=theta, variable=z)
    thetas = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = solver(thetas)
    assert out.shape == (2, 3, 5) and out.dtype == torch.float64
    for t, zt in zip(thetas.reshape(-1, 5).numpy(), out.reshape(-1, 5).numpy()):
        reference = scipy.optimize.linprog(-t, A_ub=np.arange(1.0, 6.0)[None], b_ub=[3.0], bounds=(0, 1))
        assert float(t @ zt) == pytest.approx(-reference.fun, abs=1e-7)


def test_matrix_variable_event_dim_two():
    theta, z = cp.Parameter((3, 3)), cp.Variable((3, 3), boolean=True)
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(theta, z))), [cp.sum(z, axis=0) == 1, cp.sum(z, axis=1) == 1])
    solver = CvxpySolver(problem, theta, z)
    assert solver.event_dim == 2
    scores = torch.tensor([[0.0, 5.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    torch.testing.assert_close(solver(scores), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))


def test_the_users_problem_is_left_untouched():
    problem, theta, z = knapsack()
    theta.value = np.ones(6)
    CvxpySolver(problem, theta, z)(torch.randn(4, 6), capacity=PerInstance(torch.tensor([1.0, 2.0, 3.0, 4.0])))
    assert problem.status is None and z.value is None
    np.testing.assert_array_equal(theta.value, np.ones(6))
    assert problem.parameters()[1].value == 3.0


def test_per_instance_parameter_reaches_forward_and_backward_of_aimle():
    n = 6
    theta_p, z = cp.Parameter(n), cp.Variable(n, boolean=True)
    k = cp.Parameter(name="k")
    inner = CvxpySolver(cp.Problem(cp.Maximize(theta_p @ z), [cp.sum(z) == k]), theta_p, z)
    seen = []

    class Recording(difftools.SolverWrapper):
        """Records what reaches the inner solver; the wrapper base hands PerInstance context on."""

        def solve_batch(self, theta, **context):
            out = super().solve_batch(theta, **context)
            seen.append(out)
            return out

    ks = torch.tensor([1.0, 3.0])
    theta = torch.randn(2, n, generator=torch.Generator().manual_seed(0), requires_grad=True)
    layer = difftools.AIMLE(Recording(inner), samples=2, initial_alpha=1.0, generator=torch.Generator().manual_seed(1))
    out = layer(theta, k=PerInstance(ks))
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).mean(0).sum().backward()
    assert [s.shape for s in seen] == [(2, 2, n), (4, 2, n)]
    for s in seen:
        torch.testing.assert_close(s.sum(-1), ks.expand(s.shape[0], 2))
    assert theta.grad.abs().sum() > 0


def test_thread_pool_uses_one_problem_copy_per_thread_and_pickles():
    problem, theta, z = knapsack()
    thetas = torch.randn(12, 6, generator=torch.Generator().manual_seed(3))
    caps = PerInstance(torch.arange(12, dtype=torch.float64) % 5 + 1)
    expected = CvxpySolver(problem, theta, z)(thetas, capacity=caps)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        solver = CvxpySolver(problem, theta, z, executor=pool, chunksize=1)
        torch.testing.assert_close(solver(thetas, capacity=caps), expected)
    torch.testing.assert_close(pickle.loads(pickle.dumps(solver))(thetas, capacity=caps), expected)


def test_learns_through_aimle():
    problem, theta, z = knapsack(6)
    solver = CvxpySolver(problem, theta, z)
    before, after = fit_through_aimle(solver, (6,), batch=4, steps=20, initial_alpha=1.0)
    assert after <= before / 3, (before, after)


# --------------------------------------------------------------------------- wrong form and bad input
def test_problems_of_the_wrong_form_are_refused():
    n = 4
    theta, z, y = cp.Parameter(n, name="theta"), cp.Variable(n, name="z"), cp.Variable(name="y")
    phi = cp.Parameter(n, name="phi", value=np.ones(n))
    box = [z >= 0, z <= 1]
    cases = [
        (cp.Problem(cp.Maximize(theta @ z + cp.sum(z)), box), "is not ⟨θ, z⟩"),
        (cp.Problem(cp.Maximize(2 * (theta @ z)), box), "is not ⟨θ, z⟩"),
        (cp.Problem(cp.Minimize(theta @ z + cp.sum_squares(z)), box), "is not ⟨θ, z⟩"),
        (cp.Problem(cp.Maximize(theta @ z + y), [*box, y <= 1]), r"also involves \['y'\]"),
        (cp.Problem(cp.Maximize(theta @ z + phi @ z), box), r"also involves \['phi'\]"),
        (cp.Problem(cp.Maximize(theta @ z), [*box, theta @ z <= 1]), "θ may only appear in the objective"),
        (cp.Problem(cp.Maximize(theta @ z + cp.sum_squares(z)), box), "not DCP"),
    ]
    for problem, message in cases:
        with pytest.raises(ValueError, match=message):
            CvxpySolver(problem, theta, z)
    good = cp.Problem(cp.Maximize(theta @ z), box)
    with pytest.raises(TypeError, match="parameter must be a cvxpy Parameter, got Variable"):
        CvxpySolver(good, z, z)
    with pytest.raises(ValueError, match="parameter 'phi' does not appear in the problem"):
        CvxpySolver(good, phi, z)
    short = cp.Parameter(3)
    with pytest.raises(ValueError, match=r"has shape \(3,\) but variable z has shape \(4,\)"):
        CvxpySolver(cp.Problem(cp.Maximize(short @ z[:3]), box), short, z)
    with pytest.raises(ValueError, match="solver 'NO_SUCH' is not installed"):
        CvxpySolver(good, theta, z, solver="NO_SUCH")


def test_bad_theta_context_and_infeasible_or_unbounded():
    problem, theta, z = knapsack()
    solver = CvxpySolver(problem, theta, z)
    with pytest.raises(ValueError, match=r"θ has shape \(2, 5\), expected \[\*, 6\] values of the parameter"):
        solver(torch.ones(2, 5))
    with pytest.raises(ValueError, match="θ contains NaN"):
        solver(torch.full((6,), float("nan")))
    with pytest.raises(TypeError, match=r"context \['capcity'\] names no parameter .* \['capacity'\]"):
        solver(torch.ones(6), capcity=2.0)
    with pytest.raises(SolverError, match="instance 1: the problem is infeasible"):
        solver(torch.ones(2, 6), capacity=PerInstance([1.0, -1.0]))
    theta2, x = cp.Parameter(2), cp.Variable(2)
    unbounded = CvxpySolver(cp.Problem(cp.Maximize(theta2 @ x), [x >= 0]), theta2, x)
    with pytest.raises(SolverError, match="instance 0: the problem is unbounded"):
        unbounded(torch.ones(2))
    unset = cp.Parameter(name="budget")
    needs_value = CvxpySolver(cp.Problem(cp.Maximize(theta2 @ x), [x >= 0, cp.sum(x) <= unset]), theta2, x)
    with pytest.raises(SolverError, match=r"parameter\(s\) \['budget'\] have no value"):
        needs_value(torch.ones(2))
    torch.testing.assert_close(needs_value(torch.tensor([1.0, 2.0]), budget=2.0), torch.tensor([0.0, 2.0]))
