"""A user's cvxpy problem as a MAP oracle: ``CvxpySolver`` (objective ⟨θ, z⟩, LP or MILP, e.g. HiGHS)."""

from __future__ import annotations

import concurrent.futures
import pickle
import threading
import warnings
from typing import Any

import numpy as np
from difftools.solvers._common import import_optional

from difftools.errors import SolverError
from difftools.function_solver import FunctionSolver

__all__ = ["CvxpySolver"]


def _integral_mask(variable: Any) -> np.ndarray:
    """Which entries of a cvxpy Variable are boolean or integer (``True`` or a list of indices)."""
    mask = np.zeros(variable.shape, dtype=bool)
    for key in ("boolean", "integer"):
        attribute = variable.attributes[key]
        if attribute is True:
            mask[...] = True
        elif attribute:
            for index in attribute:
                mask[index] = True
    return mask


def _check_problem(cp: Any, problem: Any, parameter: Any, variable: Any) -> None:
    """Raise a clear error unless ``problem`` is max/min ⟨parameter, variable⟩ over fixed constraints."""
    who = "CvxpySolver"
    for name, value, kind in (
        ("problem", problem, cp.Problem),
        ("parameter", parameter, cp.Parameter),
        ("variable", variable, cp.Variable),
    ):
        if not isinstance(value, kind):
            raise TypeError(f"{who}: {name} must be a cvxpy {kind.__name__}, got {type(value).__name__}")
    if not any(p is parameter for p in problem.parameters()):
        raise ValueError(f"{who}: parameter {parameter.name()!r} does not appear in the problem")
    if not any(v is variable for v in problem.variables()):
        raise ValueError(f"{who}: variable {variable.name()!r} does not appear in the problem")
    if parameter.shape != variable.shape:
        raise ValueError(
            f"{who}: parameter θ has shape {parameter.shape} but variable z has shape {variable.shape}; "
            "the objective ⟨θ, z⟩ needs them equal"
        )
    for constraint in problem.constraints:
        if any(p is parameter for p in constraint.parameters()):
            raise ValueError(
                f"{who}: θ ({parameter.name()!r}) appears in the constraint {constraint}; "
                "θ may only appear in the objective"
            )
    objective = problem.objective.expr
    others = [v.name() for v in objective.variables() if v is not variable]
    others += [p.name() for p in objective.parameters() if p is not parameter]
    if others:
        raise ValueError(
            f"{who}: the objective must be ⟨θ, z⟩ but it also involves {others}; "
            "move them into constraints or fix them as constants"
        )
    if not problem.is_dcp():
        raise ValueError(f"{who}: the problem is not DCP (disciplined convex), so cvxpy cannot solve it")
    # Probe ∂objective/∂z at random θ: it must equal θ for the problem to be max/min ⟨θ, z⟩.
    saved = parameter.value, variable.value
    rng = np.random.default_rng(0)
    try:
        for _ in range(2):
            parameter.value = parameter.project(rng.normal(size=parameter.shape))
            variable.value = variable.project(np.ones(variable.shape))
            grad = objective.grad.get(variable) if objective.is_affine() else None
            grad = None if grad is None else np.asarray(grad.todense() if hasattr(grad, "todense") else grad)
            expected = np.asarray(parameter.value).flatten(order="F")
            if grad is None or grad.size != expected.size or not np.allclose(grad.ravel(), expected):
                raise ValueError(
                    f"{who}: the objective {problem.objective} is not ⟨θ, z⟩ (for example θ @ z or "
                    "cp.sum(cp.multiply(θ, z))) plus terms without z"
                )
    finally:
        parameter.value, variable.value = saved


class _CvxpyOracle:
    """One instance: set θ (and context parameters), solve, return z.value.

    cvxpy problems are stateful (parameter values, cached compilations), so each thread solves
    its own copy, made by a pickle round trip of the objective and constraints; the same pickle
    is what crosses into worker processes.
    """

    def __init__(self, blob: bytes, *, solver: str, solver_options: dict):
        self.blob = blob
        self.solver = solver
        self.solver_options = solver_options
        self._local = threading.local()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def problem(self) -> tuple[Any, Any, Any, dict]:
        """This thread's (problem, θ, z, other parameters by name)."""
        if not hasattr(self._local, "copy"):
            cp = import_optional("cvxpy", "cvx", "cvxpy")
            objective, constraints, parameter, variable, parameters = pickle.loads(self.blob)
            self._local.copy = (cp.Problem(objective, constraints), parameter, variable, parameters)
        return self._local.copy

    def __call__(self, theta: np.ndarray, **context: Any) -> np.ndarray:
        cp = import_optional("cvxpy", "cvx", "cvxpy")
        problem, parameter, variable, parameters = self.problem()
        parameter.value = theta
        for name, value in context.items():
            parameters[name].value = np.asarray(value, dtype=np.float64)
        missing = [name for name, p in parameters.items() if p.value is None]
        if missing:
            raise ValueError(f"parameter(s) {missing} have no value; set .value or pass them as context")
        try:
            problem.solve(solver=self.solver, **self.solver_options)
        except cp.error.SolverError as e:
            raise SolverError(f"cvxpy ({self.solver}) failed: {e}") from e
        status = problem.status
        if status == cp.OPTIMAL_INACCURATE:
            warnings.warn(f"cvxpy: {self.solver} reports an inaccurate optimum", RuntimeWarning, stacklevel=2)
        elif status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            raise SolverError(f"the problem is infeasible (cvxpy status {status!r})")
        elif status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
            raise SolverError(f"the problem is unbounded (cvxpy status {status!r}); bound z")
        elif status != cp.OPTIMAL or variable.value is None:
            raise SolverError(f"cvxpy ({self.solver}) returned status {status!r}")
        z = np.array(variable.value, dtype=np.float64).reshape(variable.shape)
        mask = _integral_mask(variable)
        z[mask] = np.round(z[mask])
        return z + 0.0  # turns the -0.0 that solvers report into 0.0


class CvxpySolver(FunctionSolver):
    """A cvxpy ``Problem`` ``max/min ⟨θ, z⟩ s.t. constraints(z)`` as a MAP oracle.

    ``parameter`` is the cvxpy ``Parameter`` θ and ``variable`` the ``Variable`` z, of equal
    shape (one or two dims, ``event_dim`` = its number of dims); θ ``[*batch, *shape]``. The form
    is checked here: the objective must be ``Maximize`` (sense ``"max"``) or ``Minimize`` (sense
    ``"min"``) of ⟨θ, z⟩ plus terms without z, θ may not appear in constraints, and the
    objective may involve no other variable or parameter. Constraints may hold other parameters:
    their values set before construction are used, and context keyword arguments named after
    them override them per call, shared (``capacity=3.0``) or per instance
    (``capacity=PerInstance(caps)``).

    For a MAP oracle the optimum should be a vertex: LPs and MILPs (boolean or integer z) solved
    by a simplex or branch-and-bound solver such as HiGHS (the default). Integer entries of z are
    rounded to the nearest integer. The user's problem is never solved or modified: each thread
    (and each worker process) solves its own copy, so the problem must be picklable.

    Args:
        problem: the ``cvxpy.Problem``.
        parameter: θ, a ``cvxpy.Parameter`` in the objective only.
        variable: z, the ``cvxpy.Variable`` returned.
        solver: a cvxpy solver name (``cvxpy.installed_solvers()``); default ``"HIGHS"``.
        solver_options: keyword arguments for ``problem.solve`` (e.g. ``{"time_limit": 10}``).
        executor: a ``concurrent.futures.Executor`` that solves instances in parallel.
        chunksize: instances per executor task (see :func:`difftools.solver`).
    """

    check_finite_theta = True
    floating_theta = True

    def __init__(
        self,
        problem: Any,
        parameter: Any,
        variable: Any,
        *,
        solver: str = "HIGHS",
        solver_options: dict | None = None,
        executor: concurrent.futures.Executor | None = None,
        chunksize: int | None = None,
    ):
        cp = import_optional("cvxpy", "cvx", "CvxpySolver")
        _check_problem(cp, problem, parameter, variable)
        if solver not in cp.installed_solvers():
            raise ValueError(f"CvxpySolver: solver {solver!r} is not installed; installed: {cp.installed_solvers()}")
        parameters = {p.name(): p for p in problem.parameters() if p is not parameter}
        if len(parameters) != len(problem.parameters()) - 1:
            raise ValueError("CvxpySolver: the problem's parameters need distinct names (Parameter(name=...))")
        try:
            blob = pickle.dumps((problem.objective, problem.constraints, parameter, variable, parameters))
        except Exception as e:
            raise TypeError(f"CvxpySolver: the problem must be picklable to be copied per thread/process: {e}") from e
        super().__init__(
            _CvxpyOracle(blob, solver=solver, solver_options=dict(solver_options or {})),
            sense="max" if isinstance(problem.objective, cp.Maximize) else "min",
            event_dim=len(parameter.shape),
            executor=executor,
            chunksize=chunksize,
            name="cvxpy",
            # An LP's optimal vertices need not be integral: only an all-integer z is checked.
            discrete="integer" if bool(_integral_mask(variable).all()) else None,
        )
        self.shape: tuple[int, ...] = tuple(parameter.shape)
        self.parameter_names: tuple[str, ...] = tuple(parameters)
        self.event_shape = self.shape
        self.theta_meaning = f"[*, {', '.join(map(str, self.shape))}] values of the parameter"
        self._description = f"{type(problem.objective).__name__}(⟨{parameter.name()}, {variable.name()}⟩)"

    def check_context(self, context: dict) -> None:
        unknown = sorted(set(context) - set(self.parameter_names))
        if unknown:
            raise TypeError(
                f"{self.name}: context {unknown} names no parameter of the problem; "
                f"its other parameters are {list(self.parameter_names)}"
            )

    def __repr__(self) -> str:
        parts = [self._description, f"shape={self.shape}", f"solver={self.fn.solver!r}"]
        if self.parameter_names:
            parts.append(f"context={list(self.parameter_names)}")
        if self.executor is not None:
            parts.append(f"executor={type(self.executor).__name__}")
        return f"CvxpySolver({', '.join(parts)})"
