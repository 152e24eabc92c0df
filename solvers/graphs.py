"""Deprecated module name (removed in the next release): ShortestPath moved to difftools.solvers.shortest_path."""

from __future__ import annotations

import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # the import system's own probes (__path__, ...): not a moved name
        raise AttributeError(name)
    warnings.warn(
        f"{__name__} is deprecated and will be removed in the next release; import {name} from "
        "difftools.solvers.shortest_path",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module("difftools.solvers.shortest_path"), name)
