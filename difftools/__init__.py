"""difftools: differentiable combinatorial solvers via perturb-and-MAP (AIMLE and its family).

Public API: the solver protocol (:func:`solver`, :class:`BlackBoxSolver`, :class:`PerInstance`),
the registry, noise distributions, the estimators and the losses built on them, solution caching
(:func:`cached`) and the losses that need only a solution pool, the PyEPO bridge
(:func:`from_pyepo`), and :func:`dask_executor` (solvers on a cluster). Built-in solvers live in
the separate ``solvers`` package and are loaded lazily by name.
"""

from difftools.bridges import PyEPOSolver, from_pyepo
from difftools.caching import CachedSolver, SolutionPool, cached
from difftools.context import PerInstance
from difftools.contract import BlackBoxSolver, Solver, SolverWrapper
from difftools.distributed import DaskExecutor, dask_executor
from difftools.errors import SolverError
from difftools.estimators import AIMLE, IMLE, STE, Blackbox, Perturbed, ScoreFunction
from difftools.function_solver import FunctionSolver, solver
from difftools.losses import FenchelYoungLoss, SPOPlusLoss, hamming_loss, regret
from difftools.noise import Gumbel, Noise, Normal, SumOfGamma
from difftools.pool_losses import (
    ContrastiveMAPLoss,
    ListwiseRankingLoss,
    NCELoss,
    PairwiseRankingLoss,
    PointwiseRankingLoss,
)
from difftools.registry import get_solver, list_solvers, register_solver

__version__ = "0.1.0"

__all__ = [
    "AIMLE",
    "IMLE",
    "STE",
    "Blackbox",
    "FenchelYoungLoss",
    "Perturbed",
    "SPOPlusLoss",
    "ScoreFunction",
    "BlackBoxSolver",
    "CachedSolver",
    "ContrastiveMAPLoss",
    "ListwiseRankingLoss",
    "NCELoss",
    "PairwiseRankingLoss",
    "PointwiseRankingLoss",
    "PyEPOSolver",
    "SolutionPool",
    "Solver",
    "SolverWrapper",
    "cached",
    "from_pyepo",
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
    "hamming_loss",
    "list_solvers",
    "regret",
    "register_solver",
    "solver",
]
