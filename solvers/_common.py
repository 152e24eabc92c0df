"""Helpers shared by the CPU solver adapters: lazy optional imports (checks of θ live in difftools.Solver)."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_optional", "install_hint"]


def install_hint(extra: str) -> str:
    """How to install an extra, both from PyPI and from a clone of the repository."""
    return f'pip install "difftools[{extra}]" (or, in a clone of the repository, pip install -e ".[{extra}]")'


def import_optional(module: str, extra: str, who: str) -> ModuleType:
    """Import an optional back-end, or raise an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{who} needs {module.split('.')[0]}, which is not installed: {install_hint(extra)}") from e
