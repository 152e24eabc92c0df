"""difftools: differentiable combinatorial solvers via perturb-and-MAP (AIMLE and its family).

Public API: the solver protocol (:func:`solver`, :class:`BlackBoxSolver`, :class:`PerInstance`),
the registry, noise distributions and the estimators. Built-in solvers live in the separate
``solvers`` package and are loaded lazily by name.
"""

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
    "FunctionSolver",
    "Gumbel",
    "Noise",
    "Normal",
    "PerInstance",
    "SolverError",
    "SumOfGamma",
    "get_solver",
    "list_solvers",
    "register_solver",
    "solver",
]
