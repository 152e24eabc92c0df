"""The solver protocol: ``BlackBoxSolver``, the ``solver`` adapter and per-instance context.

A MAP oracle maps parameters θ of shape ``[*batch, *event]`` to a discrete solution z of the same
shape. Users write the granularity that is natural to them -- one numpy instance (OR-Tools,
networkx, scipy) or a whole torch batch (GPU top-k) -- and :func:`solver` adapts it: it flattens
batch dimensions, converts between numpy and torch, follows θ's device and dtype, maps over
instances (optionally on a ``concurrent.futures.Executor``) and validates what comes back.
Sense handling (``"min"`` solvers) lives in the estimators' core, not here.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from difftools.errors import SolverError

__all__ = ["BlackBoxSolver", "FunctionSolver", "PerInstance", "solver", "check_solver_output"]

Sense = Literal["max", "min"]
Discrete = Literal["binary", "integer"]

# Why there is no default sense: a cost minimiser declared "max" (or the reverse) still returns
# valid solutions, so nothing fails -- the estimators just train in the wrong direction.
_SENSE_HELP = (
    "sense='max' if it returns argmax_z <z, θ> (θ are scores or rewards: larger θ_i makes z_i more "
    "likely), sense='min' if it returns argmin_z <z, θ> (θ are costs: larger θ_i makes z_i less likely). "
    "There is no default because the wrong sense raises no error, it trains in the wrong direction"
)


def check_sense(sense: Any, owner: str) -> Sense:
    """``sense`` itself, or a ValueError explaining both senses (None: it was not given)."""
    if sense is None:
        raise ValueError(f"{owner}: sense is required: {_SENSE_HELP}")
    if sense not in ("max", "min"):
        raise ValueError(f"{owner}: sense must be 'max' or 'min', got {sense!r}; {_SENSE_HELP}")
    return sense


@runtime_checkable
class BlackBoxSolver(Protocol):
    """A MAP oracle: ``z = solver(theta, **context)``.

    ``sense="max"`` means ``z = argmax_{z in C} <z, theta>``; ``"min"`` means argmin (θ are costs).
    ``event_dim`` trailing dimensions of θ form one instance. Output: same shape, device and
    dtype as θ, entries in the solver's discrete set: an optional attribute ``discrete`` declares
    it (``"binary"`` for 0/1, ``"integer"``, the default when absent, or None for real-valued
    vertices such as an LP's); the estimators warn once per solver about other values. The oracle
    must be deterministic (ties broken by a fixed rule) and must not write into θ; see
    ``docs/guarantees.md``. Context keyword arguments are forwarded on
    every call; per-instance context (see :class:`PerInstance`) arrives as a plain tensor or
    sequence whose leading dims match θ's batch dims (the estimators lay it out over samples).
    """

    sense: Sense
    event_dim: int

    def __call__(self, theta: Tensor, /, **context: Any) -> Tensor: ...


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


_NON_NUMERIC = {getattr(torch, n) for n in ("quint8", "qint8", "qint32") if hasattr(torch, n)}


def check_solver_output(z: Any, theta: Tensor, name: str, index: int | None = None) -> Tensor:
    """Validate a solver's output against θ and return it as a tensor in θ's dtype and device."""
    if isinstance(z, np.ndarray) or np.isscalar(z) or isinstance(z, (list, tuple)):
        try:
            z = torch.as_tensor(np.asarray(z))
        except (TypeError, ValueError) as e:
            raise SolverError(f"returned a value that is not numeric ({e})", solver=name, index=index) from e
        on_host = True
    elif isinstance(z, Tensor):
        on_host = z.device.type == "cpu"
        if z.device != theta.device:
            if not on_host or theta.device.type == "cpu":
                raise SolverError(
                    f"returned a tensor on {z.device}, expected θ's device {theta.device}",
                    solver=name,
                    index=index,
                )
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
    if on_host and z.dtype.is_floating_point and not bool(torch.isfinite(z).all()):
        raise SolverError("returned non-finite values (NaN or Inf)", solver=name, index=index)
    return z.to(device=theta.device, dtype=theta.dtype)


def _solve_chunk(fn: Callable, start: int, thetas: list, contexts: list[dict], out: list | None = None) -> list:
    """Worker body: solve consecutive instances; failures come back as (index, exception).

    ``out`` (sequential calls with a timeout) receives the results as they come, so that the
    caller can tell which instance was still running when the time ran out.
    """
    out = [] if out is None else out
    for offset, (theta, ctx) in enumerate(zip(thetas, contexts)):
        try:
            out.append(fn(theta, **ctx))
        # SystemExit too: a solver calling sys.exit must not end the training process.
        except (Exception, SystemExit) as e:
            out.append(_Failure(start + offset, e))
            return out
    return out


class _Failure:
    """An instance whose solve raised: its index in the flattened batch and the exception."""

    __slots__ = ("index", "error")

    def __init__(self, index: int, error: BaseException):
        self.index, self.error = index, error

    def as_solver_error(self, name: str) -> SolverError:
        if isinstance(self.error, SolverError):
            return SolverError(self.error.message, solver=self.error.solver or name, index=self.index)
        return SolverError(_describe(self.error), solver=name, index=self.index)


def _describe(error: BaseException) -> str:
    """What a solver's exception says, in a SolverError message."""
    if isinstance(error, SystemExit):
        return f"called sys.exit({error.code!r}); a solver must raise an exception instead of exiting"
    return f"raised {type(error).__name__}: {error}"


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


_OUTPUT_WARNED: weakref.WeakSet = weakref.WeakSet()
_OUTPUT_WARNED_IDS: set[int] = set()


def warn_if_not_discrete(solver: Any, z: Tensor, owner: str) -> None:
    """Warn once per solver when ``z`` has entries outside the solver's declared discrete set.

    The set is the solver's ``discrete`` attribute: ``"binary"`` (0/1), ``"integer"`` (the
    default) or None (real-valued solutions, e.g. LP vertices: no check). One comparison (a host
    synchronisation on CUDA), done only while the estimator checks finiteness, on the solutions of
    the first sample of each solver call.
    """
    kind = getattr(solver, "discrete", "integer")
    if kind is None or not z.dtype.is_floating_point or z.numel() == 0:
        return
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
        f"{owner}: solver {getattr(solver, 'name', None) or _short_repr(solver)} returned {bad.sum().item()} of "
        f"{z.numel()} entries that are not {expected} (e.g. {example:.6g}); a MAP oracle returns a discrete "
        "solution, not scores or probabilities. If real values are intended (an LP's vertices), declare "
        "discrete=None on the solver. (Warned once per solver.)",
        RuntimeWarning,
        stacklevel=4,
    )


def _short_repr(obj: Any) -> str:
    r = repr(obj)
    return r if len(r) <= 60 else r[:57] + "..."


class FunctionSolver:
    """A plain function adapted to the :class:`BlackBoxSolver` protocol (see :func:`solver`)."""

    # The estimators pass PerInstance markers through to this adapter (it splits them per instance).
    accepts_per_instance = True

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
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValueError(f"solver: timeout must be None or a finite number of seconds > 0, got {timeout!r}")
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
        self.timeout = None if timeout is None else float(timeout)
        self.discrete = discrete

    def __repr__(self) -> str:
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
        return f"FunctionSolver({', '.join(parts)})"

    def __call__(self, theta: Tensor, /, **context: Any) -> Tensor:
        if not isinstance(theta, Tensor):
            raise TypeError(f"{self.name}: θ must be a torch.Tensor, got {type(theta).__name__}")
        if theta.device.type == "meta":
            raise ValueError(f"{self.name}: θ is on the meta device (shapes only, no values); materialise it first")
        if theta.dim() < self.event_dim:
            raise ValueError(
                f"{self.name}: θ has {theta.dim()} dims {tuple(theta.shape)}, but one instance has "
                f"event_dim={self.event_dim} trailing dims"
            )
        split = theta.dim() - self.event_dim
        batch_shape, event_shape = theta.shape[:split], theta.shape[split:]
        n = math.prod(batch_shape)
        flat = theta.detach().reshape(n, *event_shape)
        shared = {k: v for k, v in context.items() if not isinstance(v, PerInstance)}
        per_instance = {
            k: v.flatten(batch_shape, k, self.name) for k, v in context.items() if isinstance(v, PerInstance)
        }
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

    def _with_timeout(self, work: Callable[[], Any], running: Callable[[], int | None]) -> Any:
        """``work()``, or a SolverError once ``timeout`` seconds have passed without it returning.

        The call runs in a daemon thread: Python cannot stop a thread, so a solver that never
        returns keeps running in the background, but neither the caller nor interpreter exit waits
        for it. ``running()`` says which instance was being solved when the time ran out.
        """
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = work()
            except BaseException as e:  # re-raised in the caller's thread
                box["error"] = e

        thread = threading.Thread(target=target, name=f"difftools-solver-{self.name}", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            raise SolverError(
                f"did not finish within timeout={self.timeout:g} s (the call is left running in a background thread)",
                solver=self.name,
                index=running(),
            )
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _call_batched(self, flat: Tensor, shared: dict, per_instance: dict) -> Tensor:
        ctx = {**shared, **{k: self._to_backend(v) for k, v in per_instance.items()}}
        theta = self._private_theta(flat)

        def work() -> Any:
            return self.fn(theta, **ctx)

        try:
            z = work() if self.timeout is None else self._with_timeout(work, lambda: None)
        except SolverError:
            raise
        except (Exception, SystemExit) as e:
            raise SolverError(_describe(e), solver=self.name) from e
        return check_solver_output(z, flat, self.name)

    def _call_each(self, flat: Tensor, n: int, shared: dict, per_instance: dict) -> Tensor:
        thetas = list(self._private_theta(flat)) if n else []
        contexts = [
            {**shared, **{k: self._to_backend(v[i]) for k, v in per_instance.items()}} for i in range(n)
        ]
        if self.executor is not None:
            results = self._map_on_executor(thetas, contexts)
        elif self.timeout is None:
            results = _solve_chunk(self.fn, 0, thetas, contexts)
        else:
            progress: list = []
            results = self._with_timeout(
                lambda: _solve_chunk(self.fn, 0, thetas, contexts, progress), lambda: len(progress)
            )
        outs = []
        for i, r in enumerate(results):
            if isinstance(r, _Failure):
                raise r.as_solver_error(self.name) from r.error
            outs.append(check_solver_output(r, flat[i], self.name, i))
        if not outs:
            return torch.empty_like(flat)
        return torch.stack(outs)

    def _map_on_executor(self, thetas: list, contexts: list[dict]) -> list:
        n = len(thetas)
        workers = getattr(self.executor, "_max_workers", None) or 4
        # A few chunks per worker balances load while amortising the per-task overhead.
        size = self.chunksize or max(1, math.ceil(n / (4 * workers)))
        starts = range(0, n, size)
        futures: list[concurrent.futures.Future] = []
        results: list = []
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            for start in starts:
                try:
                    futures.append(
                        self.executor.submit(
                            _solve_chunk, self.fn, start, thetas[start : start + size], contexts[start : start + size]
                        )
                    )
                except Exception as e:  # a broken or shut-down pool refuses new work
                    raise SolverError(
                        f"the executor refused the task for instances {start}..{min(start + size, n) - 1}: "
                        f"{type(e).__name__}: {e}",
                        solver=self.name,
                        index=start,
                    ) from e
            for start, fut in zip(starts, futures):
                try:
                    chunk = fut.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
                # A crashed worker process (BrokenProcessPool), a lost cluster worker, a pickling
                # error; SystemExit too, so a worker calling sys.exit cannot end the caller.
                except (Exception, SystemExit) as e:
                    # Our own deadline passed while the task still runs (a task that itself raised
                    # TimeoutError, e.g. dask_executor's, is done and reported as a failure below).
                    if deadline is not None and isinstance(e, concurrent.futures.TimeoutError) and not fut.done():
                        raise SolverError(
                            f"executor task for instances {start}..{min(start + size, n) - 1} did not finish within "
                            f"timeout={self.timeout:g} s (a running task cannot be stopped: left to the executor)",
                            solver=self.name,
                            index=start,
                        ) from e
                    raise SolverError(
                        f"executor task for instances {start}..{min(start + size, n) - 1} failed: "
                        f"{type(e).__name__}: {e}",
                        solver=self.name,
                        index=start,
                    ) from e
                results.extend(chunk)
                if chunk and isinstance(chunk[-1], _Failure):
                    break
        finally:
            # After a failure the remaining tasks are useless; cancelling done futures is a no-op.
            for fut in futures:
                fut.cancel()
        return results

    def __getstate__(self) -> dict:
        # An executor holds threads, processes or a cluster connection and cannot be pickled:
        # a copy unpickled elsewhere (a worker process, a checkpoint) solves sequentially.
        state = self.__dict__.copy()
        state["executor"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        # Pickles made before timeout and discrete existed lack them.
        self.__dict__.update({"timeout": None, "discrete": "integer", **state})


def solver(
    fn: Callable[..., Any] | None = None,
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
) -> Any:
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
    options = dict(
        sense=sense,
        event_dim=event_dim,
        batched=batched,
        backend=backend,
        executor=executor,
        chunksize=chunksize,
        name=name,
        timeout=timeout,
        discrete=discrete,
    )
    if fn is None:
        check_sense(sense, "solver")  # fail at the decorator line, not at the first call
        return lambda f: FunctionSolver(f, **options)
    return FunctionSolver(fn, **options)


def is_solver(obj: Any) -> bool:
    """Whether ``obj`` satisfies the :class:`BlackBoxSolver` protocol (is not a factory)."""
    return (
        callable(obj)
        and not isinstance(obj, type)
        and getattr(obj, "sense", None) in ("max", "min")
        and isinstance(getattr(obj, "event_dim", None), int)
    )
