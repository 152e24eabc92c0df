"""Deprecated module: its contents moved to files named after what each holds (removed in the next release).

``difftools.contract`` (BlackBoxSolver, Solver, check_sense, is_solver), ``difftools.context``
(PerInstance), ``difftools.output_checks`` (check_solver_output) and ``difftools.function_solver``
(FunctionSolver, solver). Import from ``difftools`` itself where the name is public there.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # the import system's own probes (__path__, ...): not a moved name
        raise AttributeError(name)
    if name not in _MOVED:
        raise AttributeError(f"module 'difftools.protocol' has no attribute {name!r}")
    warnings.warn(
        f"difftools.protocol is deprecated and will be removed in the next release; import {name} from "
        f"{_MOVED[name]} (or from difftools)",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(_MOVED[name]), name)
