"""Deprecated module: its contents moved to files named after what each holds (removed in the next release).

``difftools.contract`` (BlackBoxSolver, Solver, check_sense, is_solver), ``difftools.context``
(PerInstance), ``difftools.output_checks`` (check_solver_output) and ``difftools.function_solver``
(FunctionSolver, solver). Import from ``difftools`` itself where the name is public there.
"""

from __future__ import annotations

from difftools.deprecation import forward_moved_names

_MOVED = {
    "BlackBoxSolver": "difftools.contract",
    "Solver": "difftools.contract",
    "check_sense": "difftools.contract",
    "is_solver": "difftools.contract",
    "PerInstance": "difftools.context",
    "per_instance_hint": "difftools.context",
    "with_hint": "difftools.context",
    "check_solver_output": "difftools.output_checks",
    "warn_if_not_discrete": "difftools.output_checks",
    "FunctionSolver": "difftools.function_solver",
    "solver": "difftools.function_solver",
}


__getattr__ = forward_moved_names(__name__, _MOVED)
