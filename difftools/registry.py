"""The solver registry: register solvers by name, look them up, and discover installed ones.

Solvers installed with a distribution -- the built-ins of ``difftools.solvers`` and third-party
plug-ins alike -- declare themselves in the entry-point group ``difftools.solvers`` and are imported
only when first asked for, so ``import difftools`` imports no solver or optional back-end. This
module names no solver. :func:`register_solver` adds solvers at run time.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

from difftools.contract import is_solver

__all__ = ["register_solver", "get_solver", "list_solvers", "ENTRY_POINT_GROUP"]

ENTRY_POINT_GROUP = "difftools.solvers"

_registry: dict[str, Any] = {}


def register_solver(name: str, solver_or_factory: Any = None, *, overwrite: bool = False) -> Any:
    """Register a solver object, or a factory ``(**params) -> solver``, under ``name``.

    Usable as a call, ``register_solver("knapsack", knapsack)``, or as a decorator,
    ``@register_solver("knapsack")``. Re-registering a taken name raises unless ``overwrite=True``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_solver: name must be a non-empty string, got {name!r}")

    def add(obj: Any) -> Any:
        if not callable(obj) and not isinstance(obj, str):
            raise TypeError(f"register_solver({name!r}): expected a solver or a factory, got {obj!r}")
        if not overwrite and (name in _registry or name in _entry_points()):
            raise ValueError(
                f"register_solver: a solver named {name!r} is already registered; "
                "pass overwrite=True to replace it"
            )
        _registry[name] = obj
        return obj

    if solver_or_factory is None:
        return add
    return add(solver_or_factory)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    # The first distribution on sys.path wins a name, as imports do.
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_solver(name: str, **params: Any) -> Any:
    """The solver registered as ``name``; ``params`` are passed to its factory.

    Raises ``KeyError`` listing the known names when ``name`` is unknown.
    """
    if name in _registry:
        entry = _registry[name]
    else:
        eps = _entry_points()
        if name not in eps:
            raise KeyError(f"unknown solver {name!r}; known solvers: {', '.join(list_solvers())}")
        entry = eps[name].load()
    if isinstance(entry, str):
        entry = _load(entry)
    if is_solver(entry):
        if params:
            raise TypeError(
                f"get_solver({name!r}): this solver takes no parameters, got {sorted(params)}; "
                "register a factory to accept parameters"
            )
        return entry
    if not callable(entry):
        raise TypeError(f"get_solver({name!r}): registered object {entry!r} is neither a solver nor a factory")
    made = entry(**params)
    if not is_solver(made):
        raise TypeError(
            f"get_solver({name!r}): the factory returned {made!r}, which is not a solver "
            "(needs sense 'max'/'min', an int event_dim and __call__)"
        )
    return made


def list_solvers() -> list[str]:
    """All names :func:`get_solver` accepts: installed ones (built-ins and plug-ins) and registered ones."""
    return sorted(set(_registry) | set(_entry_points()))


def resolve_solver(solver: Any, owner: str) -> Any:
    """A solver object from a solver or a registered name (used by the estimators)."""
    if isinstance(solver, str):
        return get_solver(solver)
    if not is_solver(solver):
        raise TypeError(
            f"{owner}: expected a solver (a callable with sense 'max'/'min' and an int event_dim, "
            f"e.g. made with difftools.solver) or a registered name, got {solver!r}"
        )
    return solver


