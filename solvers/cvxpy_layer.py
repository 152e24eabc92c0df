"""Deprecated module name (removed in the next release): ``CvxpySolver`` moved to ``difftools.solvers.cvxpy_solver``."""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # the import system's own probes (__path__, ...): not a moved name
        raise AttributeError(name)
    warnings.warn(
        f"{__name__} is deprecated and will be removed in the next release; import {name} from "
        "difftools.solvers.cvxpy_solver",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("difftools.solvers.cvxpy_solver"), name)
