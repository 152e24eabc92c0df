"""Solution caching (Mulamba et al., IJCAI 2021): a pool of solutions answers most solver calls.

:class:`SolutionPool` holds distinct solutions seen so far (shared by the whole data set, or
tagged with the instance they were found for); :func:`cached` wraps any solver in a
:class:`CachedSolver` that, with probability ``1 − solve_ratio`` per call, returns the pool member
that is best for the current θ (one batched matmul) instead of running the solver, and otherwise
runs the solver and adds its answers to the pool. Both are ``nn.Module`` objects, so the pool is saved
by ``state_dict`` and moved by ``.to()``, also when the cached solver sits inside an estimator.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from difftools.context import PerInstance
from difftools.contract import Solver, for_solver
from difftools.output_checks import solver_repr
from difftools.registry import resolve_solver

__all__ = ["CachedSolver", "SolutionPool", "cached"]

# Context key that names, per instance, which per-instance pool it belongs to (consumed here).
POOL_INDEX = "pool_index"


class SolutionPool(nn.Module):
    """A growing set of distinct solutions, each flattened to a row of ``solutions [P, D]``.

    With ``per_instance=False`` every row is a candidate for every instance (one pool per data
    set; right when the feasible set is the same for all instances). With ``per_instance=True``
    each row carries the index of the instance it was found for (``owners [P]``), and a lookup for
    instance i only considers rows owned by i (needed when constraints differ per instance).
    Rows are kept in insertion order; adding a row already present (for the same owner) is a no-op.

    ``solutions`` and ``owners`` are buffers: ``state_dict`` saves them and ``load_state_dict``
    restores a pool of any size.
    """

    def __init__(self, solutions: Tensor | None = None, *, per_instance: bool = False, owners: Tensor | None = None):
        super().__init__()
        if not isinstance(per_instance, bool):
            raise TypeError(f"SolutionPool: per_instance must be a bool, got {per_instance!r}")
        self.per_instance = per_instance
        self.register_buffer("solutions", torch.empty(0, 0))
        self.register_buffer("owners", torch.empty(0, dtype=torch.long))
        if solutions is not None:
            self.add(solutions, owners=owners)
        elif owners is not None:
            raise ValueError("SolutionPool: owners given without solutions")

    def __len__(self) -> int:
        return self.solutions.shape[0]

    @property
    def size(self) -> int:
        """Number of distinct (solution, owner) rows."""
        return len(self)

    def add(self, solutions: Tensor, owners: Tensor | None = None) -> int:
        """Add solutions ``[N, *event]`` (flattened to rows of D entries); returns how many were new.

        ``owners [N]`` (integer instance indices) is required for a per-instance pool and refused
        for a shared one.
        """
        if not isinstance(solutions, Tensor):
            raise TypeError(f"SolutionPool.add: solutions must be a torch.Tensor, got {type(solutions).__name__}")
        if solutions.dim() < 1:
            raise ValueError("SolutionPool.add: solutions must have a leading dimension (one row per solution)")
        rows = solutions.detach().reshape(solutions.shape[0], -1)
        if self.per_instance:
            if owners is None:
                raise ValueError("SolutionPool.add: a per-instance pool needs owners (one instance index per row)")
            owners = torch.as_tensor(owners, device=rows.device).reshape(-1)
            if owners.shape[0] != rows.shape[0] or owners.dtype.is_floating_point or owners.dtype == torch.bool:
                raise ValueError(
                    f"SolutionPool.add: owners must be {rows.shape[0]} integer instance indices, "
                    f"got shape {tuple(owners.shape)} and dtype {owners.dtype}"
                )
            owners = owners.long()
        elif owners is not None:
            raise ValueError("SolutionPool.add: owners are only meaningful for SolutionPool(per_instance=True)")
        else:
            owners = torch.zeros(rows.shape[0], dtype=torch.long, device=rows.device)
        if len(self) and rows.shape[1] != self.solutions.shape[1]:
            raise ValueError(
                f"SolutionPool.add: solutions have {rows.shape[1]} entries each, the pool holds rows of "
                f"{self.solutions.shape[1]}"
            )
        if rows.shape[0] == 0:
            return 0
        if not len(self):
            self.solutions = torch.empty(0, rows.shape[1], dtype=rows.dtype, device=rows.device)
            self.owners = torch.empty(0, dtype=torch.long, device=rows.device)
        before = len(self)
        rows = rows.to(device=self.solutions.device, dtype=self.solutions.dtype)
        owners = owners.to(self.solutions.device)
        all_rows, all_owners = torch.cat([self.solutions, rows]), torch.cat([self.owners, owners])
        # float64 holds every owner index and solution entry exactly, so equal keys mean equal rows.
        keyed = torch.cat([all_owners.unsqueeze(1).double(), all_rows.double()], 1)
        # Distinct rows in order of first appearance: the pool's own rows come first and are kept.
        _, inverse = torch.unique(keyed, dim=0, return_inverse=True)
        position = torch.arange(keyed.shape[0], device=keyed.device)
        first = torch.full((int(inverse.max()) + 1,), keyed.shape[0], dtype=torch.long, device=keyed.device)
        first = first.scatter_reduce(0, inverse, position, reduce="amin").sort().values
        self.solutions = all_rows[first].contiguous()
        self.owners = all_owners[first].contiguous()
        return len(self) - before

    def scores(self, theta: Tensor, index: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Objective values ``⟨θ_b, w_p⟩`` for θ ``[N, D]`` as ``[N, P]``, and the candidate mask.

        The mask ``[N, P]`` (None for a shared pool) is True where row p belongs to instance b's
        pool (``owners[p] == index[b]``).
        """
        if not len(self):
            raise ValueError("SolutionPool: the pool is empty; add solutions or let a cached solver solve first")
        if theta.shape[-1] != self.solutions.shape[1]:
            raise ValueError(
                f"SolutionPool: θ has {theta.shape[-1]} entries per instance, the pool holds solutions of "
                f"{self.solutions.shape[1]}"
            )
        values = theta @ self.solutions.to(device=theta.device, dtype=theta.dtype).T
        if not self.per_instance:
            return values, None
        if index is None:
            raise ValueError(f"SolutionPool: a per-instance pool needs the {POOL_INDEX!r} of every instance")
        mask = index.to(self.owners.device).reshape(-1, 1) == self.owners.unsqueeze(0)
        return values, mask.to(theta.device)

    def best(self, theta: Tensor, sense: str, index: Tensor | None = None) -> Tensor:
        """The best pool member for each θ ``[N, D]`` (argmax for ``"max"``, argmin for ``"min"``) as ``[N, D]``."""
        values, mask = self.scores(theta, index)
        if sense == "min":
            values = -values
        if mask is not None:
            values = values.masked_fill(~mask, -math.inf)
        return self.solutions.to(device=theta.device, dtype=theta.dtype)[values.argmax(1)]

    def covers(self, index: Tensor | None) -> bool:
        """Whether every instance has at least one candidate (always, for a non-empty shared pool)."""
        if not len(self):
            return False
        if not self.per_instance:
            return True
        if index is None:
            raise ValueError(f"SolutionPool: a per-instance pool needs the {POOL_INDEX!r} of every instance")
        return bool(torch.isin(index.to(self.owners.device).reshape(-1), self.owners).all())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The pool's size is data: take the saved buffers' shapes instead of refusing a mismatch.
        for name in ("solutions", "owners"):
            key = prefix + name
            if key in state_dict:
                saved = state_dict[key]
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        width = self.solutions.shape[1] if len(self) else None
        return f"size={len(self)}, entries={width}, per_instance={self.per_instance}"


class CachedSolver(nn.Module, Solver):
    """A solver whose calls are answered from a :class:`SolutionPool` with probability ``1 − solve_ratio``.

    Satisfies the solver protocol (same ``sense`` and ``event_dim`` as the wrapped solver), so it
    goes wherever a solver goes: ``AIMLE(cached(solver))``, ``SPOPlusLoss(cached(solver))``, the
    pool losses. Each call draws once (from ``generator``): with probability ``solve_ratio`` the
    real solver solves the whole batch and its answers join the pool; otherwise every instance gets
    the pool member with the best objective ``⟨θ, w⟩`` for its θ (argmin for ``"min"`` solvers).
    A call also goes to the solver when some instance has no candidate yet (an empty pool, or an
    instance never solved in a per-instance pool). With ``solve_ratio=1`` the output is the
    solver's own, bit for bit.

    A per-instance pool needs the context argument ``pool_index`` (wrap it in
    :class:`~difftools.PerInstance`; it is consumed here and not passed to the solver). Other
    context is forwarded unchanged.

    Counters ``solver_calls`` / ``solved`` (calls and instances that reached the solver) and
    ``pool_calls`` / ``looked_up`` (answered from the pool) count since construction or
    :meth:`reset_counts`. ``last_solved`` says whether the latest call's answers came from the
    solver (None before the first call).

    **Paired calls.** A finite difference of two answers is only meaningful when both come from
    the same source: a pool answer minus the solver's answer for (almost) the same θ is not zero,
    it is the pool's shortfall, divided by λ. Inside ``with cache.decided(solve):`` calls take
    that decision instead of drawing; the forward-difference estimators (:class:`~difftools.IMLE`,
    :class:`~difftools.Blackbox`, ``AIMLE(central=False)``) use it to give their backward solve
    the decision their forward call drew.
    """

    def __init__(
        self,
        solver: Any,
        pool: SolutionPool | None = None,
        *,
        solve_ratio: float = 0.05,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        inner = resolve_solver(solver, "cached")
        if isinstance(inner, CachedSolver):
            raise TypeError("cached: the solver is already cached; wrap the original solver once")
        if pool is None:
            pool = SolutionPool()
        if not isinstance(pool, SolutionPool):
            raise TypeError(f"cached: pool must be a difftools.SolutionPool or None, got {type(pool).__name__}")
        if isinstance(solve_ratio, bool) or not isinstance(solve_ratio, (int, float)) or not 0 <= solve_ratio <= 1:
            raise ValueError(f"cached: solve_ratio must be a number in [0, 1], got {solve_ratio!r}")
        if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
            raise TypeError(
                "cached: generator must be a CPU torch.Generator (the solve-or-look-up decision is made on the host)"
            )
        self.solver = inner
        self.pool = pool
        self.solve_ratio = float(solve_ratio)
        self.generator = generator
        self.last_solved: bool | None = None
        self._forced: bool | None = None
        self.reset_counts()

    @property
    def sense(self) -> str:
        return self.solver.sense

    @property
    def event_dim(self) -> int:
        return self.solver.event_dim

    @property
    def discrete(self) -> Any:
        return getattr(self.solver, "discrete", "integer")

    def reset_counts(self) -> None:
        """Set the call and instance counters to zero."""
        self.solver_calls = self.solved = self.pool_calls = self.looked_up = 0

    @contextlib.contextmanager
    def decided(self, solve: bool) -> Iterator[None]:
        """Calls inside run the solver (``solve=True``) or look up (False) without drawing.

        A look-up still goes to the solver where some instance has no candidate (as a drawn one does).
        """
        if not isinstance(solve, bool):
            raise TypeError(f"cached: decided(solve) needs a bool, got {solve!r}")
        previous, self._forced = self._forced, solve
        try:
            yield
        finally:
            self._forced = previous

    def forward(self, theta: Tensor, /, **context: Any) -> Tensor:
        """``z`` for θ ``[*batch, *event]``: the solver's answer or the best pool member (see the class)."""
        if not isinstance(theta, Tensor):
            raise TypeError(f"cached: θ must be a torch.Tensor, got {type(theta).__name__}")
        if theta.dim() < self.event_dim:
            raise ValueError(
                f"cached: θ has shape {tuple(theta.shape)}, needs event_dim={self.event_dim} trailing dims"
            )
        split = theta.dim() - self.event_dim
        batch_shape = theta.shape[:split]
        count = math.prod(batch_shape)
        index = pool_index(self.pool, context.pop(POOL_INDEX, None), batch_shape, "cached")
        if self._forced is not None:
            solve = self._forced
        else:
            solve = self.solve_ratio >= 1 or bool(torch.rand((), generator=self.generator) < self.solve_ratio)
        self.last_solved = solve = solve or not self.pool.covers(index)
        if solve:
            z = self.solver(theta, **for_solver(self.solver, context))
            self.pool.add(z.reshape(count, -1), owners=index)
            self.solver_calls += 1
            self.solved += count
            return z
        with torch.no_grad():
            best = self.pool.best(theta.detach().reshape(count, -1), self.sense, index)
        self.pool_calls += 1
        self.looked_up += count
        return best.reshape(theta.shape)

    def extra_repr(self) -> str:
        return (
            f"{solver_repr(self.solver)}, solve_ratio={self.solve_ratio:g}, sense={self.sense!r}, "
            f"event_dim={self.event_dim}"
        )


def pool_index(pool: SolutionPool, value: Any, batch_shape: torch.Size, owner: str) -> Tensor | None:
    """The flattened ``pool_index`` context for θ's ``batch_shape`` (None for a shared pool), checked."""
    if not pool.per_instance:
        if value is not None:
            raise ValueError(f"{owner}: {POOL_INDEX!r} was given but the pool is shared (per_instance=False)")
        return None
    if value is None:
        raise ValueError(
            f"{owner}: a per-instance pool needs the context argument {POOL_INDEX}=PerInstance(indices) "
            "(one integer instance index per θ instance)"
        )
    marker = value if isinstance(value, PerInstance) else PerInstance(value)
    flat = marker.flatten(batch_shape, POOL_INDEX, owner)
    if isinstance(flat, np.ndarray):
        flat = np.array(flat)  # a writable copy (sample expansion gives a read-only broadcast view)
    index = torch.as_tensor(flat if isinstance(flat, (Tensor, np.ndarray)) else list(flat))
    if index.dtype.is_floating_point or index.dtype == torch.bool:
        raise ValueError(f"{owner}: {POOL_INDEX} must hold integer instance indices, got dtype {index.dtype}")
    return index.reshape(-1).long()


def cached(
    solver: Any,
    pool: SolutionPool | None = None,
    *,
    solve_ratio: float = 0.05,
    generator: torch.Generator | None = None,
) -> CachedSolver:
    """Wrap ``solver`` (an object or a registered name) with solution caching; see :class:`CachedSolver`.

    Args:
        solver: any solver (``difftools.solver``-made, built-in, or a registered name).
        pool: the :class:`SolutionPool` to read and grow (a new shared pool when None); seed it
            with known solutions (e.g. the training set's) with ``pool.add``.
        solve_ratio: probability that a call runs the real solver (PyEPO's ``solve_ratio``).
        generator: CPU ``torch.Generator`` for the solve-or-look-up draws (reproducible runs).
    """
    return CachedSolver(solver, pool, solve_ratio=solve_ratio, generator=generator)
