"""Per-instance context: the :class:`PerInstance` marker, its layout over samples, and hints.

Context keywords (constraint data, graphs, capacities) reach a solver on every call. A value that
differs per instance of the batch is wrapped in :class:`PerInstance`; the estimator core lays it
out over its sample dimension (:meth:`PerInstance.expand_samples`) and a
:class:`~difftools.Solver` splits it per instance (:meth:`PerInstance.flatten`). How a solver
receives it is the contract's rule, :func:`difftools.contract.for_solver`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difftools.errors import SolverError

__all__ = ["PerInstance", "per_instance_hint", "with_hint"]


class PerInstance:
    """Marks a context value that differs per instance of the batch.

    ``value`` is a tensor or array whose leading dimensions equal θ's batch shape, or a sequence
    with one entry per instance (for a single batch dimension). Shared context (a graph, a
    constraint matrix) is passed bare. The estimators expand per-instance context over their
    samples, so sample ``s`` of instance ``b`` sees ``value[b]``::

        layer(theta, capacity=PerInstance(capacities))   # capacities: [batch]
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        if isinstance(value, PerInstance):
            value = value.value
        if not isinstance(value, (Tensor, np.ndarray, Sequence)) or isinstance(value, (str, bytes)):
            raise TypeError(
                "PerInstance: value must be a tensor, an array or a sequence with one entry per "
                f"instance, got {type(value).__name__}"
            )
        self.value = value

    def expand_samples(self, samples: int) -> PerInstance:
        """The same context laid out for ``[samples, *batch]`` (sample dimension first)."""
        v = self.value
        if isinstance(v, Tensor):
            return PerInstance(v.unsqueeze(0).expand(samples, *v.shape))
        if isinstance(v, np.ndarray):
            return PerInstance(np.broadcast_to(v, (samples, *v.shape)))
        return PerInstance(_Repeated(v, samples))

    def check_batch(self, batch_shape: torch.Size, name: str, owner: str) -> None:
        """Raise ValueError unless the value has one entry per instance of θ's ``batch_shape``."""
        v = self.value
        if isinstance(v, (Tensor, np.ndarray)):
            if tuple(v.shape[: len(batch_shape)]) != tuple(batch_shape):
                raise ValueError(
                    f"{owner}: per-instance context {name!r} has shape {tuple(v.shape)}, expected it "
                    f"to start with θ's batch shape {tuple(batch_shape)}"
                )
        elif len(batch_shape) != 1 or len(v) != batch_shape[0]:
            raise ValueError(
                f"{owner}: per-instance context {name!r} has {len(v)} entries, expected one per instance "
                f"of θ's batch {tuple(batch_shape)} (a sequence needs exactly one batch dim; use a tensor "
                "or array for more)"
            )

    def flatten(self, batch_shape: torch.Size, name: str, owner: str) -> Any:
        """The value with its batch dimensions flattened to one, checked against θ's batch."""
        if isinstance(self.value, _Repeated) and len(batch_shape) == 2:
            batch_shape = torch.Size([batch_shape[0] * batch_shape[1]])  # samples × one batch dim
        self.check_batch(batch_shape, name, owner)
        v = self.value
        if isinstance(v, (Tensor, np.ndarray)):
            return v.reshape(math.prod(batch_shape), *v.shape[len(batch_shape) :])
        return v

    def __repr__(self) -> str:
        v = self.value
        desc = f"shape={tuple(v.shape)}" if hasattr(v, "shape") else f"len={len(v)}"
        return f"PerInstance({type(v).__name__}, {desc})"


class _Repeated(Sequence):
    """A sequence repeated ``times`` times without copying (sample-major layout)."""

    def __init__(self, base: Sequence, times: int):
        if isinstance(base, _Repeated):
            base, times = base.base, times * base.times
        self.base, self.times = base, times

    def __len__(self) -> int:
        return len(self.base) * self.times

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self.base[i % len(self.base)]



def per_instance_hint(context: dict, batch_shape: tuple[int, ...]) -> str:
    """A hint naming bare context values that look per-instance (leading dims = θ's batch dims)."""
    batch_shape = tuple(batch_shape)
    if not batch_shape or math.prod(batch_shape) < 2:
        return ""
    names = []
    for key, value in context.items():
        if isinstance(value, (Tensor, np.ndarray)):
            if tuple(value.shape[: len(batch_shape)]) == batch_shape:
                names.append(key)
        elif isinstance(value, (list, tuple)) and len(batch_shape) == 1 and len(value) == batch_shape[0]:
            names.append(key)
    if not names:
        return ""
    listed = ", ".join(repr(n) for n in names)
    return (
        f" (context {listed} is passed bare, so every instance receives all of it, but its leading dims "
        f"equal θ's batch shape {batch_shape}: if it holds one value per instance, wrap it as "
        f"{names[0]}=difftools.PerInstance(...))"
    )


def with_hint(error: SolverError, hint: str) -> SolverError:
    """``error`` with ``hint`` appended to its message (once), keeping solver, index and cause."""
    if not hint or "PerInstance(" in error.message:
        return error
    new = SolverError(error.message + hint, solver=error.solver, index=error.index)
    new.__cause__ = error.__cause__
    return new
