"""ILP (OR-Tools SCIP / CP-SAT, Gurobi): enumeration references, outcomes, context, executors, training, errors."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
import torch
from difftools.solvers.ilp import ILP
from hypothesis import given, settings
from hypothesis import strategies as st

import difftools
from difftools import PerInstance, SolverError
from tests.enumeration import binary_programs, enumerate_best, satisfies
from tests.training import fit_through_aimle

pytestmark = pytest.mark.timeout(120)


def _gurobi_problem() -> str | None:
    """Why Gurobi cannot run here (not installed, no licence), or None when a tiny model solves."""
    try:
        import gurobipy as gp

        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        model = gp.Model(env=env)
        model.setObjective(model.addVar(vtype=gp.GRB.BINARY), gp.GRB.MAXIMIZE)
        model.optimize()
        return None if model.Status == gp.GRB.OPTIMAL else f"Gurobi status {model.Status} on a one-variable model"
    except Exception as e:  # ImportError, or a GurobiError about the licence
        return f"Gurobi cannot start: {type(e).__name__}: {e}"


_GUROBI_PROBLEM = _gurobi_problem()
GUROBI = pytest.param("gurobi", marks=pytest.mark.skipif(_GUROBI_PROBLEM is not None, reason=str(_GUROBI_PROBLEM)))


@pytest.mark.parametrize("backend", ["scip", "cp-sat", GUROBI])
@settings(max_examples=40, deadline=None)
@given(data=st.data(), sense=st.sampled_from(["max", "min"]))
def test_binary_programs_match_enumeration(backend, data, sense):
    theta, program = data.draw(binary_programs(integer_data=backend == "cp-sat"))
    best = enumerate_best(theta, **program, maximize=sense == "max")
    solver = ILP(**program, sense=sense, backend=backend)
    if best is None:
        with pytest.raises(SolverError, match="instance 0: the ILP is infeasible"):
            solver(torch.from_numpy(theta))
        return
    z = solver(torch.from_numpy(theta)).numpy()
    assert set(np.unique(z)) <= {0.0, 1.0} and satisfies(z, **program)
    assert float(theta @ z) == pytest.approx(best, abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_general_integer_bounds_match_enumeration(data):
    n = data.draw(st.integers(1, 4))
    theta = np.array(data.draw(st.lists(st.floats(-5, 5, width=32), min_size=n, max_size=n)), dtype=np.float64)
    A = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n)), dtype=float)[None]
    b = np.array([float(data.draw(st.integers(-2, 4)))])
    best = enumerate_best(theta, A, b, values=range(-2, 3))
    backends = ["scip", "cp-sat"] + ["gurobi"] * (_GUROBI_PROBLEM is None)
    solver = ILP(sense="max", A=A, b=b, lower=-2, upper=2, backend=data.draw(st.sampled_from(backends)))
    if best is None:
        with pytest.raises(SolverError, match="infeasible"):
            solver(torch.from_numpy(theta))
        return
    z = solver(torch.from_numpy(theta)).numpy()
    assert float(theta @ z) == pytest.approx(best, abs=1e-6) and satisfies(z, A, b)


def test_linear_program_matches_scipy_linprog():
    rng = np.random.default_rng(0)
    A, b = rng.uniform(0.1, 1.0, (3, 6)), rng.uniform(1.0, 2.0, 3)
    theta = rng.normal(size=(4, 6))
    z = ILP(sense="max", A=A, b=b, integer=False)(torch.from_numpy(theta)).numpy()
    for t, zt in zip(theta, z):
        reference = scipy.optimize.linprog(-t, A_ub=A, b_ub=b, bounds=(0, 1), method="highs")
        assert float(t @ zt) == pytest.approx(-reference.fun, abs=1e-7) and satisfies(zt, A, b)


def test_mixed_integrality_sparse_matrix_and_unbounded_variables():
    # max z0 + z1 + 0.5 z2 s.t. z0 + z1 + z2 <= 2.5, z2 <= 10 continuous, z0, z1 integer in [0, ∞)
    A = scipy.sparse.csr_matrix(np.array([[1.0, 1.0, 1.0]]))
    solver = ILP(sense="max", A=A, b=[2.5], upper=None, integer=np.array([True, True, False]))
    z = solver(torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64))
    assert float(z[:2].sum()) == 2.0 and float(z[2]) == pytest.approx(0.5)


def test_cp_sat_resolves_objective_differences_far_below_its_default_precision():
    # OR-Tools' own MIP-to-CP-SAT conversion picks entry 2 here; SCIP's tolerances are about 1e-9.
    for backend, eps in (("cp-sat", 1e-10), ("scip", 1e-7)):
        theta = torch.tensor([1.0, 1.0 + eps, 1.0 - eps, 0.3], dtype=torch.float64)
        z = ILP(sense="max", A_eq=np.ones((1, 4)), b_eq=[1.0], backend=backend)(theta)
        torch.testing.assert_close(z, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    big = ILP(sense="max", A=[[1.0, 1.0, 1.0]], b=[2.0], lower=-1000, upper=1000, backend="cp-sat")
    # Scaled by 2**10 here, the last coefficient rounds to 0: z2 is still pushed to -1000 to make room for z1.
    torch.testing.assert_close(big(torch.tensor([1e6, 1.0, 1e-6])), torch.tensor([1000.0, 2.0, -1000.0]))


# --------------------------------------------------------------------------- outcomes
def market_split(seed: int = 0, n: int = 40, m: int = 4):
    """Cornuéjols–Dawande market split: tiny, feasible-looking, hopeless for branch and bound."""
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 100, (m, n)).astype(float)
    return A, np.floor(A.sum(1) / 2)


@pytest.mark.parametrize("backend", ["scip", "cp-sat", GUROBI])
def test_time_limit_without_a_solution(backend):
    A_eq, b_eq = market_split()
    solver = ILP(sense="max", A_eq=A_eq, b_eq=b_eq, time_limit=0.05, backend=backend)
    with pytest.raises(SolverError, match=r"instance 0: time limit of 0.05 s reached before any feasible solution"):
        solver(torch.ones(40))


@pytest.mark.parametrize(
    ("backend", "stop_early"),
    [
        ("scip", "limits/solutions = 1"),
        ("cp-sat", "stop_after_first_solution:true"),
        pytest.param("gurobi", "SolutionLimit=1", marks=GUROBI.marks),
    ],
)
def test_limit_reached_with_an_incumbent_raises_or_warns(backend, stop_early):
    rng = np.random.default_rng(1)
    A, b = rng.integers(1, 30, (3, 25)).astype(float), np.full(3, 100.0)
    theta = torch.from_numpy(rng.uniform(1, 2, 25))
    strict = ILP(sense="max", A=A, b=b, backend=backend, parameters=stop_early)
    with pytest.raises(SolverError, match=r"stopped by a limit .*before optimality .*on_time_limit='incumbent'"):
        strict(theta)
    lenient = ILP(sense="max", A=A, b=b, backend=backend, parameters=stop_early, on_time_limit="incumbent")
    with pytest.warns(RuntimeWarning, match="returning the incumbent"):
        z = lenient(theta).numpy()
    assert satisfies(z, A, b) and float(theta.numpy() @ z) <= float(
        theta.numpy() @ ILP(sense="max", A=A, b=b)(theta).numpy()
    )


@pytest.mark.parametrize("backend", ["scip", "cp-sat", GUROBI])
def test_infeasible_and_unbounded(backend):
    with pytest.raises(SolverError, match="solver 'ilp', instance 1: the ILP is infeasible"):
        solver = ILP(sense="max", A=[[1.0, 1.0]], backend=backend)
        solver(torch.ones(2, 2), b=PerInstance(torch.tensor([[1.0], [-1.0]])))
    if backend == "cp-sat":  # CP-SAT needs finite bounds, so it cannot be unbounded (checked below)
        return
    with pytest.raises(SolverError, match="instance 0: the ILP is unbounded"):
        ILP(sense="max", A=[[-1.0, 0.0]], b=[0.0], upper=None, backend=backend)(torch.ones(2))
    # Infeasible and unbounded at once is reported as infeasible (Gurobi first says "INF_OR_UNBD").
    with pytest.raises(SolverError, match="instance 0: the ILP is infeasible"):
        ILP(sense="max", A_eq=[[1.0, 1.0]], b_eq=[0.5], lower=None, upper=None, backend=backend)(torch.ones(2))


@pytest.mark.parametrize("backend", [GUROBI])
def test_gurobi_matches_scip_with_mixed_integrality_and_pickles(backend):
    rng = np.random.default_rng(3)
    A, b = rng.uniform(0.1, 1.0, (3, 8)), rng.uniform(1.0, 3.0, 3)
    integer = np.arange(8) % 2 == 0
    theta = torch.from_numpy(rng.normal(size=(5, 8)))
    solver = ILP(sense="max", A=A, b=b, A_eq=np.ones((1, 8)), b_eq=[2.5], integer=integer, backend=backend, threads=2)
    reference = ILP(sense="max", A=A, b=b, A_eq=np.ones((1, 8)), b_eq=[2.5], integer=integer)(theta)
    z = solver(theta)
    torch.testing.assert_close((theta * z).sum(-1), (theta * reference).sum(-1), atol=1e-6, rtol=0)
    copy = pickle.loads(pickle.dumps(solver))  # the Gurobi environment is not pickled; the copy starts its own
    torch.testing.assert_close(copy(theta), z)
    assert "backend='gurobi'" in repr(solver)


# --------------------------------------------------------------------------- context and executors
def test_per_instance_constraints_reach_forward_and_backward_of_aimle():
    inner = ILP(sense="max", A_eq=np.ones((1, 6)), backend="cp-sat")
    seen = []

    class Recording(difftools.SolverWrapper):
        """Records what reaches the inner solver; the wrapper base hands PerInstance context on."""

        def solve_batch(self, theta, **context):
            z = super().solve_batch(theta, **context)
            seen.append(z)
            return z

    k = torch.tensor([[1.0], [2.0], [4.0]])
    theta = torch.randn(3, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)
    layer = difftools.AIMLE(Recording(inner), samples=2, initial_alpha=1.0, generator=torch.Generator().manual_seed(1))
    z = layer(theta, b_eq=PerInstance(k))
    (z * torch.randn(z.shape, generator=torch.Generator().manual_seed(2))).mean(0).sum().backward()
    assert [s.shape for s in seen] == [(2, 3, 6), (4, 3, 6)]
    for out in seen:
        torch.testing.assert_close(out.sum(-1), k.squeeze(-1).expand(out.shape[0], 3))
    assert theta.grad.abs().sum() > 0


def test_constraint_data_given_only_per_call():
    solver = difftools.get_solver("ilp", sense="max")  # free 0/1 variables: z = [θ > 0]
    theta = torch.tensor([[1.0, -1.0, 2.0], [3.0, 2.0, 1.0]])
    torch.testing.assert_close(solver(theta), (theta > 0).float())
    A = PerInstance(torch.tensor([[[1.0, 1.0, 1.0]], [[1.0, 0.0, 1.0]]]))
    torch.testing.assert_close(solver(theta, A=A, b=[1.0]), torch.tensor([[0.0, 0, 1], [1, 1, 0]]))


def test_process_pool_matches_sequential_and_pickles():
    rng = np.random.default_rng(2)
    A, caps = rng.integers(1, 10, (1, 8)).astype(float), torch.from_numpy(rng.integers(5, 20, (10, 1)).astype(float))
    theta = torch.from_numpy(rng.normal(size=(10, 8)))
    expected = ILP(sense="max", A=A)(theta, b=PerInstance(caps))
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        parallel = ILP(sense="max", A=A, executor=pool, chunksize=3)
        torch.testing.assert_close(parallel(theta, b=PerInstance(caps)), expected)
        with pytest.raises(SolverError, match="instance 4: the ILP is infeasible"):
            parallel(theta, b=PerInstance(torch.where(torch.arange(10)[:, None] == 4, -1.0, caps)))
    copy = pickle.loads(pickle.dumps(parallel))
    torch.testing.assert_close(copy(theta, b=PerInstance(caps)), expected)


def test_learns_through_aimle():
    rng = np.random.default_rng(0)
    solver = ILP(sense="max", A=rng.integers(1, 10, (1, 8)).astype(float), backend="cp-sat")
    caps = PerInstance(torch.from_numpy(rng.integers(8, 25, (8, 1)).astype(float)))
    before, after = fit_through_aimle(solver, (8,), batch=8, steps=25, initial_alpha=1.0, context=dict(b=caps))
    assert after <= before / 4, (before, after)


# --------------------------------------------------------------------------- bad input
def test_bad_constraint_data():
    with pytest.raises(ValueError, match=r"b must be a scalar or have shape \(2,\), got shape \(3,\)"):
        ILP(sense="max", A=np.ones((2, 4)), b=np.ones(3))
    with pytest.raises(ValueError, match="A must be a 2-D"):
        ILP(sense="max", A=np.ones(4), b=[1.0])
    with pytest.raises(ValueError, match="A contains NaN or Inf"):
        ILP(sense="max", A=[[1.0, np.nan]], b=[1.0])
    with pytest.raises(ValueError, match=r"lower > upper for variable\(s\) \[1\]"):
        ILP(sense="max", lower=np.array([0.0, 2.0]), upper=1.0)
    with pytest.raises(ValueError, match="integer must be a bool"):
        ILP(sense="max", A=np.ones((1, 2)), b=[1.0], integer=[1, 0])
    with pytest.raises(ValueError, match="A is given but b is not; they go together"):
        ILP(sense="max", A=np.ones((1, 3)))(torch.ones(3))
    with pytest.raises(SolverError, match=r"instance 0: raised ValueError: A has shape \(1, 2\), expected 3 columns"):
        ILP(sense="max")(torch.ones(3), A=np.ones((1, 2)), b=[1.0])


def test_bad_theta_options_and_context():
    solver = ILP(sense="max", A=np.ones((1, 3)), b=[1.0])
    with pytest.raises(ValueError, match=r"θ has 4 entries per instance .* n=3 variables \(A has shape \(1, 3\)\)"):
        solver(torch.ones(2, 4))
    with pytest.raises(ValueError, match="θ contains NaN"):
        solver(torch.tensor([1.0, float("nan"), 0.0]))
    with pytest.raises(TypeError, match=r"unknown context argument\(s\) \['B'\]"):
        solver(torch.ones(3), B=[1.0])
    with pytest.raises(ValueError, match="threads > 1 needs backend='cp-sat'"):
        ILP(sense="max", threads=2)
    with pytest.raises(ValueError, match=r"backend must be one of \['cp-sat', 'gurobi', 'scip'\]"):
        ILP(sense="max", backend="cplex")
    with pytest.raises(ValueError, match="time_limit must be None or a number of seconds > 0"):
        ILP(sense="max", time_limit=0)
    with pytest.raises(ValueError, match="on_time_limit must be 'raise' or 'incumbent'"):
        ILP(sense="max", on_time_limit="warn")
    with pytest.raises(SolverError, match="backend='cp-sat' needs integer-valued A"):
        ILP(sense="max", A=[[0.5, 1.0, 1.0]], b=[1.0], backend="cp-sat")(torch.ones(3))
    with pytest.raises(SolverError, match="backend='cp-sat' needs finite lower and upper bounds"):
        ILP(sense="max", upper=None, backend="cp-sat")(torch.ones(3))
    assert repr(ILP(sense="max", A=np.ones((2, 3)), b=np.ones(2), backend="cp-sat", threads=2, time_limit=1)) == (
        "ILP(n=3, sense='max', backend='cp-sat', A_rows=2, time_limit=1, on_time_limit='raise', threads=2)"
    )
