"""A plain function as a solver: :class:`FunctionSolver` and its function form :func:`solver`.

Users write the granularity that is natural to them -- one numpy instance (OR-Tools, networkx,
scipy) or a whole torch batch (GPU top-k) -- and the adapter does the rest: it flattens batch
dimensions, converts between numpy and torch, follows θ's device and dtype, splits per-instance
context, maps over instances (optionally on a ``concurrent.futures.Executor``, see
:mod:`difftools.fan_out`) and checks what comes back. Sense handling lives in the estimators' core.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from difftools._validation import check_seconds
from difftools.context import per_instance_hint, with_hint
from difftools.contract import Discrete, Sense, Solver, check_sense
from difftools.errors import SolverError
from difftools.fan_out import Failure, describe, map_on_executor, run_with_timeout, solve_chunk
from difftools.output_checks import check_solver_output

__all__ = ["FunctionSolver", "solver"]


class FunctionSolver(Solver):
    """A plain function adapted to the solver contract (see :func:`solver`)."""

    context_keys = None  # whatever ``fn`` takes; the function itself rejects the rest
    check_finite_theta = False  # the estimators check θ; a solver called directly may see anything
    floating_theta = False  # the function decides which dtypes it takes

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        sense: Sense | None = None,
        event_dim: int = 1,
        batched: bool = False,
        backend: Literal["numpy", "torch"] = "numpy",
        executor: concurrent.futures.Executor | None = None,
        chunksize: int | None = None,
        name: str | None = None,
        timeout: float | None = None,
        discrete: Discrete | None = "integer",
    ):
        if not callable(fn):
            raise TypeError(f"solver: expected a callable, got {type(fn).__name__}")
        owner = f"solver({name or getattr(fn, '__name__', type(fn).__name__)!r})"
        sense = check_sense(sense, owner)
        if isinstance(event_dim, bool) or not isinstance(event_dim, int) or event_dim < 0:
            raise ValueError(f"solver: event_dim must be a non-negative int, got {event_dim!r}")
        if backend not in ("numpy", "torch"):
            raise ValueError(f"solver: backend must be 'numpy' or 'torch', got {backend!r}")
        if executor is not None and batched:
            raise ValueError("solver: an executor maps over instances, so it needs batched=False")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(
                "solver: executor must be a concurrent.futures.Executor (something with submit()) or None, "
                f"got {type(executor).__name__}"
            )
        if chunksize is not None and (isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f"solver: chunksize must be None or an int >= 1, got {chunksize!r}")
        timeout = check_seconds(timeout, "solver", "timeout")
        if discrete not in ("binary", "integer", None):
            raise ValueError(f"solver: discrete must be 'binary', 'integer' or None, got {discrete!r}")
        self.fn = fn
        self.sense: Sense = sense
        self.event_dim = event_dim
        self.batched = batched
        self.backend = backend
        self.executor = executor
        self.chunksize = chunksize
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.timeout = timeout
        self.discrete = discrete

    def repr_parts(self) -> list[str]:
        parts = [
            f"name={self.name!r}",
            f"sense={self.sense!r}",
            f"event_dim={self.event_dim}",
            f"batched={self.batched}",
            f"backend={self.backend!r}",
        ]
        if self.executor is not None:
            parts.append(f"executor={type(self.executor).__name__}")
        if self.timeout is not None:
            parts.append(f"timeout={self.timeout:g}")
        if self.discrete != "integer":
            parts.append(f"discrete={self.discrete!r}")
        return parts

    def __repr__(self) -> str:
        # Subclasses (the built-ins) print their own arguments; this adapter prints its options.
        return f"FunctionSolver({', '.join(FunctionSolver.repr_parts(self))})"

    def __call__(self, theta: Tensor, /, **context: Any) -> Tensor:
        # Outputs are checked per instance inside solve (so that an error names the instance).
        self.check_theta(theta)
        self.check_context(context)
        return self.solve_batch(theta, **context)

    def solve_batch(self, theta: Tensor, /, **context: Any) -> Tensor:
        split = theta.dim() - self.event_dim
        batch_shape, event_shape = theta.shape[:split], theta.shape[split:]
        n = math.prod(batch_shape)
        flat = theta.detach().reshape(n, *event_shape)
        shared, per_instance = self.split_context(context, batch_shape)
        try:
            if self.batched:
                z = self._call_batched(flat, shared, per_instance)
            else:
                z = self._call_each(flat, n, shared, per_instance)
        except SolverError as e:
            hinted = with_hint(e, per_instance_hint(shared, tuple(batch_shape)))
            if hinted is e:
                raise
            raise hinted from e.__cause__
        return z.reshape(theta.shape)

    def _private_theta(self, flat: Tensor) -> Any:
        """θ for ``fn``: a private copy, so that a solver writing into its input cannot change the
        tensors the estimators keep for the backward (``.numpy()`` of a CPU tensor shares memory)."""
        if self.backend == "numpy":
            return flat.numpy().copy() if flat.device.type == "cpu" else flat.cpu().numpy()
        return flat.clone()

    def _to_backend(self, x: Any) -> Any:
        if self.backend == "numpy" and isinstance(x, Tensor):
            return x.detach().cpu().numpy()
        return x

    def _call_batched(self, flat: Tensor, shared: dict, per_instance: dict) -> Tensor:
        ctx = {**shared, **{k: self._to_backend(v) for k, v in per_instance.items()}}
        theta = self._private_theta(flat)

        def work() -> Any:
            return self.fn(theta, **ctx)

        try:
            z = work() if self.timeout is None else run_with_timeout(work, lambda: None, self.timeout, self.name)
        except SolverError:
            raise
        except (Exception, SystemExit) as e:
            raise SolverError(describe(e), solver=self.name) from e
        return check_solver_output(z, flat, self.name)

    def _call_each(self, flat: Tensor, n: int, shared: dict, per_instance: dict) -> Tensor:
        thetas = list(self._private_theta(flat)) if n else []
        contexts = [
            {**shared, **{k: self._to_backend(v[i]) for k, v in per_instance.items()}} for i in range(n)
        ]
        if self.executor is not None:
            results = map_on_executor(
                self.executor, self.fn, thetas, contexts, chunksize=self.chunksize, timeout=self.timeout, name=self.name
            )
        elif self.timeout is None:
            results = solve_chunk(self.fn, 0, thetas, contexts)
        else:
            progress: list = []
            results = run_with_timeout(
                lambda: solve_chunk(self.fn, 0, thetas, contexts, progress),
                lambda: len(progress),
                self.timeout,
                self.name,
            )
        outs = []
        for i, r in enumerate(results):
            if isinstance(r, Failure):
                raise r.as_solver_error(self.name) from r.error
            outs.append(check_solver_output(r, flat[i], self.name, i))
        if not outs:
            return torch.empty_like(flat)
        return torch.stack(outs)

    def __getstate__(self) -> dict:
        # An executor holds threads, processes or a cluster connection and cannot be pickled:
        # a copy unpickled elsewhere (a worker process, a checkpoint) solves sequentially.
        state = self.__dict__.copy()
        state["executor"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        # Pickles made before timeout and discrete existed lack them.
        self.__dict__.update({"timeout": None, "discrete": "integer", **state})


def solver(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Turn a plain function into a :class:`BlackBoxSolver` (usable bare or as a decorator).

    Args:
        fn: ``fn(theta, **context) -> z``. With ``batched=False`` it receives one instance
            (shape ``event``), else the flattened batch ``[N, *event]``; either way a private
            copy of θ, so writing into it is harmless. It must be deterministic.
        sense: required: ``"max"`` if ``fn`` maximises ``<z, theta>`` (θ are scores), ``"min"``
            if it minimises (θ are costs). No default: a wrong sense raises no error, it trains
            in the wrong direction.
        event_dim: how many trailing dims of θ form one instance.
        batched: whether ``fn`` handles a whole batch at once.
        backend: ``"numpy"`` (θ arrives as a CPU numpy array) or ``"torch"`` (a tensor on θ's device).
        executor: a ``concurrent.futures.Executor`` (threads, processes, dask) that solves
            instances in parallel; requires ``batched=False``. Process pools need ``fn`` picklable.
        chunksize: instances per executor task (default: about four tasks per worker).
        name: shown in errors and ``repr`` (default: the function's name).
        timeout: seconds one call (the whole batch) may take; past it a :class:`SolverError`
            names the instance (sequential) or the executor task's instances. Sequential calls
            then run in a background thread, which is left running if the solver never returns.
        discrete: the values ``fn`` returns: ``"integer"`` (default), ``"binary"`` (0/1) or None
            (real-valued, e.g. LP vertices); the estimators warn once when outputs are not in it.

    Context keyword arguments are forwarded on every call; wrap per-instance values in
    :class:`PerInstance`, whose entry ``i`` then reaches instance ``i``.
    """
    if fn is None:
        check_sense(options.get("sense"), "solver")  # fail at the decorator line, not at the first call
        return lambda f: FunctionSolver(f, **options)
    return FunctionSolver(fn, **options)


# The options are FunctionSolver's, written once; help(solver) and IDEs show them from this signature.
solver.__signature__ = inspect.signature(FunctionSolver.__init__).replace(  # type: ignore[attr-defined]
    parameters=[
        inspect.Parameter("fn", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation="Callable | None"),
        *list(inspect.signature(FunctionSolver.__init__).parameters.values())[2:],
    ],
    return_annotation="FunctionSolver",
)
