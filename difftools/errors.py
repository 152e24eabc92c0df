"""Exceptions raised by difftools: solver failures (SolverError)."""

from __future__ import annotations

__all__ = ["SolverError"]


class SolverError(RuntimeError):
    """A MAP oracle failed, or returned something that is not a valid solution.

    The message names the solver and, where one is known, the index of the failing instance in
    the flattened batch; the original exception is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, solver: str | None = None, index: int | None = None):
        where = []
        if solver is not None:
            where.append(f"solver {solver!r}")
        if index is not None:
            where.append(f"instance {index}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
        self.message = message
        self.solver = solver
        self.index = index

    def __reduce__(self):
        # Keep solver and index when the error crosses a process boundary (process pools, dask).
        return _rebuild, (type(self), self.message, self.solver, self.index)


def _rebuild(cls: type, message: str, solver: str | None, index: int | None) -> SolverError:
    return cls(message, solver=solver, index=index)
