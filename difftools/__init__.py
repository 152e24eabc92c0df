"""difftools: differentiable combinatorial solvers via perturb-and-MAP (AIMLE and its family).

Public API: the solver protocol (:func:`solver`, :class:`BlackBoxSolver`, :class:`PerInstance`),
the registry, noise distributions, the estimators and :func:`dask_executor` (solvers on a
cluster). Built-in solvers live in the separate ``solvers`` package and are loaded lazily by name.
"""

from difftools.distributed import DaskExecutor, dask_executor
from difftools.errors import SolverError
from difftools.estimators import AIMLE, IMLE
from difftools.noise import Gumbel, Noise, Normal, SumOfGamma
from difftools.protocol import BlackBoxSolver, FunctionSolver, PerInstance, solver
from difftools.registry import get_solver, list_solvers, register_solver

__version__ = "0.1.0"

__all__ = [
    "AIMLE",
    "IMLE",
    "BlackBoxSolver",
    "DaskExecutor",
    "FunctionSolver",
    "Gumbel",
    "Noise",
    "Normal",
    "PerInstance",
    "SolverError",
    "SumOfGamma",
    "dask_executor",
    "get_solver",
    "list_solvers",
    "register_solver",
    "solver",
]
