"""Checks of what a solver returns (shape, device, dtype, finiteness, its discrete set) and its name in messages."""

from __future__ import annotations

import math
import warnings
import weakref
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difftools.errors import SolverError

__all__ = ["all_finite", "check_solver_output", "solver_repr", "warn_if_not_discrete"]

_NON_NUMERIC = {getattr(torch, n) for n in ("quint8", "qint8", "qint32") if hasattr(torch, n)}


def check_solver_output(
    z: Any, theta: Tensor, name: str, index: int | None = None, *, check_finite: bool = True
) -> Tensor:
    """Validate a solver's output against θ and return it as a tensor in θ's dtype and device.

    ``check_finite=False`` skips the NaN/Inf check (one reduction and a host read): for solvers
    whose output is finite by construction (a one-hot written with ``scatter_``).
    """
    if isinstance(z, Tensor):  # the common case first: np.isscalar costs more than the rest of the checks
        on_host = z.device.type == "cpu"
        if z.device != theta.device:
            if not on_host or theta.device.type == "cpu":
                raise SolverError(
                    f"returned a tensor on {z.device}, expected θ's device {theta.device}",
                    solver=name,
                    index=index,
                )
    elif isinstance(z, np.ndarray) or np.isscalar(z) or isinstance(z, (list, tuple)):
        try:
            z = torch.as_tensor(np.asarray(z))
        except (TypeError, ValueError) as e:
            raise SolverError(f"returned a value that is not numeric ({e})", solver=name, index=index) from e
        on_host = True
    else:
        raise SolverError(
            f"returned {type(z).__name__}, expected a tensor or array shaped like θ", solver=name, index=index
        )
    if z.shape != theta.shape:
        raise SolverError(
            f"returned shape {tuple(z.shape)}, expected θ's shape {tuple(theta.shape)}",
            solver=name,
            index=index,
        )
    if z.dtype.is_complex or z.dtype in _NON_NUMERIC:
        raise SolverError(f"returned dtype {z.dtype}, expected a real dtype", solver=name, index=index)
    if check_finite and on_host and z.dtype.is_floating_point and not all_finite(z):
        raise SolverError("returned non-finite values (NaN or Inf)", solver=name, index=index)
    if z.dtype == theta.dtype and z.device == theta.device:
        return z  # what .to() would return, without its dispatch
    return z.to(device=theta.device, dtype=theta.dtype)


def all_finite(x: Tensor) -> bool:
    """Whether every entry is finite; one reduction in the common case (one host sync)."""
    # A finite sum implies finite entries (NaN and Inf propagate); only a non-finite sum, which
    # may also be an overflow, needs the element-wise check.
    return math.isfinite(x.sum().item()) or bool(torch.isfinite(x).all())


_OUTPUT_WARNED: weakref.WeakSet = weakref.WeakSet()
_OUTPUT_WARNED_IDS: set[int] = set()


def warn_if_not_discrete(solver: Any, z: Tensor, owner: str, *, first_sample: bool = False) -> None:
    """Warn once per solver when ``z`` has entries outside the solver's declared discrete set.

    The set is the solver's ``discrete`` attribute: ``"binary"`` (0/1), ``"integer"`` (the
    default) or None (real-valued solutions, e.g. LP vertices: no check). One comparison (a host
    synchronisation on CUDA), done only while the estimator checks finiteness, on the solutions of
    the first sample of each forward solver call (``map_in_max_form``'s ``check_discrete``, which
    passes all samples with ``first_sample=True``: ``z[0]`` is taken only when there is something
    to check). Solvers with ``check_output_values=False`` return 0/1 by construction: no check.
    """
    kind = getattr(solver, "discrete", "integer")
    if kind is None or not z.dtype.is_floating_point or z.numel() == 0:
        return
    if not getattr(solver, "check_output_values", True):
        return
    if first_sample:
        # A solver returning scores or probabilities does so in every sample, and checking all S
        # samples costs ~S× more.
        z = z[0]
    try:
        if solver in _OUTPUT_WARNED:
            return
    except TypeError:  # not weak-referenceable
        if id(solver) in _OUTPUT_WARNED_IDS:
            return
    # One comparison in the common (valid) case; the mask of bad entries only for the message.
    if torch.equal(z, z.clamp(0, 1).round() if kind == "binary" else z.round()):
        return
    bad = ((z != 0) & (z != 1)) if kind == "binary" else (z != z.round())
    try:
        _OUTPUT_WARNED.add(solver)
    except TypeError:
        _OUTPUT_WARNED_IDS.add(id(solver))
    example = z[bad][0].item()
    expected = "0 or 1" if kind == "binary" else "integers"
    warnings.warn(
        f"{owner}: solver {getattr(solver, 'name', None) or solver_repr(solver, 60)} returned {bad.sum().item()} of "
        f"{z.numel()} entries that are not {expected} (e.g. {example:.6g}); a MAP oracle returns a discrete "
        "solution, not scores or probabilities. If real values are intended (an LP's vertices), declare "
        "discrete=None on the solver. (Warned once per solver.)",
        RuntimeWarning,
        stacklevel=4,
    )


def solver_repr(solver: Any, width: int = 80) -> str:
    """A solver's ``repr`` cut to ``width`` characters; a module solver (a cached one) by its class name."""
    if isinstance(solver, torch.nn.Module):  # printed in full as a child module
        return type(solver).__name__
    r = repr(solver)
    return r if len(r) <= width else r[: width - 3] + "..."
