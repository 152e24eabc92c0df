"""Integer linear programs solved by OR-Tools (SCIP or CP-SAT) or Gurobi: the ``ILP`` MAP oracle.

``max θᵀz  s.t.  A z ≤ b,  A_eq z = b_eq,  lower ≤ z ≤ upper,  z_i integer where integer[i]``,
one model per instance, built from arrays through OR-Tools' model-builder helper or gurobipy's
matrix API.
"""

from __future__ import annotations

import concurrent.futures
import math
import warnings
from typing import Any, Literal, NamedTuple

import numpy as np
from difftools.solvers._common import import_optional
from torch import Tensor

from difftools.contract import check_sense
from difftools.errors import SolverError
from difftools.function_solver import FunctionSolver

__all__ = ["ILP"]

# Constraint data that may be fixed at construction or passed per call (shared or PerInstance).
_DATA_KEYS = ("A", "b", "A_eq", "b_eq", "lower", "upper", "integer")
# OR-Tools' model-builder names for its back-ends; "gurobi" goes through gurobipy instead.
_BACKENDS = {"scip": "scip", "cp-sat": "sat", "gurobi": None}
# CP-SAT works in int64: θ is scaled so that the largest possible |objective| is about 2**40,
# far from overflow in CP-SAT's internal sums yet with ~12 decimal digits of resolution.
_CP_SAT_OBJECTIVE_BITS = 40


class _Problem(NamedTuple):
    """One instance's constraints in OR-Tools' row form ``row_lower ≤ matrix z ≤ row_upper``."""

    matrix: Any  # scipy.sparse.csr_matrix [rows, n]
    row_lower: np.ndarray
    row_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray


# The validation helpers below start their messages with ``prefix`` ("ILP: " at construction,
# "" inside the oracle, whose errors the adapter prefixes with the solver name and instance).


def _numpy(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return value


def _matrix(value: Any, name: str, n: int | None, prefix: str) -> Any:
    sparse = import_optional("scipy.sparse", "ilp", "ILP")
    if sparse.issparse(value):
        m = sparse.csr_matrix(value, dtype=np.float64)
    else:
        arr = np.asarray(_numpy(value), dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"{prefix}{name} must be a 2-D [constraints, n] matrix, got shape {arr.shape}")
        m = sparse.csr_matrix(arr)
    if n is not None and m.shape[1] != n:
        raise ValueError(f"{prefix}{name} has shape {m.shape}, expected {n} columns (one per variable of θ)")
    if not np.isfinite(m.data).all():
        raise ValueError(f"{prefix}{name} contains NaN or Inf")
    return m


def _vector(value: Any, name: str, length: int, prefix: str, *, default: float | None = None) -> np.ndarray:
    """A length-``length`` float vector from a scalar or array; None becomes ``default``."""
    if value is None:
        value = default
    arr = np.asarray(_numpy(value), dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    if arr.shape != (length,):
        raise ValueError(f"{prefix}{name} must be a scalar or have shape ({length},), got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{prefix}{name} contains NaN")
    return arr


def _infer_size(data: dict, prefix: str) -> int | None:
    """The number of variables n implied by the constraint data, if any of it fixes n."""
    for key in ("A", "A_eq"):
        if data.get(key) is not None:
            return _matrix(data[key], key, None, prefix).shape[1]
    for key in ("lower", "upper", "integer"):
        if data.get(key) is not None and np.ndim(_numpy(data[key])) == 1:
            return len(data[key])
    return None


def _check_pairs(data: dict, prefix: str) -> None:
    for a, b in (("A", "b"), ("A_eq", "b_eq")):
        if (data.get(a) is None) != (data.get(b) is None):
            given, missing = (a, b) if data.get(a) is not None else (b, a)
            raise ValueError(f"{prefix}{given} is given but {missing} is not; they go together")


def _standardise(n: int, data: dict, prefix: str, *, complete: bool = True) -> _Problem | None:
    """Validate constraint data for n variables; with ``complete`` return the instance's rows."""
    if complete:
        _check_pairs(data, prefix)
    sparse = import_optional("scipy.sparse", "ilp", "ILP")
    rows, row_lower, row_upper = [], [], []
    for a, b, equality in (("A", "b", False), ("A_eq", "b_eq", True)):
        m = None if data.get(a) is None else _matrix(data[a], a, n, prefix)
        if data.get(b) is not None:
            length = m.shape[0] if m is not None else np.size(_numpy(data[b]))
            rhs = _vector(data[b], b, length, prefix)
            if equality and not np.isfinite(rhs).all():
                raise ValueError(f"{prefix}{b} must be finite")
            if not equality and (rhs == -np.inf).any():
                raise ValueError(f"{prefix}{b} contains -inf, which makes the problem infeasible")
            if m is not None:
                rows.append(m)
                row_upper.append(rhs)
                row_lower.append(rhs if equality else np.full(length, -np.inf))
    lower = _vector(data.get("lower"), "lower", n, prefix, default=-np.inf)
    upper = _vector(data.get("upper"), "upper", n, prefix, default=np.inf)
    if (lower > upper).any():
        raise ValueError(f"{prefix}lower > upper for variable(s) {np.flatnonzero(lower > upper).tolist()}")
    integer = np.asarray(_numpy(data.get("integer", True)))
    if integer.dtype != np.bool_ or integer.ndim > 1:
        raise ValueError(f"{prefix}integer must be a bool or a bool array of shape ({n},), got {integer!r}")
    integer = np.broadcast_to(integer, (n,)) if integer.ndim == 0 else integer
    if integer.shape != (n,):
        raise ValueError(f"{prefix}integer must have shape ({n},), got {integer.shape}")
    if not complete:
        return None
    matrix = sparse.vstack(rows, format="csr") if rows else sparse.csr_matrix((0, n))
    return _Problem(
        matrix=matrix,
        row_lower=np.concatenate(row_lower) if rows else np.zeros(0),
        row_upper=np.concatenate(row_upper) if rows else np.zeros(0),
        lower=lower,
        upper=upper,
        integer=integer,
    )


def _integral(x: np.ndarray) -> bool:
    finite = x[np.isfinite(x)]
    return bool(np.array_equal(finite, np.round(finite)))


def _cp_sat_objective(theta: np.ndarray, problem: _Problem) -> tuple[np.ndarray, float]:
    """θ scaled by a power of two and rounded (CP-SAT needs integers); returns (coefficients, scale)."""
    if not problem.integer.all():
        raise ValueError("backend='cp-sat' needs integer=True for all variables; use backend='scip'")
    if not (np.isfinite(problem.lower).all() and np.isfinite(problem.upper).all()):
        raise ValueError("backend='cp-sat' needs finite lower and upper bounds; use backend='scip'")
    if not (_integral(problem.matrix.data) and _integral(problem.row_lower) and _integral(problem.row_upper)):
        raise ValueError("backend='cp-sat' needs integer-valued A, b, A_eq, b_eq; use backend='scip'")
    magnitude = float(np.abs(theta) @ np.maximum(np.abs(problem.lower), np.abs(problem.upper)))
    if magnitude == 0.0:
        return np.zeros_like(theta), 1.0
    scale = 2.0 ** math.floor(_CP_SAT_OBJECTIVE_BITS - math.log2(magnitude))
    return np.round(theta * scale), scale


def _parameter_value(text: str) -> int | float | str:
    """A Gurobi parameter value from text: gurobipy wants ints and floats as numbers."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class _ILPOracle:
    """One instance: θ ``[n]`` → an optimal z of the ILP (picklable: arrays and options only)."""

    def __init__(
        self,
        data: dict,
        *,
        maximize: bool,
        backend: str,
        time_limit: float | None,
        threads: int,
        on_time_limit: str,
        parameters: str | None,
    ):
        self.data = data
        self.maximize = maximize
        self.backend = backend
        self.time_limit = time_limit
        self.threads = threads
        self.on_time_limit = on_time_limit
        self.parameters = parameters

    def solver_parameters(self) -> str:
        """The solver-specific parameter string: exact optimality first, then the user's settings."""
        if self.backend == "cp-sat":
            ours = f"num_workers:{self.threads} relative_gap_limit:0"
            return ours + (" " + self.parameters if self.parameters else "")
        # OR-Tools' generic default relative gap is 1e-4; a MAP oracle must return an optimum.
        return "limits/gap = 0\nlimits/absgap = 0" + ("\n" + self.parameters if self.parameters else "")

    def __call__(self, theta: np.ndarray, **context: Any) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        problem = _standardise(theta.shape[0], {**self.data, **context}, "")
        if self.backend == "gurobi":
            return self._solve_gurobi(theta, problem)
        mbh = import_optional("ortools.linear_solver.python.model_builder_helper", "ilp", "ilp")
        if self.backend == "cp-sat":
            objective, scale = _cp_sat_objective(theta, problem)
        else:
            objective, scale = theta, 1.0
        model = mbh.ModelBuilderHelper()
        model.fill_model_from_sparse_data(
            problem.lower, problem.upper, objective, problem.row_lower, problem.row_upper, problem.matrix
        )
        for i in np.flatnonzero(problem.integer):
            model.set_var_integrality(int(i), True)
        model.set_maximize(self.maximize)
        solver = mbh.ModelSolverHelper(_BACKENDS[self.backend])
        if self.time_limit is not None:
            solver.set_time_limit_in_seconds(self.time_limit)
        solver.set_solver_specific_parameters(self.solver_parameters())
        solver.solve(model)
        return self._solution(solver, mbh.SolveStatus, theta, problem, scale)

    def _solution(self, solver: Any, status_type: Any, theta: np.ndarray, problem: _Problem, scale: float):
        status = solver.status()
        if status in (status_type.OPTIMAL, status_type.FEASIBLE):
            z = np.asarray(solver.variable_values(), dtype=np.float64)
            z[problem.integer] = np.round(z[problem.integer])
            z += 0.0  # turns the -0.0 that solvers report into 0.0
            if status == status_type.OPTIMAL:
                return z
            return self._incumbent(z, theta, solver.best_objective_bound() / scale)
        if status == status_type.INFEASIBLE:
            raise SolverError("the ILP is infeasible: no z satisfies A z <= b, A_eq z = b_eq and the bounds")
        if status == status_type.UNBOUNDED:
            raise SolverError("the ILP is unbounded; bound the variables with lower/upper or add constraints")
        if status in (status_type.NOT_SOLVED, status_type.CANCELLED_BY_USER) and self.time_limit is not None:
            raise SolverError(f"time limit of {self.time_limit:g} s reached before any feasible solution was found")
        detail = solver.status_string()
        raise SolverError(f"OR-Tools ({self.backend}) returned status {status.name}" + (f": {detail}" * bool(detail)))

    # ----------------------------------------------------------------------------- Gurobi
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_gurobi_env", None)  # a licence handle: each process starts its own
        return state

    def _gurobi_environment(self, gp: Any) -> Any:
        env = getattr(self, "_gurobi_env", None)
        if env is None:
            env = gp.Env(empty=True)
            env.setParam("OutputFlag", 0)  # before start(): no licence banner on every process
            env.start()
            self._gurobi_env = env
        return env

    def _gurobi_model(self, gp: Any, theta: np.ndarray, problem: _Problem, *, dual_reductions: bool) -> Any:
        model = gp.Model(env=self._gurobi_environment(gp))
        vtype = np.where(problem.integer, gp.GRB.INTEGER, gp.GRB.CONTINUOUS)
        z = model.addMVar(theta.shape[0], lb=problem.lower, ub=problem.upper, vtype=vtype)
        matrix = problem.matrix
        equal = problem.row_lower == problem.row_upper
        for rows, sense, rhs in (
            (equal, "=", problem.row_upper),
            (~equal & np.isfinite(problem.row_upper), "<", problem.row_upper),
            (~equal & np.isfinite(problem.row_lower), ">", problem.row_lower),
        ):
            if rows.any():
                model.addMConstr(matrix[np.flatnonzero(rows)], z, sense, rhs[rows])
        model.setObjective(theta @ z, gp.GRB.MAXIMIZE if self.maximize else gp.GRB.MINIMIZE)
        # Gurobi's default relative gap is 1e-4; a MAP oracle must return an optimum.
        model.Params.MIPGap, model.Params.MIPGapAbs, model.Params.Threads = 0.0, 0.0, self.threads
        if not dual_reductions:
            model.Params.DualReductions = 0  # tells infeasible from unbounded
        if self.time_limit is not None:
            model.Params.TimeLimit = self.time_limit
        for line in (self.parameters or "").splitlines():
            if line.strip():
                name, _, value = line.replace("=", " ", 1).strip().partition(" ")
                model.setParam(name.strip(), _parameter_value(value.strip()))
        return model, z

    def _solve_gurobi(self, theta: np.ndarray, problem: _Problem) -> np.ndarray:
        gp = import_optional("gurobipy", "gurobi", "ILP(backend='gurobi')")
        status = gp.GRB.Status
        model, z = self._gurobi_model(gp, theta, problem, dual_reductions=True)
        model.optimize()
        if model.Status == status.INF_OR_UNBD:
            model, z = self._gurobi_model(gp, theta, problem, dual_reductions=False)
            model.optimize()
        if model.Status == status.INFEASIBLE:
            raise SolverError("the ILP is infeasible: no z satisfies A z <= b, A_eq z = b_eq and the bounds")
        if model.Status == status.UNBOUNDED:
            raise SolverError("the ILP is unbounded; bound the variables with lower/upper or add constraints")
        if model.SolCount == 0:
            if model.Status == status.TIME_LIMIT:
                raise SolverError(f"time limit of {self.time_limit:g} s reached before any feasible solution was found")
            raise SolverError(f"Gurobi returned status {model.Status} without a solution")
        solution = np.asarray(z.X, dtype=np.float64)
        solution[problem.integer] = np.round(solution[problem.integer])
        solution += 0.0  # turns the -0.0 that solvers report into 0.0
        if model.Status == status.OPTIMAL:
            return solution
        return self._incumbent(solution, theta, model.ObjBound if model.IsMIP else float("nan"))

    def _incumbent(self, z: np.ndarray, theta: np.ndarray, bound: float) -> np.ndarray:
        """A feasible z found before a limit stopped the solver: returned with a warning, or an error."""
        gap = f"best objective {float(theta @ z):.6g}, bound {bound:.6g}"
        if self.on_time_limit == "incumbent":
            warnings.warn(
                f"ilp: stopped by a limit before optimality was proved ({gap}); returning the incumbent",
                RuntimeWarning,
                stacklevel=3,
            )
            return z
        raise SolverError(
            f"stopped by a limit (time_limit={self.time_limit}) before optimality was proved ({gap}); "
            "raise time_limit or pass on_time_limit='incumbent' to accept the best solution found"
        )


class ILP(FunctionSolver):
    """Generic integer linear program as a MAP oracle (OR-Tools SCIP or CP-SAT, or Gurobi).

    ``z = argmax θᵀz  s.t.  A z ≤ b,  A_eq z = b_eq,  lower ≤ z ≤ upper,  z_i ∈ ℤ where integer[i]``
    (argmin with ``sense="min"``); θ ``[*, n]``, ``event_dim=1``. The defaults (``lower=0``,
    ``upper=1``, ``integer=True``) give 0/1 variables. Every constraint argument can be fixed here
    or passed per call as context, shared (``b=b``) or per instance (``b=PerInstance(bs)``,
    leading dims = θ's batch); context overrides the values fixed here, and ``None`` means
    absent (no constraint, or an infinite bound).

    Outcomes other than an optimum raise :class:`difftools.SolverError` naming the instance:
    infeasible, unbounded, or a time limit reached. With ``on_time_limit="incumbent"`` a time-out
    that found a feasible solution returns it with a ``RuntimeWarning`` instead (in a process
    pool the warning is printed by the worker).

    Back-ends:

    * ``"scip"`` (default): SCIP in floating point, with the relative and absolute optimality gaps
      set to 0 (OR-Tools' generic default would stop within 1e-4). Real-valued data and continuous
      variables are fine; ties closer than SCIP's tolerances (about 1e-9) may go either way.
      Single-threaded: parallelise over instances with ``executor=``.
    * ``"cp-sat"``: CP-SAT, for pure integer programs with integer-valued ``A, b, A_eq, b_eq``
      and finite bounds (checked). CP-SAT optimises over int64, so the float objective is scaled:
      θ is multiplied by a power of two s chosen so that ``M = Σ|θ_i|·max(|lower_i|, |upper_i|)``
      becomes about 2^40, and rounded. The z returned is optimal for the rounded objective, so its
      true objective is within ``Σ_i max(|lower_i|, |upper_i|) / s ≈ n·M·2^-40`` of the optimum
      (relative precision ~1e-12 per variable, far below OR-Tools' own MIP-to-CP-SAT conversion,
      which resolves objective differences only to about 1e-6). ``threads`` sets CP-SAT's workers.
    * ``"gurobi"``: Gurobi through gurobipy (``pip install difftools[gurobi]``), floating point
      like SCIP, with ``MIPGap`` and ``MIPGapAbs`` set to 0. gurobipy's pip package runs models
      up to Gurobi's size limit (2000 variables and 2000 constraints) without a licence file;
      larger models need a licence (the failure is a SolverError carrying Gurobi's message).
      ``threads`` sets Gurobi's ``Threads``; ``parameters`` takes ``"Name=value"`` lines.

    Args:
        A: inequality matrix ``[m, n]`` of ``A z ≤ b`` (dense or scipy.sparse).
        b: inequality right-hand side ``[m]``.
        A_eq: equality matrix ``[k, n]`` of ``A_eq z = b_eq``.
        b_eq: equality right-hand side ``[k]``.
        lower: lower bounds, a scalar or ``[n]``; None for unbounded.
        upper: upper bounds, a scalar or ``[n]``; None for unbounded.
        integer: True (all integer), False (an LP) or a bool mask ``[n]``.
        sense: required: ``"max"`` (maximise θᵀz, θ are values) or ``"min"`` (minimise, θ are costs).
        backend: ``"scip"``, ``"cp-sat"`` or ``"gurobi"``.
        time_limit: seconds per instance (None: no limit).
        threads: solver threads per instance (CP-SAT and Gurobi; SCIP runs one).
        on_time_limit: ``"raise"`` or ``"incumbent"`` (see above).
        parameters: extra solver-specific parameters, appended to ours: SCIP's ``"name = value"``
            lines, CP-SAT's SatParameters text format (``"max_deterministic_time:1"``) or Gurobi's
            ``"Name=value"`` lines (``"SolutionLimit=1"``).
        executor: a ``concurrent.futures.Executor`` that solves instances in parallel.
        chunksize: instances per executor task (see :func:`difftools.solver`).
    """

    context_keys = _DATA_KEYS
    theta_meaning = "[*, n] objective coefficients"
    check_finite_theta = True
    floating_theta = True

    def __init__(
        self,
        A: Any = None,
        b: Any = None,
        A_eq: Any = None,
        b_eq: Any = None,
        lower: Any = 0.0,
        upper: Any = 1.0,
        integer: Any = True,
        *,
        sense: Literal["max", "min"] | None = None,
        backend: Literal["scip", "cp-sat", "gurobi"] = "scip",
        time_limit: float | None = None,
        threads: int = 1,
        on_time_limit: Literal["raise", "incumbent"] = "raise",
        parameters: str | None = None,
        executor: concurrent.futures.Executor | None = None,
        chunksize: int | None = None,
    ):
        sense = check_sense(sense, "ILP")
        if backend not in _BACKENDS:
            raise ValueError(f"ILP: backend must be one of {sorted(_BACKENDS)}, got {backend!r}")
        if time_limit is not None and not (
            isinstance(time_limit, (int, float)) and math.isfinite(time_limit) and time_limit > 0
        ):
            raise ValueError(f"ILP: time_limit must be None or a number of seconds > 0, got {time_limit!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"ILP: threads must be a positive int, got {threads!r}")
        if threads > 1 and backend == "scip":
            raise ValueError(
                "ILP: threads > 1 needs backend='cp-sat' or 'gurobi' (SCIP in OR-Tools runs on one thread)"
            )
        if on_time_limit not in ("raise", "incumbent"):
            raise ValueError(f"ILP: on_time_limit must be 'raise' or 'incumbent', got {on_time_limit!r}")
        if parameters is not None and not isinstance(parameters, str):
            raise TypeError(f"ILP: parameters must be a string or None, got {type(parameters).__name__}")
        if backend == "gurobi":
            import_optional("gurobipy", "gurobi", "ILP(backend='gurobi')")
        else:
            import_optional("ortools.linear_solver.python.model_builder_helper", "ilp", "ILP")
        data = {
            key: _numpy(value)
            for key, value in zip(_DATA_KEYS, (A, b, A_eq, b_eq, lower, upper, integer))
        }
        self.num_variables = _infer_size(data, "ILP: ")
        if self.num_variables is not None:
            _standardise(self.num_variables, data, "ILP: ", complete=False)
        super().__init__(
            _ILPOracle(
                data,
                maximize=sense == "max",
                backend=backend,
                time_limit=None if time_limit is None else float(time_limit),
                threads=threads,
                on_time_limit=on_time_limit,
                parameters=parameters,
            ),
            sense=sense,
            event_dim=1,
            executor=executor,
            chunksize=chunksize,
            name="ilp",
            # Continuous variables (integer=False or a mask) take real values at an LP vertex.
            discrete="integer" if bool(np.all(np.asarray(_numpy(integer)))) else None,
        )

        self.event_shape = (self.num_variables,)

    def check_theta(self, theta: Any) -> None:
        n = self.num_variables
        if isinstance(theta, Tensor) and theta.dim() >= 1 and n is not None and theta.shape[-1] != n:
            # Name the user's data that fixed n; θ's full shape here may include internal sample dims.
            raise ValueError(
                f"{self.name}: θ has {theta.shape[-1]} entries per instance (its last dim), but the constraints "
                f"given to ILP have n={n} variables ({self._size_source()}); θ must be [..., {n}], or fix the "
                "constraint data"
            )
        super().check_theta(theta)

    def solve_batch(self, theta: Tensor, /, **context: Any) -> Tensor:
        _check_pairs({**self.fn.data, **context}, f"{self.name}: ")
        return super().solve_batch(theta, **context)

    def _size_source(self) -> str:
        """Which constructor argument fixed the number of variables, e.g. ``A has shape (2, 6)``."""
        for key in ("A", "A_eq", "lower", "upper", "integer"):
            shape = getattr(self.fn.data.get(key), "shape", ())  # arrays and scipy.sparse matrices
            if len(shape) >= 1:
                return f"{key} has shape {tuple(shape)}"
        return "from the constraint data"

    def __repr__(self) -> str:
        oracle = self.fn
        rows = {k: np.shape(v)[0] for k, v in oracle.data.items() if k in ("A", "A_eq") and v is not None}
        parts = [f"n={self.num_variables}", f"sense={self.sense!r}", f"backend={oracle.backend!r}"]
        parts += [f"{k}_rows={m}" for k, m in rows.items()]
        if oracle.time_limit is not None:
            parts += [f"time_limit={oracle.time_limit:g}", f"on_time_limit={oracle.on_time_limit!r}"]
        if oracle.threads > 1:
            parts.append(f"threads={oracle.threads}")
        if self.executor is not None:
            parts.append(f"executor={type(self.executor).__name__}")
        return f"ILP({', '.join(parts)})"
